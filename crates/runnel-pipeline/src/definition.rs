//! The configuration's model before any pipeline context: the resolved root mapping (after
//! includes, `extends` and `!reference`) split into stages, top-level variables, `workflow:`,
//! `default:` and job definitions, with every keyword validated and every error collected.
//!
//! GitLab: lib/gitlab/ci/config/entry/{root,jobs,default,stages}.rb and the logical checks of
//! lib/gitlab/ci/yaml_processor.rb (`validate_job_stage!`, needs and dependencies in `dag.rs`).

use crate::dag;
use crate::diag::{Diagnostic, Diagnostics, suggest};
use crate::job::build::{Defaults, JobDef, build_job, job_kind};
use crate::job::read::Reader;
use crate::job::{JobKind, convert};
use crate::keywords;
use crate::source::Span;
use crate::variables::{Variable, VariablesPlace, read_variables};
use crate::workflow::{Workflow, read_workflow};
use crate::yaml::{Key, Node};

/// GitLab's default stages (entry/stages.rb, `DEFAULT_STAGES`).
pub const DEFAULT_STAGES: &[&str] = &[".pre", "build", "test", "deploy", ".post"];

/// GitLab: app/models/ci/build.rb (name length) — a job name has at most 255 characters.
const MAX_JOB_NAME: usize = 255;

/// Everything the configuration says, independent of ref, source and variables.
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    /// Stages in order, `.pre` first and `.post` last.
    pub(crate) stages: Vec<String>,
    /// Top-level variables.
    pub(crate) variables: Vec<Variable>,
    pub(crate) workflow: Workflow,
    /// Visible jobs in the order written (before `parallel` expansion).
    pub(crate) jobs: Vec<JobDef>,
    /// Warnings GitLab shows for the configuration.
    pub(crate) warnings: Diagnostics,
}

impl Definition {
    /// Reads and validates the resolved root mapping.
    pub(crate) fn from_root(root: &Node) -> Result<Definition, Diagnostics> {
        let mut diags = Diagnostics::new();
        let Some(entries) = root.as_map() else {
            // GitLab: lib/gitlab/ci/config/yaml.rb — "Invalid configuration format".
            let found = crate::job::read::describe(root);
            diags.push(
                Diagnostic::error(
                    root.span,
                    format!("expected a mapping of keywords and jobs, found {found}"),
                )
                .with_code("invalid-root"),
            );
            return Err(diags);
        };
        let mut r = Reader::new(&mut diags, "the configuration");
        let stages = read_stages(&mut r, root.get("stages"));
        let variables = match root.get("variables") {
            Some(v) => read_variables(&mut r, "variables", v, VariablesPlace::TopLevel),
            None => Vec::new(),
        };
        let workflow = match root.get("workflow") {
            Some(w) if job_kind(w).is_none() => {
                let mut wr = Reader::new(r.diags, "`workflow`");
                read_workflow(&mut wr, w)
            }
            _ => Workflow::default(),
        };
        let defaults = read_defaults(&mut r, root);

        let mut jobs = Vec::new();
        for (key, value) in entries {
            let name = key.as_str();
            if name.starts_with('.') {
                continue;
            }
            let kind = job_kind(value);
            let is_global = keywords::TOP_LEVEL.contains(&name);
            // GitLab: entry/root.rb — reserved names are never jobs; `default` and `workflow`
            // are jobs only when they look like one.
            if is_global && (keywords::RESERVED.contains(&name) || kind.is_none()) {
                continue;
            }
            let Some(kind) = kind else {
                r.push(not_a_job(key, value));
                continue;
            };
            if name.chars().count() > MAX_JOB_NAME {
                r.error(
                    key.span,
                    format!("job name `{name}` is longer than {MAX_JOB_NAME} characters"),
                );
                continue;
            }
            let mut jr = Reader::new(r.diags, format!("job `{name}`"));
            if let Some(def) = build_job(&mut jr, key, value, kind, &defaults) {
                jobs.push(def);
            }
        }
        if jobs.is_empty() && !diags.has_errors() {
            // GitLab: entry/jobs.rb — "jobs config should contain at least one visible job".
            diags.push(
                Diagnostic::error(root.span, "the configuration defines no job")
                    .with_code("no-jobs")
                    .with_note(Span::synthetic(), "a job is a top-level mapping with `script`, `run` or `trigger`; names starting with `.` are hidden"),
            );
        }
        let warnings = rules_warnings(&jobs, workflow.rules.is_some());
        let mut definition = Definition {
            stages,
            variables,
            workflow,
            jobs,
            warnings,
        };
        check_stages(&mut definition, &mut diags);
        dag::check_definition(&definition, &mut diags);
        if diags.has_errors() {
            Err(diags)
        } else {
            definition.warnings.extend(diags);
            Ok(definition)
        }
    }
}

/// GitLab: entry/processable.rb (`validate_against_warnings`) — a last rule with only `when`
/// (not `never`) and no `workflow:rules` lets a push create both a branch and a merge request
/// pipeline.
fn rules_warnings(jobs: &[JobDef], has_workflow_rules: bool) -> Diagnostics {
    let mut warnings = Diagnostics::new();
    if has_workflow_rules {
        return warnings;
    }
    for def in jobs {
        let Some(last) = def.rules.as_ref().and_then(|r| r.last()) else {
            continue;
        };
        let only_when = last.if_.is_none()
            && last.changes.is_none()
            && last.exists.is_none()
            && last.allow_failure.is_none()
            && last.variables.is_empty()
            && last.needs.is_none()
            && last.interruptible.is_none()
            && last.start_in.is_none();
        if only_when
            && last
                .when
                .as_ref()
                .is_some_and(|w| *w != crate::when::When::Never)
        {
            let name = &def.job.name;
            warnings.push(
                Diagnostic::warning(def.job.span, format!("job `{name}` may run in two pipelines for one push: its last rule has only `when` and there are no `workflow:rules`"))
                    .with_code("rules-without-workflow")
                    .with_help("add `workflow:rules` that choose between branch and merge request pipelines")
                    .with_note(Span::synthetic(), format!("GitLab reports: jobs:{name} may allow multiple pipelines to run for a single action due to `rules:when` clause with no `workflow:rules` - read more: https://docs.gitlab.com/ee/ci/troubleshooting.html#pipeline-warnings")),
            );
        }
    }
    warnings
}

/// The error for a top-level key that is neither a keyword nor a job.
fn not_a_job(key: &Key, value: &Node) -> Diagnostic {
    let name = key.as_str();
    // GitLab: entry/jobs.rb — the message GitLab gives for this key.
    // GitLab: entry/bridge.rb `matching?` takes a mapping with `needs` for a bridge job.
    let gitlab = if value.get("needs").is_some() {
        format!(
            "GitLab reports: jobs:{name} config should contain either a trigger or a needs:pipeline"
        )
    } else {
        format!(
            "GitLab reports: jobs:{name} config should implement the script:, run:, or trigger: keyword"
        )
    };
    let close = suggest(name, keywords::TOP_LEVEL.iter().copied());
    if let Some(close) = close {
        return Diagnostic::error(key.span, format!("`{name}` is neither a keyword nor a job"))
            .with_code("not-keyword-or-job")
            .with_help(format!("did you mean `{close}`?"))
            .with_note(
                Span::synthetic(),
                "a top-level key that is not a keyword defines a job, and a job is a mapping with `script`",
            )
            .with_note(Span::synthetic(), gitlab);
    }
    if value.as_map().is_some() {
        let close =
            value.as_map().into_iter().flatten().find_map(|(k, _)| {
                suggest(k.as_str(), ["script", "run", "trigger"]).map(|s| (k, s))
            });
        let mut d = Diagnostic::error(
            key.span,
            format!("job `{name}` has no `script`, `run` or `trigger`"),
        )
        .with_code("job-without-script")
        .with_note(Span::synthetic(), gitlab);
        if let Some((k, s)) = close {
            d = d.with_note(k.span, format!("`{}` may be a misspelt `{s}`", k.as_str()));
        }
        return d;
    }
    Diagnostic::error(key.span, format!("`{name}` is neither a keyword nor a job"))
        .with_code("not-keyword-or-job")
        .with_note(
            Span::synthetic(),
            format!("a top-level key that is not a keyword defines a job, and a job is a mapping with `script`; found {}", crate::job::read::describe(value)),
        )
        .with_note(Span::synthetic(), gitlab)
}

/// `stages:`: nested lists flattened, duplicates dropped, `.pre` first and `.post` last.
/// GitLab: lib/gitlab/ci/config/edge_stages_injector.rb, entry/stages.rb.
fn read_stages(r: &mut Reader<'_>, node: Option<&Node>) -> Vec<String> {
    let Some(node) = node else {
        return DEFAULT_STAGES.iter().map(|s| (*s).to_owned()).collect();
    };
    let written = r.strings("stages", node, false).unwrap_or_default();
    let mut stages = vec![".pre".to_owned()];
    for stage in written {
        if stage != ".pre" && stage != ".post" && !stages.contains(&stage) {
            stages.push(stage);
        }
    }
    stages.push(".post".to_owned());
    stages
}

/// `default:` and the deprecated globals, each validated once; a faulty default is dropped so
/// that its error is not repeated for every job.
fn read_defaults(r: &mut Reader<'_>, root: &Node) -> Defaults {
    let mut defaults = Defaults::default();
    let default = root.get("default").filter(|d| job_kind(d).is_none());
    if let Some(default) = default
        && r.map("default", default).is_some()
    {
        keywords::check_keys(default, keywords::DEFAULT, "`default`", r.diags);
        for (k, v) in default.as_map().unwrap_or_default() {
            if keywords::DEFAULT.contains(&k.as_str())
                && default_is_valid(r, "`default`", k.as_str(), v)
            {
                defaults.entries.push((k.clone(), v.clone()));
            }
        }
    }
    for global in keywords::DEPRECATED_GLOBALS {
        let Some((k, v)) = root.get_entry(global) else {
            continue;
        };
        if default.and_then(|d| d.get(global)).is_some() {
            // GitLab: entry/default.rb — "%s is defined in top-level and `default:` entry".
            r.push(
                Diagnostic::error(
                    k.span,
                    format!("`{global}` is set both at the top level and in `default`"),
                )
                .with_code("duplicate-default")
                .with_help(format!("keep only `default:{global}`"))
                .with_note(
                    Span::synthetic(),
                    format!(
                        "GitLab reports: {global} is defined in top-level and `default:` entry"
                    ),
                ),
            );
            continue;
        }
        if default_is_valid(r, "the top level", global, v) {
            defaults.entries.push((k.clone(), v.clone()));
        }
    }
    defaults
}

fn default_is_valid(r: &mut Reader<'_>, place: &str, key: &str, value: &Node) -> bool {
    let before = r.diags.len();
    let mut dr = Reader::new(r.diags, place);
    let ok = match key {
        "before_script" | "after_script" => dr.commands(key, value).is_some(),
        "image" => convert::image(&mut dr, key, value).is_some(),
        "services" => convert::services(&mut dr, key, value).is_some(),
        "cache" => convert::caches(&mut dr, key, value).is_some(),
        "artifacts" => value.is_null() || convert::artifacts(&mut dr, key, value).is_some(),
        "retry" => convert::retry(&mut dr, key, value).is_some(),
        "timeout" => convert::duration(&mut dr, key, value).is_some(),
        "interruptible" => dr.boolean(key, value).is_some(),
        "tags" => dr.strings(key, value, false).is_some(),
        "hooks" => convert::hooks(&mut dr, key, value).is_some(),
        "id_tokens" => convert::id_tokens(&mut dr, key, value).is_some(),
        "identity" => true,
        _ => false,
    };
    ok && r.diags.len() == before
}

/// Every job's stage must exist. GitLab: yaml_processor.rb (`validate_job_stage!`).
fn check_stages(definition: &mut Definition, diags: &mut Diagnostics) {
    let stages = definition.stages.clone();
    for def in &mut definition.jobs {
        match stages.iter().position(|s| *s == def.job.stage) {
            Some(index) => def.job.stage_index = index,
            None => {
                let name = &def.job.name;
                let stage = &def.job.stage;
                let available = stages
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut d = Diagnostic::error(
                    def.stage_span,
                    format!("job `{name}` uses stage `{stage}`, which is not defined"),
                )
                .with_code("unknown-stage")
                .with_note(Span::synthetic(), format!("the stages are {available}"))
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: {name} job: chosen stage {stage} does not exist; available stages are {}", stages.join(", ")),
                );
                if let Some(close) = suggest(stage, stages.iter().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{close}`?"));
                }
                diags.push(d);
            }
        }
        if def.job.kind == JobKind::Trigger {
            def.job.script.clear();
        }
    }
}
