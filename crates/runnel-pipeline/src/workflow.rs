//! `workflow:`: whether a pipeline is created at all (`workflow:rules`), its name and its
//! `auto_cancel` settings. Evaluation against a context happens in `pipeline.rs`.
//!
//! GitLab: lib/gitlab/ci/config/entry/workflow.rb, entry/auto_cancel.rb,
//! lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb.

use serde::Serialize;

use crate::job::read::{Reader, to_json};
use crate::keywords;
use crate::rules::{Rule, RulesKind, rules_from_node_in};
use crate::yaml::Node;

/// `workflow:` as written, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workflow {
    /// `workflow:name` before expansion.
    pub(crate) name: Option<String>,
    /// `workflow:auto_cancel`.
    pub(crate) auto_cancel: Option<serde_json::Value>,
    /// `workflow:rules`, validated; `None` when absent.
    pub(crate) rules: Option<Vec<Rule>>,
}

/// What `workflow:` decided for one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowOutcome {
    /// The pipeline name (`CI_PIPELINE_NAME`), variables expanded, trimmed; `None` if empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `auto_cancel` of the matched rule, else of `workflow:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_cancel: Option<serde_json::Value>,
    /// The 0-based index of the workflow rule that matched, if `workflow:rules` exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<usize>,
}

pub(crate) fn read_workflow(r: &mut Reader<'_>, node: &Node) -> Workflow {
    let mut workflow = Workflow::default();
    if node.is_null() {
        return workflow;
    }
    let Some(entries) = r.map("workflow", node) else {
        return workflow;
    };
    crate::keywords::check_keys(node, keywords::WORKFLOW, "`workflow`", r.diags);
    for (k, v) in entries {
        match k.as_str() {
            "name" => {
                if let Some(name) = r.scalar("workflow:name", v) {
                    // GitLab: entry/workflow.rb — 1 to 255 characters.
                    if name.is_empty() || name.chars().count() > 255 {
                        r.expected("workflow:name", v, "1 to 255 characters");
                    }
                    workflow.name = Some(name);
                }
            }
            "auto_cancel" => {
                read_auto_cancel(r, "workflow:auto_cancel", v);
                workflow.auto_cancel = Some(to_json(v));
            }
            "rules" if !v.is_null() => {
                let rules = rules_from_node_in(v, RulesKind::Workflow, "`workflow`", r.diags);
                workflow.rules = Some(rules);
            }
            _ => {}
        }
    }
    workflow
}

fn read_auto_cancel(r: &mut Reader<'_>, key: &str, node: &Node) {
    if r.map(key, node).is_none() {
        return;
    }
    crate::keywords::check_keys(node, keywords::AUTO_CANCEL, &format!("`{key}`"), r.diags);
    if let Some(v) = node.get("on_new_commit") {
        r.one_of(
            &format!("{key}:on_new_commit"),
            v,
            &["conservative", "interruptible", "none"],
        );
    }
    if let Some(v) = node.get("on_job_failure") {
        r.one_of(&format!("{key}:on_job_failure"), v, &["none", "all"]);
    }
}
