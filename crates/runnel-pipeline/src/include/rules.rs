//! `include:rules`: `if` (through the `rules` expression language), `exists`, `changes`, `when`.
//! GitLab: lib/gitlab/ci/config/external/rules.rb.

use crate::diag::Diagnostic;
use crate::include::paths::glob_regex;
use crate::include::{Loader, Origin};
use crate::inputs;
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    /// `include:rules`: the first rule whose clauses all match decides (`when: never` excludes);
    /// no match excludes the include. GitLab: lib/gitlab/ci/config/external/rules.rb.
    pub(super) fn rules_match(&mut self, rules: &Node, origin: &Origin) -> bool {
        let Some(items) = rules.as_seq() else {
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
            let paths: Vec<&str> = match &exists.value {
                Value::Str(s) => vec![s.as_str()],
                Value::Seq(items) => items.iter().filter_map(Node::as_str).collect(),
                Value::Map(_) => match exists.get("paths") {
                    Some(p) => match &p.value {
                        Value::Str(s) => vec![s.as_str()],
                        Value::Seq(items) => items.iter().filter_map(Node::as_str).collect(),
                        _ => Vec::new(),
                    },
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            let files = match origin.project_root.as_deref() {
                Some(root) => self.files_of(root),
                None => Vec::new().into(),
            };
            let any = paths.iter().any(|p| {
                let p = inputs::expand(p, self.variables(origin), false);
                let pattern = glob_regex(p.trim_start_matches('/'));
                files.iter().any(|f| pattern.is_match(f))
            });
            if !any {
                return false;
            }
        }
        // `changes:` needs the pushed diff; locally every file counts as changed, as GitLab does
        // for pipelines without a diff base.
        true
    }
}
