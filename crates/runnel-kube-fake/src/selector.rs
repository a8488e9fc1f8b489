//! `labelSelector` and `fieldSelector` of list and watch requests, parsed and matched as
//! `k8s.io/apimachinery/pkg/labels/selector.go` and `pkg/fields/selector.go` do (set-based
//! requirements included).

use serde_json::Value;

use crate::kind::Kind;
use crate::status::ApiError;
use crate::validate::names;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed `labelSelector` (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a selector as the query parameter carries it.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).map_err(|why| {
                ApiError::bad_request(format!("unable to parse requirement: {why}"))
            })?);
        }
        Ok(Self { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, values) => get(k).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(k, values) => get(k).is_none_or(|v| values.iter().all(|x| x != v)),
            Requirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// Splits at commas that are not inside `( … )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::NotExists(key.to_owned()));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            let values = vec![value.to_owned()];
            return Ok(if negate {
                Requirement::NotIn(key.to_owned(), values)
            } else {
                Requirement::In(key.to_owned(), values)
            });
        }
    }
    for (op, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let key = key.trim();
            check_key(key)?;
            let n: i64 = value.trim().parse().map_err(|_| {
                format!("for 'Gt', 'Lt' operators, the value must be an integer: {value:?}")
            })?;
            return Ok(if greater {
                Requirement::Gt(key.to_owned(), n)
            } else {
                Requirement::Lt(key.to_owned(), n)
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (negate, list) = if let Some(list) = rest.strip_prefix("notin") {
            (true, list)
        } else if let Some(list) = rest.strip_prefix("in") {
            (false, list)
        } else {
            return Err(format!(
                "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
            ));
        };
        check_key(key)?;
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("found '{list}', expected: '('"))?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
        for value in &values {
            check_value(value)?;
        }
        return Ok(if negate {
            Requirement::NotIn((*key).to_owned(), values)
        } else {
            Requirement::In((*key).to_owned(), values)
        });
    }
    check_key(part)?;
    Ok(Requirement::Exists(part.to_owned()))
}

fn check_key(key: &str) -> Result<(), String> {
    let errors = names::qualified_name(key);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {key:?}: {}",
            errors.join("; ")
        ))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    let errors = names::label_value(value);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "values[0]: Invalid value: {value:?}: {}",
            errors.join("; ")
        ))
    }
}

/// A parsed `fieldSelector`: `field=value`, `field==value` and `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses a field selector and checks each field is one the kind supports.
    pub(crate) fn parse(text: &str, kind: Kind) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported_fields(kind).contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_owned(), value.trim().to_owned(), negate));
        }
        Ok(Self { terms })
    }

    /// Whether the object's fields satisfy every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, value, negate)| {
            let pointer = match field.as_str() {
                "source" => "/source/component".to_owned(),
                other => format!("/{}", other.replace('.', "/")),
            };
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(other) => other.to_string(),
                None if field == "spec.hostNetwork" => "false".to_owned(),
                None => String::new(),
            };
            (actual == *value) != *negate
        })
    }
}

/// The field labels the real server converts for each kind.
fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
        Kind::Namespace => &["metadata.name", "status.phase"],
        Kind::Event => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldSelector, LabelSelector};
    use crate::kind::Kind;

    #[test]
    fn equality_and_set_requirements() {
        let pod = json!({"metadata": {"labels": {"job.runner.gitlab.com/id": "7", "app": "web"}}});
        let matching = [
            "job.runner.gitlab.com/id=7",
            "app==web,job.runner.gitlab.com/id",
            "app in (db, web)",
            "app notin (db)",
            "!missing",
            "job.runner.gitlab.com/id>6",
        ];
        for text in matching {
            assert!(LabelSelector::parse(text).unwrap().matches(&pod), "{text}");
        }
        for text in ["app!=web", "app in (db)", "missing", "!app"] {
            assert!(!LabelSelector::parse(text).unwrap().matches(&pod), "{text}");
        }
    }

    #[test]
    fn bad_selectors_are_400() {
        assert_eq!(LabelSelector::parse("a b c").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("Bad Key!=x").unwrap_err().code, 400);
        let error = FieldSelector::parse("spec.image=x", Kind::Pod).unwrap_err();
        assert_eq!(error.message, "field label not supported: spec.image");
    }

    #[test]
    fn field_selector_on_name_and_phase() {
        let pod = json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=a,status.phase!=Failed", Kind::Pod)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("metadata.name=b", Kind::Pod)
                .unwrap()
                .matches(&pod)
        );
    }
}
