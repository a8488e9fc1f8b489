//! Seeding: for one pipeline context, whether `workflow:rules` admit the pipeline and whether
//! each job is in it, with the attributes of its matched rule.
//!
//! GitLab: lib/gitlab/ci/build/rules.rb (first match wins, no match excludes),
//! lib/gitlab/ci/build/policy/*.rb (`only`/`except`), lib/gitlab/ci/pipeline/seed/build.rb
//! (`included?`), chain/evaluate_workflow_rules.rb.

use std::collections::HashMap;

use crate::context::{PipelineContext, RefType};
use crate::diag::Diagnostic;
use crate::job::build::JobDef;
use crate::job::read::Reader;
use crate::job::types::Policy;
use crate::job::{Need, convert};
use crate::rules::Expr;
use crate::variables::{Variable, VariablesPlace, read_variables};
use crate::when::{AllowFailure, When};
use crate::workflow::Workflow;
use crate::yaml::Node;

/// What a job's matched rule (or `only`/`except`) says, for a job that is in the pipeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decision {
    pub(crate) when: Option<When>,
    pub(crate) allow_failure: Option<AllowFailure>,
    pub(crate) variables: Vec<Variable>,
    pub(crate) needs: Option<Vec<Need>>,
    pub(crate) interruptible: Option<bool>,
}

/// What `workflow:rules` said, for a pipeline that is created.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkflowDecision {
    pub(crate) variables: Vec<Variable>,
    pub(crate) auto_cancel: Option<serde_json::Value>,
    pub(crate) matched_rule: Option<usize>,
}

/// `None` when `workflow:rules` exclude the pipeline.
pub(crate) fn evaluate_workflow(
    workflow: &Workflow,
    vars: &[(String, String)],
    context: &PipelineContext,
) -> Result<Option<WorkflowDecision>, Diagnostic> {
    let Some(rules) = workflow.rules.as_ref().and_then(Node::as_seq) else {
        return Ok(Some(WorkflowDecision::default()));
    };
    for (i, rule) in rules.iter().enumerate() {
        if !rule_matches(rule, vars, context) {
            continue;
        }
        if rule.get("when").and_then(Node::as_str) == Some("never") {
            return Ok(None);
        }
        let mut scratch = crate::diag::Diagnostics::new();
        let mut r = Reader::new(&mut scratch, "`workflow:rules`");
        let variables = rule
            .get("variables")
            .map(|v| read_variables(&mut r, "variables", v, VariablesPlace::Rule))
            .unwrap_or_default();
        return Ok(Some(WorkflowDecision {
            variables,
            auto_cancel: rule.get("auto_cancel").map(Node::to_json),
            matched_rule: Some(i),
        }));
    }
    Ok(None)
}

/// `Some` when the job is in the pipeline. GitLab: seed/build.rb (`included?`).
pub(crate) fn decide(
    def: &JobDef,
    vars: &[(String, String)],
    context: &PipelineContext,
    has_workflow_rules: bool,
) -> Result<Option<Decision>, Diagnostic> {
    if let Some(rules) = def.rules.as_ref().and_then(Node::as_seq) {
        for rule in rules {
            if rule_matches(rule, vars, context) {
                return Ok(rule_decision(rule));
            }
        }
        return Ok(None);
    }
    // GitLab: entry/processable.rb — without `only`, a job gets `only: [branches, tags]`,
    // unless `workflow:rules` exist.
    let default_only = Policy {
        refs: Some(vec!["branches".into(), "tags".into()]),
        ..Policy::default()
    };
    let only = match &def.only {
        Some(only) => Some(only),
        None if !has_workflow_rules => Some(&default_only),
        None => None,
    };
    let included = only.is_none_or(|p| policy_satisfied(p, vars, context, false))
        && def
            .except
            .as_ref()
            .is_none_or(|p| !policy_satisfied(p, vars, context, true));
    Ok(included.then(Decision::default))
}

fn rule_decision(rule: &Node) -> Option<Decision> {
    let mut scratch = crate::diag::Diagnostics::new();
    let mut r = Reader::new(&mut scratch, "`rules`");
    let mut d = Decision::default();
    let start_in = rule
        .get("start_in")
        .and_then(|n| convert::duration(&mut r, "start_in", n));
    d.when = match rule.get("when").and_then(Node::as_str) {
        Some("never") => return None,
        Some("on_success") => Some(When::OnSuccess),
        Some("on_failure") => Some(When::OnFailure),
        Some("always") => Some(When::Always),
        Some("manual") => Some(When::Manual),
        Some("delayed") => start_in.map(|(text, secs)| When::Delayed {
            start_in: text,
            duration: std::time::Duration::from_secs(secs),
        }),
        _ => None,
    };
    d.allow_failure = rule
        .get("allow_failure")
        .and_then(|n| convert::allow_failure(&mut r, "allow_failure", n));
    d.interruptible = rule.get("interruptible").and_then(Node::as_bool);
    d.needs = rule
        .get("needs")
        .and_then(|n| convert::needs(&mut r, "needs", n));
    d.variables = rule
        .get("variables")
        .map(|v| read_variables(&mut r, "variables", v, VariablesPlace::Rule))
        .unwrap_or_default();
    Some(d)
}

/// A rule matches when all its clauses (`if`, `changes`, `exists`) are true.
fn rule_matches(rule: &Node, vars: &[(String, String)], context: &PipelineContext) -> bool {
    if let Some(cond) = rule.get("if").and_then(Node::as_str) {
        // A rule whose `if` cannot be evaluated does not match (GitLab: rules/rule/clause/if.rb).
        let Ok(expr) = Expr::parse(cond) else {
            return false;
        };
        if !expr.evaluate(&vars) {
            return false;
        }
    }
    if let Some(changes) = rule.get("changes") {
        let paths = changes.get("paths").unwrap_or(changes);
        let patterns = strings(paths);
        if !changes_match(&patterns, vars, context) {
            return false;
        }
    }
    if let Some(exists) = rule.get("exists") {
        let paths = exists.get("paths").unwrap_or(exists);
        if !exists_match(&strings(paths), vars, context) {
            return false;
        }
    }
    true
}

fn strings(node: &Node) -> Vec<String> {
    match node.as_seq() {
        Some(items) => items
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        None => node
            .as_str()
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default(),
    }
}

/// GitLab: rules/rule/clause/changes.rb — true when no diff is known.
fn changes_match(
    patterns: &[String],
    vars: &[(String, String)],
    context: &PipelineContext,
) -> bool {
    let Some(changed) = &context.changed_files else {
        return true;
    };
    let set = glob_set(patterns, vars);
    changed.iter().any(|f| set.is_match(f))
}

/// GitLab: rules/rule/clause/exists.rb — a file of the repository matches a pattern.
fn exists_match(patterns: &[String], vars: &[(String, String)], context: &PipelineContext) -> bool {
    let Some(dir) = &context.project_dir else {
        return false;
    };
    let set = glob_set(patterns, vars);
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .any(|p| !p.is_empty() && set.is_match(&p))
}

fn glob_set(patterns: &[String], vars: &[(String, String)]) -> globset::GlobSet {
    let map: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in patterns {
        let pattern = expand_simple(pattern, &map);
        if let Ok(glob) = globset::GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
        {
            builder.add(glob);
        }
    }
    builder
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty())
}

/// `only`/`except`: every present key must be satisfied (`only`), or any (`except`, which the
/// caller negates). GitLab: lib/gitlab/ci/build/policy/{refs,variables,changes,kubernetes}.rb.
fn policy_satisfied(
    p: &Policy,
    vars: &[(String, String)],
    context: &PipelineContext,
    except: bool,
) -> bool {
    let mut results: Vec<bool> = Vec::new();
    if let Some(refs) = &p.refs {
        results.push(refs.iter().any(|r| ref_matches(r, context)));
    }
    if let Some(exprs) = &p.variables {
        results.push(
            exprs
                .iter()
                .any(|e| Expr::parse(e).is_ok_and(|x| x.evaluate(&vars))),
        );
    }
    if let Some(changes) = &p.changes {
        results.push(changes_match(changes, vars, context));
    }
    if p.kubernetes.is_some() {
        results.push(false);
    }
    if except {
        results.iter().any(|b| *b)
    } else {
        results.iter().all(|b| *b)
    }
}

fn ref_matches(pattern: &str, context: &PipelineContext) -> bool {
    let pattern = pattern.split_once('@').map_or(pattern, |(p, _)| p);
    let source = context.source.as_str();
    let is_mr = source == "merge_request_event";
    match pattern {
        "branches" => context.ref_type == RefType::Branch && !is_mr,
        "tags" => context.ref_type == RefType::Tag,
        "api" => source == "api",
        "chat" => source == "chat",
        "external" => source == "external",
        "external_pull_requests" => source == "external_pull_request_event",
        "merge_requests" => is_mr,
        "pipelines" => source == "pipeline" || source == "parent_pipeline",
        "pushes" => source == "push",
        "schedules" => source == "schedule",
        "triggers" => source == "trigger",
        "web" => source == "web",
        _ if is_mr => false,
        _ if pattern.len() > 2
            && pattern.starts_with('/')
            && pattern.rfind('/').is_some_and(|i| i > 0) =>
        {
            crate::rules::Pattern::new(pattern).is_ok_and(|re| re.is_match(&context.ref_name))
        }
        _ => pattern == context.ref_name,
    }
}

/// Replaces `$VAR` and `${VAR}` of defined variables; undefined ones stay as written.
/// GitLab: lib/expand_variables.rb (`expand_existing`).
pub(crate) fn expand_simple(text: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let (name, end) = if bytes.get(i + 1) == Some(&b'{') {
                match text[i + 2..].find('}') {
                    Some(close) => (&text[i + 2..i + 2 + close], i + 3 + close),
                    None => ("", i + 1),
                }
            } else {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&text[i + 1..i + 1 + len], i + 1 + len)
            };
            if let Some(value) = (!name.is_empty()).then(|| vars.get(name)).flatten() {
                out.push_str(value);
                i = end;
                continue;
            }
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}
