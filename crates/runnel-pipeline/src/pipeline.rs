//! `Pipeline::new`: the jobs of one pipeline for one context. `workflow:rules` decide whether
//! there is a pipeline; each job's `rules` (or `only`/`except`) decide whether it is in it and
//! with which `when`, `allow_failure`, variables and needs; `parallel` makes instances; needs on
//! jobs that rules removed are errors unless optional.
//!
//! GitLab: lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb, chain/seed.rb,
//! lib/gitlab/ci/pipeline/seed/{build,stage}.rb, lib/gitlab/ci/build/rules.rb,
//! lib/gitlab/ci/config/normalizer.rb.

use std::collections::HashSet;

use serde::Serialize;

pub use crate::context::{MergeRequest, PipelineContext, RefType};
use crate::definition::Definition;
use crate::diag::{Diagnostic, Diagnostics};
use crate::exclusion::{ExcludedJob, Exclusion};
use crate::expand::{ExpandVariable, reference_cycles};
use crate::job::build::JobDef;
use crate::job::{Job, JobIndex, Need, ParallelInstance};
use crate::matrix;
use crate::seed::{self, Decision};
use crate::source::Span;
use crate::variables::{self, Variable};
use crate::when::When;
use crate::workflow::WorkflowOutcome;
use crate::yaml::Node;

/// Whether GitLab would create the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Creation {
    /// The pipeline is created with [`Pipeline::jobs`].
    Created,
    /// `workflow:rules` matched no rule, or matched one with `when: never`.
    /// GitLab: "Pipeline filtered out by workflow rules."
    FilteredOutByWorkflow,
    /// Every job except those of `.pre`/`.post` was removed by rules.
    /// GitLab: "Pipeline will not run for the selected trigger. The rules configuration
    /// prevented any jobs from being added to the pipeline."
    NoJobs,
}

/// One pipeline: its stages and jobs, resolved for one [`PipelineContext`].
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub creation: Creation,
    /// The stages that have jobs, in order (GitLab drops empty stages).
    pub stages: Vec<String>,
    /// The pipeline-level YAML variables: top-level ones with the matched workflow rule's over them.
    pub variables: Vec<Variable>,
    pub workflow: WorkflowOutcome,
    /// The jobs in stage order, then in the order written; a parallel job's instances in order.
    pub jobs: Vec<Job>,
    /// Warnings GitLab would show (they do not stop the pipeline).
    #[serde(skip)]
    pub warnings: Diagnostics,
    /// The jobs of the configuration that are not in the pipeline, and why.
    #[serde(skip)]
    pub excluded: Vec<ExcludedJob>,
}

impl Pipeline {
    /// Creates the pipeline for `context` from a loaded configuration.
    pub fn new(
        config: &crate::resolve::Config,
        context: &PipelineContext,
    ) -> Result<Pipeline, Diagnostics> {
        Pipeline::from_root(&config.root, context)
    }

    /// Creates the pipeline from a resolved root mapping (after includes, `extends` and
    /// `!reference`).
    pub fn from_root(root: &Node, context: &PipelineContext) -> Result<Pipeline, Diagnostics> {
        let definition = Definition::from_root(root)?;
        create(&definition, context, &[])
    }

    /// Like [`Pipeline::from_root`], but the jobs named in `run_anyway` (a parallel job's name
    /// names every instance) are in the pipeline even when `workflow:rules`, their `rules` or
    /// `only`/`except` leave them out (`runnel exec --ignore-rules`). Such a job keeps its own
    /// `when` (`on_success` for `never`), and its needs on jobs that are not in the pipeline
    /// are dropped. GitLab has no such mode; it is for running a job locally to debug it.
    pub fn from_root_including(
        root: &Node,
        context: &PipelineContext,
        run_anyway: &[String],
    ) -> Result<Pipeline, Diagnostics> {
        let definition = Definition::from_root(root)?;
        create(&definition, context, run_anyway)
    }

    /// The job at `index`.
    pub fn job(&self, index: JobIndex) -> Option<&Job> {
        self.jobs.get(index.0)
    }

    /// The index of the job named `name`.
    pub fn find(&self, name: &str) -> Option<JobIndex> {
        self.jobs.iter().position(|j| j.name == name).map(JobIndex)
    }

    /// The pipeline as indented JSON (`runnel lint --json`, snapshots).
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// The jobs to keep although GitLab would leave them out: the named ones and, transitively,
/// the jobs they `needs:` (a forced job cannot start without them, and `runnel exec --needs`
/// runs them; GitLab itself would refuse a pipeline whose job needs a job it left out).
fn with_needs(definition: &Definition, run_anyway: &[String]) -> Vec<String> {
    let mut names: Vec<String> = run_anyway.to_vec();
    let mut next = 0;
    while let Some(name) = names.get(next).cloned() {
        next += 1;
        let needs = definition
            .jobs
            .iter()
            .filter(|def| def.job.name == name)
            .flat_map(|def| def.job.needs.iter().flatten());
        let mut found = Vec::new();
        for need in needs {
            if let Need::Job { job, .. } = need {
                found.push(job.clone());
            }
        }
        for job in found {
            if !names.contains(&job) {
                names.push(job);
            }
        }
    }
    names
}

fn create(
    definition: &Definition,
    context: &PipelineContext,
    run_anyway: &[String],
) -> Result<Pipeline, Diagnostics> {
    let mut diags = Diagnostics::new();
    let predefined = context.rules_variables();

    // Workflow rules see predefined, top-level and CLI variables.
    let lookup = rules_lookup(&predefined, &definition.variables, context);
    let workflow = seed::evaluate_workflow(&definition.workflow, &lookup, context);
    let mut root_variables = definition.variables.clone();
    let (workflow, filtered_out) = match workflow {
        Ok(workflow) => (workflow, None),
        Err(exclusion) if run_anyway.is_empty() => {
            let mut pipeline = empty(
                definition,
                Creation::FilteredOutByWorkflow,
                root_variables,
                WorkflowOutcome {
                    name: None,
                    auto_cancel: definition.workflow.auto_cancel.clone(),
                    matched_rule: None,
                },
            );
            pipeline.excluded = excluded_by_workflow(definition, &exclusion);
            return Ok(pipeline);
        }
        Err(exclusion) => (seed::WorkflowDecision::default(), Some(exclusion)),
    };
    let run_anyway = with_needs(definition, run_anyway);
    let forced =
        |def: &JobDef, name: &str| run_anyway.iter().any(|n| n == name || *n == def.job.name);
    variables::merge(&mut root_variables, workflow.variables.clone());
    let outcome = WorkflowOutcome {
        name: pipeline_name(
            definition,
            &rules_lookup(&predefined, &root_variables, context),
        ),
        auto_cancel: workflow
            .auto_cancel
            .clone()
            .or_else(|| definition.workflow.auto_cancel.clone()),
        matched_rule: workflow.matched_rule,
    };

    // Decide each job, and each parallel instance on its own: GitLab seeds the instances
    // separately, so `rules:if` sees the matrix variables.
    let has_workflow_rules = definition.workflow.rules.is_some();
    let mut kept: Vec<(usize, Job, Decision)> = Vec::new();
    let mut excluded: Vec<ExcludedJob> = Vec::new();
    let mut run_anyway_names: HashSet<String> = HashSet::new();
    let mut warnings = Diagnostics::new();
    for (i, def) in definition.jobs.iter().enumerate() {
        let instances = match &def.parallel {
            None => vec![None],
            Some(parallel) => matrix::expand(&def.job.name, parallel)
                .into_iter()
                .map(Some)
                .collect(),
        };
        for (n, instance) in instances.into_iter().enumerate() {
            let job = instance_job(def, instance, &root_variables);
            let force = forced(def, &job.name);
            if let Some(exclusion) = &filtered_out {
                excluded.push(excluded_job(def, &job, exclusion.clone()));
                if !force {
                    continue;
                }
            }
            let lookup = rules_lookup(&predefined, &job.variables, context);
            if n == 0 {
                for warning in exists_project_warnings(def, &lookup) {
                    warnings.push(warning);
                }
            }
            match seed::decide(def, &lookup, context, has_workflow_rules) {
                Ok(Ok(decision)) => kept.push((i, job, decision)),
                Ok(Err(exclusion)) if force => {
                    run_anyway_names.insert(job.name.clone());
                    let when = match &job.when {
                        When::Never => When::OnSuccess,
                        when => when.clone(),
                    };
                    let decision = Decision {
                        when: Some(when),
                        ..Decision::default()
                    };
                    if filtered_out.is_none() {
                        excluded.push(excluded_job(def, &job, exclusion));
                    }
                    kept.push((i, job, decision));
                }
                Ok(Err(exclusion)) => excluded.push(excluded_job(def, &job, exclusion)),
                Err(d) => diags.push(d),
            }
        }
    }

    // Needs and dependencies name concrete jobs; needs on jobs that are not in the pipeline are
    // errors unless optional.
    let present: HashSet<String> = kept.iter().map(|(_, job, _)| job.name.clone()).collect();
    let table = crate::dag::NameTable::new(&definition.jobs);
    let mut jobs: Vec<Job> = Vec::with_capacity(kept.len());
    for (i, job, decision) in kept {
        let def = &definition.jobs[i];
        let mut job = apply_decision(job, decision);
        if let Some(cycle) = variable_cycle(&job, &predefined, context) {
            diags.push(cycle);
        }
        job.needs = if run_anyway_names.contains(&job.name) || filtered_out.is_some() {
            // Run anyway: needs on jobs that are not in the pipeline are dropped.
            resolve_needs(&table, &present, def, &job, &mut Diagnostics::new())
        } else {
            resolve_needs(&table, &present, def, &job, &mut diags)
        };
        job.dependencies = job
            .dependencies
            .as_ref()
            .map(|deps| expand_names(&table, deps));
        jobs.push(job);
    }
    if diags.has_errors() {
        return Err(diags);
    }

    // Stages with jobs, in order; jobs sorted by stage (stable).
    jobs.sort_by_key(|j| j.stage_index);
    let used: Vec<usize> = {
        let mut seen: Vec<usize> = jobs.iter().map(|j| j.stage_index).collect();
        seen.dedup();
        seen
    };
    let stages: Vec<String> = used.iter().map(|i| definition.stages[*i].clone()).collect();
    for job in &mut jobs {
        job.stage_index = used.iter().position(|i| *i == job.stage_index).unwrap_or(0);
    }
    // GitLab: chain/seed.rb — a pipeline whose only jobs are in `.pre`/`.post` is not created.
    let creation = if jobs.iter().any(|j| j.stage != ".pre" && j.stage != ".post")
        || (!run_anyway.is_empty() && !jobs.is_empty())
    {
        Creation::Created
    } else {
        Creation::NoJobs
    };
    Ok(Pipeline {
        creation,
        stages,
        variables: root_variables,
        workflow: outcome,
        jobs,
        warnings: {
            let mut all = definition.warnings.clone();
            all.extend(warnings);
            all.extend(diags);
            all
        },
        excluded,
    })
}

fn empty(
    definition: &Definition,
    creation: Creation,
    variables: Vec<Variable>,
    workflow: WorkflowOutcome,
) -> Pipeline {
    Pipeline {
        creation,
        stages: Vec::new(),
        variables,
        workflow,
        jobs: Vec::new(),
        warnings: definition.warnings.clone(),
        excluded: Vec::new(),
    }
}

/// A job that is not in the pipeline, with the reason.
fn excluded_job(def: &JobDef, job: &Job, reason: Exclusion) -> ExcludedJob {
    ExcludedJob {
        name: job.name.clone(),
        base_name: def.job.name.clone(),
        span: def.job.span,
        reason,
    }
}

/// Every job (and parallel instance) of a pipeline that `workflow:rules` filtered out.
fn excluded_by_workflow(definition: &Definition, exclusion: &Exclusion) -> Vec<ExcludedJob> {
    let mut excluded = Vec::new();
    for def in &definition.jobs {
        let names = match &def.parallel {
            None => vec![def.job.name.clone()],
            Some(parallel) => matrix::expand(&def.job.name, parallel)
                .into_iter()
                .map(|instance| instance.name)
                .collect(),
        };
        for name in names {
            excluded.push(ExcludedJob {
                name,
                base_name: def.job.name.clone(),
                span: def.job.span,
                reason: exclusion.clone(),
            });
        }
    }
    excluded
}

/// One job (or parallel instance) before its rule: inherited top-level (and workflow)
/// variables, then its own, then the matrix variables.
/// GitLab: lib/gitlab/ci/variables/helpers.rb (`inherit_yaml_variables`), normalizer.rb (matrix
/// variables are job variables and override job variables of the same name).
fn instance_job(def: &JobDef, instance: Option<matrix::Instance>, root: &[Variable]) -> Job {
    let mut job = def.job.clone();
    let mut vars: Vec<Variable> = root
        .iter()
        .filter(|v| def.job.inherit.variables.allows(&v.name))
        .cloned()
        .collect();
    variables::merge(&mut vars, def.job.variables.iter().cloned());
    if let Some(instance) = instance {
        job.name = instance.name;
        // GitLab: normalizer.rb (`apply_matrix_interpolation`); a name the matrix lacks was
        // reported when the definition was checked.
        if let Some(needs) = &job.needs
            && matrix::needs_have_expressions(needs)
        {
            let mut missing = Vec::new();
            job.needs = Some(matrix::interpolate_needs(
                needs,
                &instance.variables,
                &mut missing,
            ));
        }
        let matrix_vars = instance.variables.iter().map(|(k, v)| Variable {
            span: def.job.span,
            ..Variable::synthetic(k, v)
        });
        variables::merge(&mut vars, matrix_vars);
        job.parallel = Some(ParallelInstance {
            index: instance.index,
            total: instance.total,
            matrix: instance.variables,
        });
    }
    job.variables = vars;
    job
}

/// The job with its rule's attributes applied. GitLab: lib/gitlab/ci/build/rules.rb
/// (`Result#build_attributes`) and seed/build.rb (`rules_attributes`).
fn apply_decision(mut job: Job, decision: Decision) -> Job {
    // GitLab: job.rb (`ignored?`) computes `allow_failure` from the job's own `when`; a rule's
    // `when: manual` therefore makes a blocking manual job unless `allow_failure` is given.
    if let Some(when) = decision.when {
        job.when = when;
    }
    if let Some(allow_failure) = decision.allow_failure {
        job.allow_failure = allow_failure;
    }
    if let Some(interruptible) = decision.interruptible {
        job.interruptible = Some(interruptible);
    }
    if let Some(needs) = decision.needs {
        job.needs = Some(needs);
    }
    variables::merge(&mut job.variables, decision.variables);
    job
}

/// Needs after rules: matrix names expanded; needs on jobs not in the pipeline dropped when
/// optional, errors otherwise. GitLab: seed/build.rb (`needs_errors`).
fn resolve_needs(
    table: &crate::dag::NameTable,
    present: &HashSet<String>,
    def: &JobDef,
    job: &Job,
    diags: &mut Diagnostics,
) -> Option<Vec<Need>> {
    let needs = job.needs.as_ref()?;
    let mut out = Vec::with_capacity(needs.len());
    for need in needs {
        let Need::Job {
            job: target,
            artifacts,
            optional,
            matrix,
            span,
        } = need
        else {
            out.push(need.clone());
            continue;
        };
        // GitLab: normalizer.rb expands the need; yaml_processor.rb drops an optional need on a
        // job that is not defined, and the definition check rejected the others.
        let names = match table.need_names(target, matrix.as_deref()) {
            Some(names) => names,
            // A selector on a job that is not parallel designates no job.
            None if *optional => continue,
            None => vec![target.clone()],
        };
        for needed in names {
            if *optional && table.lookup(&needed).is_none() {
                continue;
            }
            if present.contains(&needed) {
                out.push(Need::Job {
                    job: needed,
                    artifacts: *artifacts,
                    optional: *optional,
                    matrix: None,
                    span: *span,
                });
            } else if !*optional {
                diags.push(need_not_in_pipeline(&def.job.name, &needed, *span));
            }
        }
    }
    // GitLab: seed/build.rb (`needs_errors`) — counted after parallel expansion.
    let count = out.iter().filter(|n| matches!(n, Need::Job { .. })).count();
    if count > crate::dag::NEEDS_LIMIT {
        let name = &def.job.name;
        let limit = crate::dag::NEEDS_LIMIT;
        diags.push(
            Diagnostic::error(def.job.span, format!("job `{name}` needs {count} jobs, more than the limit of {limit}"))
                .with_code("too-many-needs")
                .with_note(Span::synthetic(), format!("GitLab reports: {name}: one job can only need {limit} others, but you have listed {count}. See needs keyword documentation for more details")),
        );
    }
    Some(out)
}

/// `rules:exists:project` clauses that name another project or ref: runnel cannot look at its
/// files, so the clause is false; say so instead of answering silently.
fn exists_project_warnings(def: &JobDef, lookup: &seed::Lookup) -> Vec<Diagnostic> {
    let rules = def.rules.as_deref().unwrap_or_default();
    rules
        .iter()
        .filter_map(|rule| rule.exists.as_ref())
        .filter(|exists| !crate::rules::rule::exists_project_is_local(exists, lookup))
        .map(|exists| {
            let project = exists.project.as_deref().unwrap_or_default();
            Diagnostic::warning(
                def.job.span,
                format!("job `{}`: `rules:exists:project` names `{project}`, whose files runnel cannot look at locally; the clause is taken as false", def.job.name),
            )
            .with_code("exists-project-unavailable")
            .with_help("only the checked-out commit of this project can be looked at")
        })
        .collect()
}

/// GitLab refuses to create a pipeline whose job's variables refer to each other in a cycle
/// (seed/build.rb `variable_expansion_errors`, lib/gitlab/ci/variables/collection/sort.rb). The
/// job sees the predefined variables, its YAML variables (global, job, matrix, rules) and the
/// pipeline's (`--var`), in that order.
fn variable_cycle(
    job: &Job,
    predefined: &[(String, String)],
    context: &PipelineContext,
) -> Option<Diagnostic> {
    let vars: Vec<ExpandVariable> = predefined
        .iter()
        .map(|(k, v)| ExpandVariable::new(k, v))
        .chain(job.variables.iter().map(|v| ExpandVariable {
            raw: !v.expand,
            ..ExpandVariable::new(&v.name, &v.value)
        }))
        .chain(
            context
                .variables
                .iter()
                .map(|(k, v)| ExpandVariable::new(k, v)),
        )
        .collect();
    let error = reference_cycles(&vars)?;
    let name = &job.name;
    let span = job
        .variables
        .iter()
        .find(|v| error.contains(&format!("{:?}", v.name)) && !v.span.is_synthetic())
        .map_or(job.span, |v| v.span);
    Some(
        Diagnostic::error(
            span,
            format!("the variables of job `{name}` refer to each other in a cycle"),
        )
        .with_code("variable-cycle")
        .with_note(
            Span::synthetic(),
            format!("GitLab reports: {name}: {error}"),
        ),
    )
}

/// GitLab: seed/build.rb (`needs_errors`).
fn need_not_in_pipeline(name: &str, needed: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("job `{name}` needs `{needed}`, which rules, `only` or `except` removed from this pipeline"),
    )
    .with_code("need-not-in-pipeline")
    .with_help("to need a job that is not always in the pipeline, use `optional: true`")
    .with_note(
        Span::synthetic(),
        format!(
            "GitLab reports: '{name}' job needs '{needed}' job, but '{needed}' does not exist in the pipeline. This might be because of the only, except, or rules keywords. To need a job that sometimes does not exist in the pipeline, use needs:optional."
        ),
    )
}

/// The variables rules and `workflow:name` see: predefined ones, then the YAML `variables`,
/// then the CLI's (`--var`), later ones replacing earlier ones.
fn rules_lookup(
    predefined: &[(String, String)],
    yaml: &[Variable],
    context: &PipelineContext,
) -> seed::Lookup {
    let mut lookup: seed::Lookup = predefined.iter().cloned().collect();
    lookup.extend(yaml.iter().map(|v| (v.name.clone(), v.value.clone())));
    lookup.extend(context.variables.iter().cloned());
    lookup
}

/// Dependency names with parallel base names replaced by their instances.
fn expand_names(table: &crate::dag::NameTable, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        match table.resolve(name) {
            Some((_, instances)) => out.extend(instances),
            None => out.push(name.clone()),
        }
    }
    out
}

/// `workflow:name` with variables expanded, trimmed; `None` when empty.
/// GitLab: lib/gitlab/ci/pipeline/chain/populate_metadata.rb (`ExpandVariables.expand`).
fn pipeline_name(definition: &Definition, vars: &seed::Lookup) -> Option<String> {
    let name = definition.workflow.name.as_ref()?;
    let expanded = crate::expand::expand_server(name, vars);
    let trimmed = expanded.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}
