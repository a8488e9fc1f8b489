//! Seeding: for one pipeline context, whether `workflow:rules` admit the pipeline and whether
//! each job is in it, with the attributes of its matched rule. The rules themselves are
//! evaluated by [`crate::rules`]; this module maps their outcome onto the job model.
//!
//! GitLab: lib/gitlab/ci/build/rules.rb (first match wins, no match excludes),
//! lib/gitlab/ci/pipeline/seed/build.rb (`included?`, `rules_attributes`),
//! lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb.

use std::collections::HashMap;

use crate::context::{PipelineContext, RefType};
use crate::diag::{Diagnostic, Diagnostics};
use crate::exclusion::Exclusion;
use crate::job::build::JobDef;
use crate::job::read::Reader;
use crate::job::{Need, convert};
use crate::rules::{RefContext, RuleContext, evaluate_only_except, evaluate_rules_with_default};
use crate::source::Span;
use crate::variables::Variable;
use crate::when::{AllowFailure, When};
use crate::workflow::Workflow;

/// The variables rules see: later definitions already replaced earlier ones.
pub(crate) type Lookup = HashMap<String, String>;

/// What a job's matched rule says, for a job that is in the pipeline.
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

fn rule_context<'a>(vars: &'a Lookup, context: &'a PipelineContext) -> RuleContext<'a> {
    RuleContext::new(vars)
        .with_changed_files(context.changed_files.as_deref())
        .with_project_dir(context.project_dir.as_deref())
}

fn to_variables(pairs: Vec<(String, String)>) -> Vec<Variable> {
    pairs
        .into_iter()
        .map(|(k, v)| Variable::synthetic(k, v))
        .collect()
}

/// The `if:` of rule `index`, as written.
fn condition(rules: &[crate::rules::Rule], index: Option<usize>) -> Option<String> {
    let rule = rules.get(index?)?;
    rule.if_.as_ref().map(|e| e.as_str().to_owned())
}

/// `Err` when `workflow:rules` exclude the pipeline, with the rule that decided.
pub(crate) fn evaluate_workflow(
    workflow: &Workflow,
    vars: &Lookup,
    context: &PipelineContext,
) -> Result<WorkflowDecision, Exclusion> {
    let Some(rules) = &workflow.rules else {
        return Ok(WorkflowDecision::default());
    };
    let outcome = evaluate_rules_with_default(rules, &rule_context(vars, context), &When::Always);
    if !outcome.pass() {
        return Err(Exclusion::Workflow {
            rule: outcome.matched_rule,
            condition: condition(rules, outcome.matched_rule),
        });
    }
    Ok(WorkflowDecision {
        variables: to_variables(outcome.variables),
        auto_cancel: outcome.auto_cancel.as_ref().map(crate::yaml::Node::to_json),
        matched_rule: outcome.matched_rule,
    })
}

/// `Ok(Ok(_))` when the job is in the pipeline, `Ok(Err(_))` with the reason when it is not.
/// GitLab: seed/build.rb (`included?`).
pub(crate) fn decide(
    def: &JobDef,
    vars: &Lookup,
    context: &PipelineContext,
    has_workflow_rules: bool,
) -> Result<Result<Decision, Exclusion>, Diagnostic> {
    let Some(rules) = &def.rules else {
        let refs = RefContext {
            ref_name: &context.ref_name,
            tag: context.ref_type == RefType::Tag,
            source: &context.source,
            project_path: context.project_path.as_deref(),
            variables: vars,
            changed_files: context.changed_files.as_deref(),
            kubernetes_active: false,
            has_workflow_rules,
        };
        if evaluate_only_except(def.only.as_ref(), def.except.as_ref(), &refs) {
            return Ok(Ok(Decision::default()));
        }
        // Which of the two left it out: `only` alone, else `except`.
        let only_holds = evaluate_only_except(def.only.as_ref(), None, &refs);
        let kind = if context.ref_type == RefType::Tag {
            "tag"
        } else {
            "branch"
        };
        let pipeline = format!("{kind} `{}`, source `{}`", context.ref_name, context.source);
        return Ok(Err(if only_holds {
            Exclusion::Except { pipeline }
        } else {
            Exclusion::Only { pipeline }
        }));
    };
    let outcome = evaluate_rules_with_default(rules, &rule_context(vars, context), &def.job.when);
    if !outcome.errors.is_empty() {
        // GitLab: seed/build.rb (`rules_errors`).
        let name = &def.job.name;
        let errors = outcome.errors.join(", ");
        return Err(Diagnostic::error(
            def.job.span,
            format!("failed to evaluate the rules of job `{name}`: {errors}"),
        )
        .with_code("rules-evaluation")
        .with_note(
            Span::synthetic(),
            format!("GitLab reports: Failed to parse rule for {name}: {errors}"),
        ));
    }
    if !outcome.pass() {
        return Ok(Err(Exclusion::Rules {
            rule: outcome.matched_rule,
            condition: condition(rules, outcome.matched_rule),
        }));
    }
    let mut scratch = Diagnostics::new();
    let mut r = Reader::new(&mut scratch, "`rules`");
    Ok(Ok(Decision {
        when: outcome.matched_rule.map(|_| outcome.when.clone()),
        allow_failure: outcome.allow_failure,
        variables: to_variables(outcome.variables),
        needs: outcome
            .needs
            .as_ref()
            .and_then(|n| convert::needs(&mut r, "rules:needs", n)),
        interruptible: outcome.interruptible,
    }))
}
