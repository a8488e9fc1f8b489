//! One job definition from its mapping: keyword validation, `default:` and `inherit:default`
//! applied, every keyword converted. The result does not depend on the pipeline's context;
//! `rules`, top-level variables and `parallel` are applied later by `pipeline.rs`.
//!
//! GitLab: lib/gitlab/ci/config/entry/{job,bridge,processable,default}.rb,
//! entry/inherit/default.rb.

use crate::diag::Diagnostic;
use crate::job::read::Reader;
use crate::job::types::Inherit;
use crate::job::{Job, JobKind, convert};
use crate::keywords;
use crate::matrix::Parallel;
use crate::rules::{OnlyExcept, Rule, RulesKind, only_except_from_node, rules_from_node_in};
use crate::source::Span;
use crate::variables::{VariablesPlace, read_variables};
use crate::when::{AllowFailure, When};
use crate::yaml::{Key, Node, Value};

/// GitLab: lib/gitlab/ci/config/entry/processable.rb (`MAX_NESTING_LEVEL`).
const RULES_MAX_NESTING: usize = 10;

/// A job as defined in the configuration, before the pipeline's context chose its rule.
#[derive(Debug, Clone)]
pub(crate) struct JobDef {
    /// The job with `default:` applied. `variables` holds only the job's own variables.
    pub(crate) job: Job,
    /// Whether the job sets `when:` itself (a rule's `when` wins over it; GitLab's manual
    /// default for `allow_failure` follows the job-level `when: manual` only).
    pub(crate) when_set: bool,
    /// Whether the job sets `allow_failure:` itself.
    pub(crate) allow_failure_set: bool,
    /// `rules:`, validated.
    pub(crate) rules: Option<Vec<Rule>>,
    pub(crate) only: Option<OnlyExcept>,
    pub(crate) except: Option<OnlyExcept>,
    pub(crate) parallel: Option<Parallel>,
    /// Where `stage:` is written (the job's name when it is not).
    pub(crate) stage_span: Span,
    /// Where each dependency is written.
    pub(crate) dependency_spans: Vec<Span>,
}

/// The validated `default:` keys (and the deprecated globals), each as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    pub(crate) entries: Vec<(Key, Node)>,
}

/// Whether a top-level mapping value is a job: it has `script`, `run` or `trigger`, or is a
/// bridge that only mirrors an upstream pipeline (`needs: {pipeline: other/project}`).
/// GitLab: entry/jobs.rb (`find_type`), entry/job.rb and bridge.rb (`matching?`).
pub(crate) fn job_kind(node: &Node) -> Option<JobKind> {
    let map = node.as_map()?;
    let has = |k: &str| map.iter().any(|(key, _)| key.name == k);
    if has("trigger") && !has("script") && !has("run") {
        Some(JobKind::Trigger)
    } else if has("script") || has("run") {
        Some(JobKind::Build)
    } else if node.get("needs").is_some_and(convert::has_bridge_need) {
        Some(JobKind::Trigger)
    } else {
        None
    }
}

/// Builds one job definition. Returns `None` (with diagnostics) when it cannot be used.
pub(crate) fn build_job(
    r: &mut Reader<'_>,
    name: &Key,
    node: &Node,
    kind: JobKind,
    defaults: &Defaults,
) -> Option<JobDef> {
    let map = node.as_map()?;
    check_job_keys(r, name, map, kind);

    let inherit = match node.get("inherit") {
        Some(n) => convert::inherit(r, "inherit", n).unwrap_or_default(),
        None => Inherit::default(),
    };
    // GitLab: entry/default.rb and inherit/default.rb — a default applies only when the job
    // does not set the keyword and `inherit:default` allows it; it replaces, never merges. A
    // keyword whose value is null is not set (lib/gitlab/config/entry/factory.rb makes an
    // unspecified entry of a nil value), so `before_script: null`, which an input defaulting to
    // null produces, keeps the default.
    let unset = |k: &Key, v: &Node| v.is_null() && keywords::DEFAULT.contains(&k.name.as_str());
    let mut entries: Vec<(&Key, &Node)> = map
        .iter()
        .filter(|(k, v)| !unset(k, v))
        .map(|(k, v)| (k, v))
        .collect();
    for key in keywords::DEFAULT {
        if entries.iter().any(|(k, _)| k.name == *key) || !inherit.default.allows(key) {
            continue;
        }
        if let Some(entry) = defaults.entries.iter().find(|(k, _)| k.name == *key) {
            entries.push((&entry.0, &entry.1));
        }
    }

    let mut job = Job {
        name: name.name.clone(),
        group_name: name.name.clone(),
        stage: "test".to_owned(),
        stage_index: 0,
        kind,
        before_script: Vec::new(),
        script: Vec::new(),
        after_script: Vec::new(),
        hooks: None,
        image: None,
        services: Vec::new(),
        variables: Vec::new(),
        when: When::OnSuccess,
        allow_failure: AllowFailure::Bool(false),
        retry: None,
        timeout: None,
        timeout_seconds: None,
        interruptible: None,
        resource_group: None,
        environment: None,
        coverage: None,
        artifacts: None,
        cache: Vec::new(),
        needs: None,
        dependencies: None,
        tags: Vec::new(),
        trigger: None,
        upstream: None,
        pages: None,
        release: None,
        secrets: None,
        id_tokens: Vec::new(),
        parallel: None,
        manual_confirmation: None,
        inherit,
        span: name.span,
    };
    let mut def = JobDef {
        job: Job { ..job.clone() },
        when_set: false,
        allow_failure_set: false,
        rules: None,
        only: None,
        except: None,
        parallel: None,
        stage_span: name.span,
        dependency_spans: Vec::new(),
    };
    let mut start_in: Option<(String, u64, Span)> = None;
    let mut when_text: Option<(String, Span)> = None;
    for (key, value) in entries {
        r.keyword = Some((value.span, key.span));
        let key = key.as_str();
        convert_keyword(
            r,
            &mut job,
            &mut def,
            key,
            value,
            &mut start_in,
            &mut when_text,
        );
    }
    finish_when(r, &mut job, &mut def, start_in, when_text);
    // GitLab: a job named `pages` is a Pages job unless it says `pages: false`.
    if job.name == "pages" && node.get("pages").is_none() && kind == JobKind::Build {
        job.pages = Some(crate::job::types::Pages {
            publish: "public".to_owned(),
            path_prefix: None,
            expire_in: None,
        });
    }
    check_combinations(r, &job, &def, node);
    def.job = job;
    Some(def)
}

fn check_job_keys(r: &mut Reader<'_>, name: &Key, map: &[(Key, Node)], kind: JobKind) {
    let allowed: Vec<&str> = match kind {
        JobKind::Build => keywords::PROCESSABLE
            .iter()
            .chain(keywords::BUILD_JOB)
            .copied()
            .collect(),
        JobKind::Trigger => keywords::PROCESSABLE
            .iter()
            .chain(keywords::TRIGGER_JOB)
            .copied()
            .collect(),
    };
    for (key, _) in map {
        let k = key.as_str();
        // `script` with `trigger` is reported once, by `check_combinations`.
        if allowed.contains(&k) || (kind == JobKind::Build && k == "trigger") {
            continue;
        }
        let job = &name.name;
        let diagnostic = if k == "type" {
            // GitLab removed the `type` keyword in 16.0 (entry/job.rb no longer allows it).
            Diagnostic::error(key.span, format!("`type` is not a keyword of job `{job}`"))
                .with_code("unknown-key")
                .with_help("use `stage`")
                .with_note(
                    Span::synthetic(),
                    format!(
                        "GitLab removed `type` in 16.0 and reports: jobs:{job} config contains unknown keys: type"
                    ),
                )
        } else if kind == JobKind::Trigger && keywords::BUILD_JOB.contains(&k) {
            Diagnostic::error(
                key.span,
                format!("`{k}` cannot be used in trigger job `{job}`"),
            )
            .with_code("unknown-key")
            .with_note(
                Span::synthetic(),
                format!("GitLab reports: jobs:{job} config contains unknown keys: {k}"),
            )
        } else {
            Diagnostic::error(key.span, format!("unknown key `{k}` in job `{job}`"))
                .with_code("unknown-key")
                .with_suggestion(k, allowed.iter().copied())
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: jobs:{job} config contains unknown keys: {k}"),
                )
        };
        r.push(diagnostic);
    }
}

fn convert_keyword(
    r: &mut Reader<'_>,
    job: &mut Job,
    def: &mut JobDef,
    key: &str,
    value: &Node,
    start_in: &mut Option<(String, u64, Span)>,
    when_text: &mut Option<(String, Span)>,
) {
    match key {
        "script" => job.script = r.commands(key, value).unwrap_or_default(),
        "before_script" => job.before_script = r.commands(key, value).unwrap_or_default(),
        "after_script" => job.after_script = r.commands(key, value).unwrap_or_default(),
        "run" if value.as_seq().is_none() => {
            r.expected(key, value, "a list of steps");
        }
        "stage" => {
            if let Some(stage) = r.string(key, value) {
                job.stage = stage;
                def.stage_span = value.span;
            }
        }
        "image" => job.image = convert::image(r, key, value),
        "services" => job.services = convert::services(r, key, value).unwrap_or_default(),
        "variables" => job.variables = read_variables(r, key, value, VariablesPlace::Job),
        "when" => {
            if let Value::Str(s) = &value.value {
                *when_text = Some((s.clone(), value.span));
            } else {
                r.expected(key, value, "a string");
            }
        }
        "start_in" => {
            if let Some((text, seconds)) = convert::duration(r, key, value) {
                *start_in = Some((text, seconds, value.span));
            }
        }
        "allow_failure" => {
            if let Some(a) = convert::allow_failure(r, key, value) {
                job.allow_failure = a;
                def.allow_failure_set = true;
            }
        }
        "retry" => job.retry = convert::retry(r, key, value),
        "timeout" => {
            if let Some((text, seconds)) = convert::duration(r, key, value) {
                job.timeout = Some(text);
                job.timeout_seconds = Some(seconds);
            }
        }
        "interruptible" => job.interruptible = r.boolean(key, value),
        "resource_group" => job.resource_group = r.string(key, value),
        "environment" => job.environment = convert::environment(r, key, value),
        "coverage" => {
            if let Some(c) = r.string(key, value) {
                // GitLab: entry/coverage.rb — a regular expression between slashes.
                if c.len() >= 2 && c.starts_with('/') && c.ends_with('/') {
                    job.coverage = Some(c);
                } else {
                    r.expected(key, value, "a regular expression such as `/\\d+%/`");
                }
            }
        }
        "artifacts" if !value.is_null() => {
            job.artifacts = convert::artifacts(r, key, value);
        }
        "cache" => job.cache = convert::caches(r, key, value).unwrap_or_default(),
        "needs" => {
            let (needs, upstream) = convert::job_needs(r, key, value, job.kind);
            job.needs = needs;
            job.upstream = upstream;
        }
        "dependencies" => {
            if let Some(seq) = value.as_seq() {
                def.dependency_spans = seq.iter().map(|n| n.span).collect();
            }
            job.dependencies = r.strings(key, value, false);
        }
        "tags" => job.tags = r.strings(key, value, false).unwrap_or_default(),
        "trigger" => job.trigger = convert::trigger(r, key, value),
        "pages" => job.pages = convert::pages(r, key, value).flatten(),
        "release" => job.release = convert::release(r, key, value),
        "secrets" => job.secrets = convert::secrets(r, key, value),
        "id_tokens" => job.id_tokens = convert::id_tokens(r, key, value).unwrap_or_default(),
        "hooks" => job.hooks = convert::hooks(r, key, value),
        "parallel" => def.parallel = convert::parallel(r, key, value),
        "manual_confirmation" => job.manual_confirmation = r.string(key, value),
        "rules" => {
            if value.as_seq().is_some_and(<[Node]>::is_empty) {
                // GitLab: entry/rules.rb — `rules: []` "can't be blank".
                r.expected(key, value, "a non-empty list of rules");
            } else if value
                .flattened()
                .is_some_and(|(_, depth)| depth > RULES_MAX_NESTING)
            {
                // GitLab: entry/processable.rb (`nested_array_of_hashes_or_arrays: { max_level: 10 }`).
                let name = def.job.name.clone();
                let span = r.anchor(value);
                r.push(
                    Diagnostic::error(span, format!("`rules` of job `{name}` should be a list of rules and lists of rules, nested at most {RULES_MAX_NESTING} lists deep"))
                        .with_code("rules-too-deep")
                        .with_note(
                            Span::synthetic(),
                            format!("GitLab reports: jobs:{name} rules should be an array containing hashes and arrays of hashes"),
                        ),
                );
            } else {
                let place = r.place.clone();
                def.rules = Some(rules_from_node_in(value, RulesKind::Job, &place, r.diags));
            }
        }
        "only" | "except" => {
            let place = r.place.clone();
            let policy = only_except_from_node(value, key, &place, r.diags);
            if key == "only" {
                def.only = policy;
            } else {
                def.except = policy;
            }
        }
        "inherit" | "extends" | "identity" | "dast_configuration" | "publish" | "inputs" => {}
        _ => {}
    }
}

/// `when:` and `start_in:`. GitLab: entry/job.rb — `start_in` only with `when: delayed` (and
/// required there), at most one week; a job-level `when: manual` defaults `allow_failure` to true.
fn finish_when(
    r: &mut Reader<'_>,
    job: &mut Job,
    def: &mut JobDef,
    start_in: Option<(String, u64, Span)>,
    when_text: Option<(String, Span)>,
) {
    let allowed = if job.kind == JobKind::Trigger {
        keywords::TRIGGER_WHEN
    } else {
        keywords::JOB_WHEN
    };
    let mut when = When::OnSuccess;
    if let Some((text, span)) = &when_text {
        let node = Node::new(*span, Value::Str(text.clone()));
        match r.one_of("when", &node, allowed).as_deref() {
            Some("on_failure") => when = When::OnFailure,
            Some("always") => when = When::Always,
            Some("manual") => when = When::Manual,
            Some("delayed") => match &start_in {
                Some((text, seconds, span)) => {
                    if *seconds > 604_800 || *seconds == 0 {
                        r.error(*span, format!("`start_in` in {}: expected a duration from 1 second to 1 week, found `{text}`", r.place));
                    }
                    when = When::Delayed {
                        start_in: text.clone(),
                        duration: std::time::Duration::from_secs(*seconds),
                    };
                }
                None => r.error(
                    *span,
                    format!("`when: delayed` in {} needs `start_in`", r.place),
                ),
            },
            _ => {}
        }
        def.when_set = true;
    }
    if let Some((_, _, span)) = start_in
        && !matches!(when, When::Delayed { .. })
    {
        r.error(
            span,
            format!(
                "`start_in` in {} is only allowed with `when: delayed`",
                r.place
            ),
        );
    }
    if when == When::Manual && !def.allow_failure_set {
        job.allow_failure = AllowFailure::Bool(true);
    }
    job.when = when;
}

fn check_combinations(r: &mut Reader<'_>, job: &Job, def: &JobDef, node: &Node) {
    // GitLab: entry/processable.rb — "key may not be used with `rules`: only, except".
    if let Some(rules) = node.get_entry("rules") {
        let mut with: Vec<&str> = Vec::new();
        for k in ["only", "except"] {
            if node.get(k).is_some() {
                with.push(k);
            }
        }
        if !with.is_empty() {
            r.error(
                rules.0.span,
                format!(
                    "`rules` in {} cannot be combined with {}",
                    r.place,
                    with.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
        }
        if let Some((k, _)) = node.get_entry("start_in") {
            r.error(
                k.span,
                format!("`start_in` in {} cannot be used with `rules`", r.place),
            );
        }
    }
    if node.get("script").is_some() && node.get("run").is_some() {
        r.error(job.span, format!("{} has both `script` and `run`", r.place));
    }
    if node.get("trigger").is_some() && (node.get("script").is_some() || node.get("run").is_some())
    {
        r.error(
            job.span,
            format!("{} has both `trigger` and `script`", r.place),
        );
    }
    // GitLab: entry/job.rb — "the X should be part of needs".
    if let (Some(deps), Some(needs)) = (&job.dependencies, &job.needs) {
        for (i, dep) in deps.iter().enumerate() {
            let needed = needs
                .iter()
                .any(|n| matches!(n, crate::job::Need::Job { job, .. } if job == dep));
            if !needed {
                let span = def.dependency_spans.get(i).copied().unwrap_or(job.span);
                r.error(
                    span,
                    format!("dependency `{dep}` of {} is not in its `needs`", r.place),
                );
            }
        }
    }
}
