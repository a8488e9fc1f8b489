//! The `needs` graph and `dependencies`: every need names a job of the same or an earlier stage,
//! no need is listed twice, at most 50 needs, no cycle; every dependency names a job of the same
//! or an earlier stage; `environment:on_stop` names a job.
//!
//! Works on names only (after `parallel` naming), in linear time over jobs and needs.
//! GitLab: lib/gitlab/ci/yaml_processor.rb (`validate_job_needs!`, `validate_job_dependency!`,
//! `validate_on_stop_job!`, `check_circular_dependencies`), lib/gitlab/ci/yaml_processor/dag.rb,
//! lib/gitlab/ci/pipeline/seed/build.rb (`needs_errors`, the 50-needs limit).

use std::collections::{HashMap, HashSet};

use crate::definition::Definition;
use crate::diag::{Diagnostic, Diagnostics};
use crate::job::Need;
use crate::job::build::JobDef;
use crate::matrix;
use crate::source::Span;

/// GitLab's default `ci_needs_size_limit`.
pub const NEEDS_LIMIT: usize = 50;

/// What a job name refers to: the definition and, for parallel jobs, its instance names.
pub(crate) struct NameTable {
    /// Base name → (definition index, instance names; empty when not parallel).
    by_base: HashMap<String, (usize, Vec<String>)>,
    /// Instance name → definition index.
    by_instance: HashMap<String, usize>,
}

impl NameTable {
    pub(crate) fn new(jobs: &[JobDef]) -> NameTable {
        let mut by_base = HashMap::with_capacity(jobs.len());
        let mut by_instance = HashMap::new();
        for (i, def) in jobs.iter().enumerate() {
            let instances: Vec<String> = match &def.parallel {
                Some(p) => matrix::expand(&def.job.name, p)
                    .into_iter()
                    .map(|x| x.name)
                    .collect(),
                None => Vec::new(),
            };
            for name in &instances {
                by_instance.insert(name.clone(), i);
            }
            by_base.insert(def.job.name.clone(), (i, instances));
        }
        NameTable {
            by_base,
            by_instance,
        }
    }

    /// The definition index and concrete job names a `dependencies:` entry or `on_stop` names:
    /// every instance of a parallel job, or the one job; `None` when no job has that name.
    pub(crate) fn resolve(&self, name: &str) -> Option<(usize, Vec<String>)> {
        if let Some((index, instances)) = self.by_base.get(name) {
            let names = if instances.is_empty() {
                vec![name.to_owned()]
            } else {
                instances.clone()
            };
            return Some((*index, names));
        }
        let index = *self.by_instance.get(name)?;
        Some((index, vec![name.to_owned()]))
    }

    /// The job names one need stands for, before checking that they exist: every instance of a
    /// parallel job, or the instances a `parallel:matrix` selector builds from its own matrix
    /// (so a selector that leaves out a variable builds names no instance has), or the name as
    /// written. `None` for a selector on a name that is not a parallel job.
    /// GitLab: normalizer.rb (`expand_parallelized_needs`).
    pub(crate) fn need_names(
        &self,
        name: &str,
        selector: Option<&[matrix::MatrixRow]>,
    ) -> Option<Vec<String>> {
        let instances = self
            .by_base
            .get(name)
            .map(|(_, instances)| instances)
            .filter(|instances| !instances.is_empty());
        match (instances, selector) {
            (Some(_), Some(rows)) => Some(matrix::selector_names(name, rows)),
            (Some(instances), None) => Some(instances.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(vec![name.to_owned()]),
        }
    }

    /// The definition of one concrete job name: a job that is not parallel, or one instance.
    pub(crate) fn lookup(&self, name: &str) -> Option<usize> {
        match self.by_base.get(name) {
            Some((index, instances)) if instances.is_empty() => Some(*index),
            _ => self.by_instance.get(name).copied(),
        }
    }
}

/// The checks GitLab runs when it validates the configuration (before any pipeline context).
pub(crate) fn check_definition(definition: &Definition, diags: &mut Diagnostics) {
    let table = NameTable::new(&definition.jobs);
    let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); definition.jobs.len()];
    for (i, def) in definition.jobs.iter().enumerate() {
        // (the job or instance the needs belong to, its needs)
        let mut lists: Vec<(String, Vec<Need>)> = Vec::new();
        if let Some(needs) = &def.job.needs {
            lists.extend(instance_needs(def, needs, diags));
        }
        lists.extend(
            rule_needs(def)
                .into_iter()
                .map(|n| (def.job.name.clone(), n)),
        );
        let first = diags.0.len();
        for (who, needs) in &lists {
            check_needs(definition, &table, def, who, needs, &mut edges[i], diags);
        }
        // Matrix instances with interpolated needs repeat the same mistake: report it once.
        let mut reported = HashSet::new();
        let mut k = first;
        while k < diags.0.len() {
            if reported.insert((diags.0[k].span, diags.0[k].code)) {
                k += 1;
            } else {
                diags.0.remove(k);
            }
        }
        check_dependencies(definition, &table, def, diags);
        check_on_stop(definition, &table, def, diags);
    }
    check_cycles(definition, &edges, diags);
}

/// A job's `needs:`, or for a `parallel:matrix` job whose needs hold `$[[ matrix.NAME ]]`, the
/// needs of each instance with the expressions replaced by that instance's values. An instance
/// that names a variable its matrix lacks is reported (once per name) and not checked further,
/// as GitLab stops at the normalizer's errors.
/// GitLab: normalizer.rb (`apply_matrix_interpolation`), matrix_interpolator.rb.
fn instance_needs(
    def: &JobDef,
    needs: &[Need],
    diags: &mut Diagnostics,
) -> Vec<(String, Vec<Need>)> {
    let whole = || vec![(def.job.name.clone(), needs.to_vec())];
    let Some(parallel @ matrix::Parallel::Matrix(_)) = &def.parallel else {
        return whole();
    };
    if !matrix::needs_have_expressions(needs) {
        return whole();
    }
    let job = &def.job.name;
    let mut reported: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for instance in matrix::expand(job, parallel) {
        let mut missing = Vec::new();
        let interpolated = matrix::interpolate_needs(needs, &instance.variables, &mut missing);
        if missing.is_empty() {
            out.push((instance.name, interpolated));
            continue;
        }
        for name in missing {
            if !reported.insert(name.clone()) {
                continue;
            }
            let names_it = |n: &&Need| {
                let mut m = Vec::new();
                matrix::interpolate_needs(std::slice::from_ref(*n), &instance.variables, &mut m);
                m.contains(&name)
            };
            let span = match needs.iter().find(names_it) {
                Some(Need::Job { span, .. }) => *span,
                _ => def.job.span,
            };
            diags.push(
                Diagnostic::error(
                    span,
                    format!("`$[[ matrix.{name} ]]` in the needs of job `{job}` names `{name}`, which is not a variable of its `parallel:matrix`"),
                )
                .with_code("undefined-matrix-variable")
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: {job} job: '{name}' does not exist in matrix configuration"),
                ),
            );
        }
    }
    out
}

/// `needs` written in the job's rules (validated like job needs).
fn rule_needs(def: &JobDef) -> Vec<Vec<Need>> {
    let Some(rules) = &def.rules else {
        return Vec::new();
    };
    let mut scratch = Diagnostics::new();
    let mut r = crate::job::read::Reader::new(&mut scratch, "");
    rules
        .iter()
        .filter_map(|rule| rule.needs.as_ref())
        .filter_map(|n| crate::job::convert::needs(&mut r, "rules:needs", n))
        .collect()
}

fn check_needs(
    definition: &Definition,
    table: &NameTable,
    def: &JobDef,
    job: &str,
    needs: &[Need],
    edges: &mut Vec<(usize, Span)>,
    diags: &mut Diagnostics,
) {
    let mut seen: HashSet<&str> = HashSet::new();
    for need in needs {
        let Need::Job {
            job: target,
            optional,
            matrix,
            span,
            ..
        } = need
        else {
            continue;
        };
        if !seen.insert(target.as_str()) && matrix.is_none() {
            diags.push(
                Diagnostic::error(
                    *span,
                    format!("job `{job}` lists need `{target}` more than once"),
                )
                .with_code("duplicate-need")
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: {job} has the following needs duplicated: {target}."),
                ),
            );
        }
        let (names, selector_on_plain_job) = match table.need_names(target, matrix.as_deref()) {
            Some(names) => (names, false),
            None => (vec![target.clone()], true),
        };
        let mut later_stage_reported = false;
        for needed in &names {
            let index = table.lookup(needed).filter(|_| !selector_on_plain_job);
            let Some(index) = index else {
                // GitLab: yaml_processor.rb (`validate_job_dependency!`) — an optional need on a
                // job that is not defined is ignored.
                if *optional {
                    continue;
                }
                diags.push(undefined_need(
                    definition,
                    job,
                    target,
                    needed,
                    matrix.is_some(),
                    *span,
                ));
                continue;
            };
            let target_def = &definition.jobs[index];
            if target_def.job.stage_index > def.job.stage_index && !later_stage_reported {
                later_stage_reported = true;
                diags.push(
                    Diagnostic::error(
                        *span,
                        format!(
                            "job `{job}` (stage `{}`) needs `{target}`, which runs in the later stage `{}`",
                            def.job.stage, target_def.job.stage
                        ),
                    )
                    .with_code("need-in-later-stage")
                    .with_note(Span::synthetic(), format!("GitLab reports: {job} job: need {target} is not defined in current or prior stages")),
                );
            }
            edges.push((index, *span));
        }
    }
}

/// GitLab: yaml_processor.rb (`validate_job_dependency!`) names the expanded need.
fn undefined_need(
    definition: &Definition,
    job: &str,
    target: &str,
    needed: &str,
    selector: bool,
    span: Span,
) -> Diagnostic {
    let mut d = Diagnostic::error(
        span,
        format!("job `{job}` needs `{needed}`, which is not defined"),
    )
    .with_code("undefined-need")
    .with_note(
        Span::synthetic(),
        format!("GitLab reports: {job} job: undefined need: {needed}"),
    );
    if selector {
        d = d.with_note(
            Span::synthetic(),
            format!("GitLab builds the names of a `parallel:matrix` selector from the selector alone: it must list every matrix variable of `{target}`, in the same order, and a value list selects one instance per value"),
        );
    } else if let Some(close) =
        crate::diag::suggest(needed, definition.jobs.iter().map(|j| j.job.name.as_str()))
    {
        d = d.with_help(format!("did you mean `{close}`?"));
    }
    d
}

fn check_dependencies(
    definition: &Definition,
    table: &NameTable,
    def: &JobDef,
    diags: &mut Diagnostics,
) {
    let Some(deps) = &def.job.dependencies else {
        return;
    };
    let job = &def.job.name;
    for (i, dep) in deps.iter().enumerate() {
        let span = def.dependency_spans.get(i).copied().unwrap_or(def.job.span);
        let Some((index, _)) = table.resolve(dep) else {
            let mut d = Diagnostic::error(
                span,
                format!("job `{job}` depends on `{dep}`, which is not defined"),
            )
            .with_code("undefined-dependency")
            .with_note(
                Span::synthetic(),
                format!("GitLab reports: {job} job: undefined dependency: {dep}"),
            );
            if let Some(close) =
                crate::diag::suggest(dep, definition.jobs.iter().map(|j| j.job.name.as_str()))
            {
                d = d.with_help(format!("did you mean `{close}`?"));
            }
            diags.push(d);
            continue;
        };
        let target = &definition.jobs[index].job;
        if target.stage_index > def.job.stage_index {
            diags.push(
                Diagnostic::error(
                    span,
                    format!("job `{job}` (stage `{}`) depends on `{dep}`, which runs in the later stage `{}`", def.job.stage, target.stage),
                )
                .with_code("dependency-in-later-stage")
                .with_note(Span::synthetic(), format!("GitLab reports: {job} job: dependency {dep} is not defined in current or prior stages")),
            );
        }
    }
}

fn check_on_stop(
    definition: &Definition,
    table: &NameTable,
    def: &JobDef,
    diags: &mut Diagnostics,
) {
    let Some(env) = &def.job.environment else {
        return;
    };
    let Some(on_stop) = &env.on_stop else { return };
    let job = &def.job.name;
    let message = match table.resolve(on_stop) {
        None => Some((
            format!("`environment:on_stop` of job `{job}` names `{on_stop}`, which is not defined"),
            format!("{job} job: on_stop job {on_stop} is not defined"),
        )),
        Some((index, _)) => match &definition.jobs[index].job.environment {
            None => Some((
                format!("`on_stop` job `{on_stop}` of job `{job}` has no `environment`"),
                format!("{job} job: on_stop job {on_stop} does not have environment defined"),
            )),
            Some(stop) if stop.name != env.name => Some((
                format!(
                    "`on_stop` job `{on_stop}` of job `{job}` uses another environment (`{}`)",
                    stop.name
                ),
                format!("{job} job: on_stop job {on_stop} have different environment name"),
            )),
            Some(stop) if stop.action != "stop" => Some((
                format!("`on_stop` job `{on_stop}` of job `{job}` has no `action: stop`"),
                format!("{job} job: on_stop job {on_stop} needs to have action stop defined"),
            )),
            Some(_) => None,
        },
    };
    if let Some((message, gitlab)) = message {
        diags.push(
            Diagnostic::error(env.span, message)
                .with_code("invalid-on-stop")
                .with_note(Span::synthetic(), format!("GitLab reports: {gitlab}")),
        );
    }
}

/// Finds one cycle through `needs` (iterative depth-first search, linear time).
/// GitLab: lib/gitlab/ci/yaml_processor/dag.rb — "The pipeline has circular dependencies".
fn check_cycles(definition: &Definition, edges: &[Vec<(usize, Span)>], diags: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // (node, next edge to look at)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&(target, span)) = edges[node].get(*next) else {
                mark[node] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match mark[target] {
                Mark::New => {
                    mark[target] = Mark::Open;
                    stack.push((target, 0));
                }
                Mark::Open => {
                    let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                    let mut names: Vec<String> = stack[from..]
                        .iter()
                        .map(|(n, _)| format!("`{}`", definition.jobs[*n].job.name))
                        .collect();
                    names.push(format!("`{}`", definition.jobs[target].job.name));
                    diags.push(
                        Diagnostic::error(
                            span,
                            format!("`needs` form a cycle: {}", names.join(" → ")),
                        )
                        .with_code("needs-cycle")
                        .with_note(
                            Span::synthetic(),
                            "GitLab reports: The pipeline has circular dependencies",
                        ),
                    );
                    return;
                }
                Mark::Done => {}
            }
        }
    }
}
