//! `spec:inputs:<name>:rules`: conditional `options` and `default` of an input.
//!
//! GitLab: lib/gitlab/ci/config/header/input.rb (`rules` excludes `options` and `default`),
//! header/input/rules.rb and rules/rule.rb (what a rule may hold), lib/ci/inputs/rules_evaluator.rb
//! (the first rule whose `if` is true, or the first rule without `if`, gives the options and the
//! default). GitLab shows the resolved default and options in its "Run pipeline" form; runnel has
//! no form, so it uses them directly: the resolved default fills an input that was not passed and
//! the resolved options restrict a passed value. GitLab 18.6 puts `rules` behind the
//! `ci_dynamic_pipeline_inputs` feature flag (off by default: "rules is not yet supported").

use crate::diag::{Diagnostic, Diagnostics};
use crate::rules::eval::VarLookup;
use crate::rules::parse::Expr;
use crate::yaml::{Key, Node};

/// GitLab: header/input.rb `ALLOWED_OPTIONS_LIMIT`.
const OPTIONS_LIMIT: usize = 50;

/// The options and default of the rule that applies, if one does.
#[derive(Debug, Default)]
pub(crate) struct Resolved<'a> {
    pub(crate) options: Option<&'a [Node]>,
    pub(crate) default: Option<&'a Node>,
}

/// The other inputs' values, as `$[[ inputs.name ]]` reads them in a rule's `if`.
struct Inputs<'a>(&'a [(String, String)]);

impl VarLookup for Inputs<'_> {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }

    fn lookup_input(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Validates the `rules` of input `name` and returns what the first matching rule gives.
/// `None` when the rules are invalid (the errors are in `diagnostics`).
pub(crate) fn resolve<'a>(
    name: &Key,
    spec: &'a Node,
    rules: &'a Node,
    current: &[(String, String)],
    diagnostics: &mut Diagnostics,
) -> Option<Resolved<'a>> {
    let input = name.name.as_str();
    let err = |node: &Node, message: String| {
        Diagnostic::error(node.span, format!("`{input}` input: {message}"))
            .with_code("inputs-invalid")
    };
    let before = diagnostics.len();
    // GitLab: header/input.rb `mutually_exclusive_keys: %i[rules options]` and `%i[rules default]`.
    for other in ["options", "default"] {
        if let Some((key, _)) = spec.get_entry(other) {
            let keys: Vec<&str> = spec
                .as_map()
                .unwrap_or_default()
                .iter()
                .map(|(k, _)| k.name.as_str())
                .filter(|k| *k == "rules" || *k == other)
                .collect();
            diagnostics.push(
                Diagnostic::error(
                    key.span,
                    format!("`{input}` input: `rules` and `{other}` cannot be used together"),
                )
                .with_code("inputs-invalid")
                .with_help(format!("move `{other}` into the rules"))
                .with_note(
                    crate::source::Span::synthetic(),
                    format!(
                        "GitLab reports: header:spec:inputs:{input} config please use only one the following keys: {}",
                        keys.join(", ")
                    ),
                ),
            );
        }
    }
    let Some(items) = rules.as_seq() else {
        diagnostics.push(err(rules, "rules config should be an array".into()));
        return None;
    };
    for rule in items {
        check_rule(rule, &err, diagnostics);
    }
    if diagnostics.len() != before {
        return None;
    }
    let lookup = Inputs(current);
    let matching = items
        .iter()
        .find(|rule| match rule.get("if").and_then(Node::as_str) {
            None => true,
            Some(text) => Expr::parse(text).is_ok_and(|e| e.evaluate(&lookup)),
        });
    Some(matching.map_or_else(Resolved::default, |rule| Resolved {
        options: rule.get("options").and_then(Node::as_seq),
        default: rule.get_entry("default").map(|(_, v)| v),
    }))
}

/// GitLab: header/input/rules/rule.rb — one rule's keys and their values. Messages are worded as
/// header/input/rules.rb `errors` rewrites them: "`name` input: <message>".
fn check_rule(
    rule: &Node,
    err: &dyn Fn(&Node, String) -> Diagnostic,
    diagnostics: &mut Diagnostics,
) {
    let Some(entries) = rule.as_map() else {
        diagnostics.push(err(rule, "config should be a hash".into()));
        return;
    };
    if entries.is_empty() {
        diagnostics.push(err(rule, "config can't be blank".into()));
        return;
    }
    let unknown: Vec<&str> = entries
        .iter()
        .map(|(k, _)| k.name.as_str())
        .filter(|k| !matches!(*k, "if" | "options" | "default"))
        .collect();
    if !unknown.is_empty() {
        diagnostics.push(err(
            rule,
            format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
        return;
    }
    let condition = rule.get("if");
    if let Some(condition) = condition {
        let valid = condition.as_str().is_some_and(|t| Expr::parse(t).is_ok());
        if !valid {
            diagnostics.push(err(condition, "if invalid expression syntax".into()));
            return;
        }
    }
    let options = rule.get("options");
    if let Some(o) = options
        && o.as_seq().is_none()
    {
        diagnostics.push(err(o, "options should be an array".into()));
        return;
    }
    let options = options.and_then(Node::as_seq).unwrap_or_default();
    if options.len() > OPTIONS_LIMIT {
        diagnostics.push(err(
            rule,
            format!("config cannot define more than {OPTIONS_LIMIT} options"),
        ));
        return;
    }
    let default = rule.get_entry("default").map(|(_, v)| v);
    // A rule with `if` needs a `default`; the fallback rule (no `if`) needs options and a default.
    if default.is_none() || (condition.is_none() && options.is_empty()) {
        diagnostics.push(err(
            rule,
            "must define 'options' with at least one value and a 'default'".into(),
        ));
        return;
    }
    if let Some(default) = default
        && !options.is_empty()
    {
        let text = default.scalar_to_string().unwrap_or_default();
        if !options
            .iter()
            .any(|o| o.scalar_to_string().unwrap_or_default() == text)
        {
            diagnostics.push(err(
                default,
                format!("default '{text}' must be one of the options"),
            ));
        }
    }
}
