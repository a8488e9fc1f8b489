//! `include:rules`: `if` (through the `rules` expression language), `exists`, `changes`, `when`.
//! GitLab: lib/gitlab/ci/config/external/rules.rb.

use crate::diag::Diagnostic;
use crate::expand::expand_server;
use crate::include::{Loader, Origin};
use crate::rules::glob::fnmatch;
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    /// `include:rules`: the first rule whose clauses all match decides (`when: never` excludes);
    /// no match excludes the include. GitLab: lib/gitlab/ci/config/external/rules.rb.
    pub(super) fn rules_match(&mut self, rules: &Node, origin: &Origin) -> bool {
        // GitLab: entry/include/rules.rb is a ComposableArray, which flattens nested lists.
        let Some((items, _)) = rules.flattened() else {
            self.error(
                Diagnostic::error(rules.span, "`include:rules` should be an array of mappings")
                    .with_code("include-rules"),
            );
            return false;
        };
        for rule in items {
            if rule.as_map().is_none() {
                self.error(
                    Diagnostic::error(rule.span, "an `include:rules` rule should be a mapping")
                        .with_code("include-rules"),
                );
                return false;
            }
            if !self.rule_clauses_match(rule, origin) {
                continue;
            }
            return rule.get("when").and_then(Node::as_str) != Some("never");
        }
        false
    }

    pub(super) fn rule_clauses_match(&mut self, rule: &Node, origin: &Origin) -> bool {
        if let Some(condition) = rule.get("if") {
            let Some(text) = condition.as_str() else {
                self.error(
                    Diagnostic::error(condition.span, "`rules:if` should be a string")
                        .with_code("include-rules"),
                );
                return false;
            };
            match crate::rules::Expr::parse(text) {
                Ok(expr) => {
                    if !expr.evaluate(&self.variables(origin)) {
                        return false;
                    }
                }
                Err(e) => {
                    self.error(
                        Diagnostic::error(condition.span, e.to_string()).with_code("include-rules"),
                    );
                    return false;
                }
            }
        }
        if let Some(exists) = rule.get("exists") {
            let paths: Vec<&str> = rule_paths(exists);
            let files = match origin.project_root.as_deref() {
                Some(root) => self.files_of(root),
                None => Vec::new().into(),
            };
            let any = paths.iter().any(|p| {
                let p = expand_server(p, &self.variables(origin));
                let glob = p.trim_start_matches('/');
                files.iter().any(|f| fnmatch(glob, f))
            });
            if !any {
                return false;
            }
        }
        // Without the pushed diff every `changes:` matches, as GitLab does without a diff base.
        if let (Some(changes), Some(changed)) = (rule.get("changes"), &self.opts.changed_files) {
            let globs = rule_paths(changes);
            let vars = self.variables(origin);
            let any = globs.iter().any(|g| {
                let g = expand_server(g, &vars);
                let glob = g.trim_start_matches('/');
                changed.iter().any(|f| fnmatch(glob, f))
            });
            if !any {
                return false;
            }
        }
        true
    }
}

/// The paths of `exists:` or `changes:`: a string, a list, or a mapping with `paths:`.
fn rule_paths(node: &Node) -> Vec<&str> {
    let list = match &node.value {
        Value::Map(_) => node.get("paths"),
        _ => Some(node),
    };
    match list.map(|n| &n.value) {
        Some(Value::Str(s)) => vec![s.as_str()],
        Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).collect(),
        _ => Vec::new(),
    }
}
