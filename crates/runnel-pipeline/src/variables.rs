//! YAML-defined CI/CD variables: the top-level (default) variables, job variables and the
//! `rules:variables` overrides, with GitLab's precedence when they are merged.
//!
//! Expansion (`$VAR` inside values) is not done here: see `expand.rs`.
//! GitLab: lib/gitlab/ci/config/entry/variables.rb, entry/variable.rb,
//! lib/gitlab/ci/variables/helpers.rb (`inherit_yaml_variables`, `merge_variables`).

use serde::Serialize;

use crate::job::read::{Reader, scalar_string};
use crate::keywords;
use crate::source::Span;
use crate::yaml::{Node, Value};

/// One variable as written in YAML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variable {
    pub name: String,
    /// The value, stringified as GitLab does (`1.10` → `1.1`).
    pub value: String,
    /// `false` for `expand: false`: the value is used as is (GitLab's `raw`).
    #[serde(skip_serializing_if = "is_true")]
    pub expand: bool,
    /// Top-level only: shown in the "Run pipeline" form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Top-level only: the values the form offers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Where the variable was defined (synthetic for CLI and predefined variables).
    #[serde(skip)]
    pub span: Span,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Variable {
    /// A plain variable that came from no file (`--var`, predefined, matrix).
    pub fn synthetic(name: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            name: name.into(),
            value: value.into(),
            expand: true,
            description: None,
            options: Vec::new(),
            span: Span::synthetic(),
        }
    }
}

/// Where a `variables:` mapping appears; decides which mapping keys a variable may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariablesPlace {
    /// Top level: `value`, `description`, `expand`, `options`.
    TopLevel,
    /// A job: `value`, `expand`.
    Job,
    /// `rules:variables` and `workflow:rules:variables`: scalars only.
    Rule,
}

/// Reads a `variables:` mapping. Errors are reported and the faulty variables skipped.
pub(crate) fn read_variables(
    r: &mut Reader<'_>,
    key: &str,
    node: &Node,
    place: VariablesPlace,
) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::new();
    if matches!(node.value, Value::Null) {
        return out;
    }
    let Some(entries) = r.map(key, node) else {
        return out;
    };
    for (name, value) in entries {
        let var_key = format!("{key}:{}", name.as_str());
        let variable = match &value.value {
            Value::Map(_) if place != VariablesPlace::Rule => {
                read_complex(r, &var_key, name.as_str(), value, place)
            }
            // GitLab: lib/gitlab/config/entry/composable_hash.rb turns a null variable into `{}`,
            // a `ComplexVariable` without `value`, whose value is `nil.to_s`: the empty string
            // (`rules:variables` allow no mapping: there it stays an error).
            Value::Null if place != VariablesPlace::Rule => Some(Variable {
                span: name.span,
                ..Variable::synthetic(name.as_str(), "")
            }),
            _ => match scalar_string(value) {
                Some(v) => Some(Variable {
                    span: name.span,
                    ..Variable::synthetic(name.as_str(), v)
                }),
                None => {
                    let expected = if place == VariablesPlace::Rule {
                        "a string"
                    } else {
                        "a string or a mapping with `value`"
                    };
                    r.expected(&var_key, value, expected);
                    None
                }
            },
        };
        if let Some(variable) = variable {
            // A later duplicate wins, as in a Ruby hash.
            if let Some(existing) = out.iter_mut().find(|v| v.name == variable.name) {
                *existing = variable;
            } else {
                out.push(variable);
            }
        }
    }
    out
}

fn read_complex(
    r: &mut Reader<'_>,
    key: &str,
    name: &str,
    node: &Node,
    place: VariablesPlace,
) -> Option<Variable> {
    let allowed = if place == VariablesPlace::TopLevel {
        keywords::VARIABLE_TOP
    } else {
        keywords::VARIABLE_JOB
    };
    r.keys(key, node, allowed);
    let entries = node.as_map()?;
    let mut variable = Variable {
        span: node.span,
        ..Variable::synthetic(name, "")
    };
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        match k.as_str() {
            // GitLab: entry/variable.rb — `value` may be null (`allow_nil`), read as `""`.
            "value" if matches!(v.value, Value::Null) => {}
            "value" => variable.value = r.scalar(&sub, v)?,
            "expand" => variable.expand = r.boolean(&sub, v)?,
            "description" => variable.description = Some(r.scalar(&sub, v)?),
            "options" => variable.options = r.strings(&sub, v, false)?,
            _ => {}
        }
    }
    // GitLab: entry/variable.rb (`ComplexVariable`) — the value must be one of the options.
    if !variable.options.is_empty() && !variable.options.contains(&variable.value) {
        r.error(
            node.span,
            format!(
                "variable `{name}` in {}: the value `{}` is not one of its `options`",
                r.place, variable.value
            ),
        );
    }
    Some(variable)
}

/// Sets `incoming` over `base`: a variable of the same name is replaced in place, new ones are
/// appended. GitLab: lib/gitlab/ci/variables/helpers.rb (`merge_variables`).
pub fn merge(base: &mut Vec<Variable>, incoming: impl IntoIterator<Item = Variable>) {
    for variable in incoming {
        match base.iter_mut().find(|v| v.name == variable.name) {
            Some(existing) => *existing = variable,
            None => base.push(variable),
        }
    }
}
