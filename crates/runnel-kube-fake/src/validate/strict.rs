//! Strict decoding, as `fieldValidation=Strict` does it: the body is read into the
//! `k8s-openapi` type, written back, and every field of the body that did not survive the round
//! trip is an unknown field. Explicit `null`s count as absent, as Go's decoder treats them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kind::Kind;
use crate::status::ApiError;

/// How unknown fields are handled (the `fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (400) naming every unknown field. The fake's default: the real
    /// server's default, `Warn`, would drop them silently from the stored object.
    Strict,
    /// Drop the unknown fields and name them in a `Warning` header.
    Warn,
    /// Drop them silently.
    Ignore,
}

impl FieldValidation {
    /// Reads the query parameter; absent means [`FieldValidation::Strict`] in the fake.
    pub fn from_query(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("Strict") => Ok(Self::Strict),
            Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// A body decoded into its type, with the unknown fields it carried.
#[derive(Debug)]
pub(crate) struct Decoded<T> {
    /// The typed object.
    pub(crate) object: T,
    /// Paths of fields the type does not have (`spec.containers[0].foo`).
    pub(crate) unknown: Vec<String>,
}

/// Decodes `body` as `kind`; fails as the real server does on a type error, a wrong
/// `apiVersion`/`kind`, or (with `Strict`) an unknown field.
pub(crate) fn decode<T>(
    kind: Kind,
    body: &Value,
    validation: FieldValidation,
) -> Result<Decoded<T>, ApiError>
where
    T: DeserializeOwned + Serialize,
{
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {}: {why}",
            kind.name(),
            kind.name()
        ))
    };
    if !body.is_object() {
        return Err(cannot("the body is not a JSON object".to_owned()));
    }
    if let Some(version) = body.get("apiVersion").and_then(Value::as_str)
        && version != "v1"
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({version}) does not match the expected API version (v1)"
        )));
    }
    if let Some(found) = body.get("kind").and_then(Value::as_str)
        && found != kind.name()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({found}) does not match the expected kind ({})",
            kind.name()
        )));
    }
    let object: T = serde_json::from_value(body.clone()).map_err(|e| cannot(e.to_string()))?;
    let written = serde_json::to_value(&object).map_err(|e| cannot(e.to_string()))?;
    let mut unknown = Vec::new();
    dropped_fields(body, &written, "", &mut unknown);
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(cannot(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    Ok(Decoded { object, unknown })
}

/// Collects the paths of `original` that `written` lacks.
pub(crate) fn dropped_fields(original: &Value, written: &Value, path: &str, out: &mut Vec<String>) {
    match (original, written) {
        (Value::Object(left), Value::Object(right)) => {
            for (key, value) in left {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match right.get(key) {
                    Some(next) => dropped_fields(value, next, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            for (i, (value, next)) in left.iter().zip(right).enumerate() {
                dropped_fields(value, next, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::{FieldValidation, decode};
    use crate::kind::Kind;

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let body = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"containers": [{"name": "build", "image": "x", "comand": ["sh"], "env": null}]}
        });
        let error = decode::<Pod>(Kind::Pod, &body, FieldValidation::Strict).unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(
            error.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.containers[0].comand\""
        );
        let decoded = decode::<Pod>(Kind::Pod, &body, FieldValidation::Ignore).unwrap();
        assert_eq!(decoded.unknown.len(), 2);
    }

    #[test]
    fn type_errors_and_wrong_kind_are_400() {
        let body = json!({"metadata": {"name": "p"}, "spec": {"containers": "nope"}});
        assert_eq!(
            decode::<Pod>(Kind::Pod, &body, FieldValidation::Strict)
                .unwrap_err()
                .code,
            400
        );
        let body = json!({"kind": "Secret", "metadata": {"name": "p"}});
        let error = decode::<Pod>(Kind::Pod, &body, FieldValidation::Strict).unwrap_err();
        assert!(
            error.message.contains("does not match the expected kind"),
            "{error}"
        );
    }

    #[test]
    fn a_complete_pod_round_trips_without_unknown_fields() {
        let body = json!({
            "metadata": {"name": "p", "annotations": {"x/y": "z"}, "ownerReferences": []},
            "spec": {
                "containers": [{"name": "build", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                                "ports": [{"containerPort": 80}], "securityContext": {"privileged": false}}],
                "volumes": [{"name": "repo", "emptyDir": {}}],
                "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["db"]}]
            }
        });
        let decoded = decode::<Pod>(Kind::Pod, &body, FieldValidation::Strict).unwrap();
        assert!(decoded.unknown.is_empty());
    }
}
