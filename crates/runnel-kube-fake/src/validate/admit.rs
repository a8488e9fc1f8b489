//! The create and update paths of an object: decode strictly, check the namespace and
//! resource version, generate the name, default, validate. Store bookkeeping (uid, resource
//! version, timestamps) is the store's.

use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::meta::{self, NameRule};
use super::strict::{FieldValidation, decode};
use super::{objects, pod};
use crate::defaults;
use crate::kind::Kind;
use crate::status::{ApiError, FieldError};

/// An object that passed admission, and the `Warning` headers to send with it.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Admits an object posted to `namespace` (empty for cluster-scoped kinds).
pub(crate) fn admit_create(
    kind: Kind,
    namespace: &str,
    body: &Value,
    validation: FieldValidation,
) -> Result<Admitted, ApiError> {
    let (mut object, warnings) = normalise(kind, body, validation)?;
    check_namespace(kind, namespace, &mut object)?;
    if object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let generate = object
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && !generate.is_empty() {
        let generated = format!("{generate}{}", defaults::name_suffix());
        object["metadata"]["name"] = json!(generated);
    }
    // Fields only the server sets.
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        for key in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(key);
        }
    }
    defaults::apply(kind, &mut object);
    let errors = validate(kind, &object);
    if !errors.is_empty() {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::invalid(kind.name(), name, &errors));
    }
    Ok(Admitted { object, warnings })
}

/// Admits a replacement (`PUT`) of `old`. Pod specs only change where a real cluster allows.
pub(crate) fn admit_update(
    kind: Kind,
    namespace: &str,
    name: &str,
    body: &Value,
    old: &Value,
    validation: FieldValidation,
) -> Result<Admitted, ApiError> {
    let (mut object, warnings) = normalise(kind, body, validation)?;
    check_namespace(kind, namespace, &mut object)?;
    let body_name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let current = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    match object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        Some(version) if !version.is_empty() && version != current => {
            return Err(ApiError::conflict(
                kind.resource(),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        _ => {}
    }
    // The server keeps what it owns.
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ] {
        if let Some(value) = old.pointer(&format!("/metadata/{key}")) {
            object["metadata"][key] = value.clone();
        }
    }
    if let Some(status) = old.get("status") {
        object["status"] = status.clone();
    }
    defaults::apply(kind, &mut object);
    if let Some(status) = old.get("status") {
        object["status"] = status.clone();
    }
    let mut errors = validate(kind, &object);
    if kind == Kind::Pod {
        errors.extend(pod_update(old, &object));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(kind.name(), name, &errors));
    }
    Ok(Admitted { object, warnings })
}

/// `ValidatePodUpdate`: only images, `activeDeadlineSeconds` and added tolerations may change.
fn pod_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for group in ["containers", "initContainers"] {
            if let Some(list) = spec.get_mut(group).and_then(Value::as_array_mut) {
                for container in list {
                    container["image"] = Value::Null;
                }
            }
        }
        if let Value::Object(map) = &mut spec {
            map.remove("activeDeadlineSeconds");
            map.remove("tolerations");
            // The scheduler binds the pod; a client that read it back sends the node along.
            map.remove("nodeName");
        }
        spec
    };
    if strip(old) == strip(new) {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )]
}

fn check_namespace(kind: Kind, namespace: &str, object: &mut Value) -> Result<(), ApiError> {
    if !kind.namespaced() {
        if let Some(Value::Object(meta)) = object.get_mut("metadata") {
            meta.remove("namespace");
        }
        return Ok(());
    }
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() && ns != namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            if object.get("metadata").is_none_or(|m| !m.is_object()) {
                object["metadata"] = json!({});
            }
            object["metadata"]["namespace"] = json!(namespace);
            Ok(())
        }
    }
}

/// Decodes into the kind's type and back: the object as the server would store it, and the
/// unknown fields (already refused unless `fieldValidation` allows them).
fn normalise(
    kind: Kind,
    body: &Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    match kind {
        Kind::Pod => round_trip::<Pod>(kind, body, validation),
        Kind::Secret => round_trip::<Secret>(kind, body, validation),
        Kind::ConfigMap => round_trip::<ConfigMap>(kind, body, validation),
        Kind::Service => round_trip::<Service>(kind, body, validation),
        Kind::ServiceAccount => round_trip::<ServiceAccount>(kind, body, validation),
        Kind::PersistentVolumeClaim => round_trip::<PersistentVolumeClaim>(kind, body, validation),
        Kind::Namespace => round_trip::<Namespace>(kind, body, validation),
        Kind::Event => round_trip::<Event>(kind, body, validation),
    }
}

fn round_trip<T>(
    kind: Kind,
    body: &Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError>
where
    T: DeserializeOwned + Serialize,
{
    let decoded = decode::<T>(kind, body, validation)?;
    let object =
        serde_json::to_value(&decoded.object).map_err(|e| ApiError::internal(e.to_string()))?;
    let warnings = decoded
        .unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Ok((object, warnings))
}

fn validate(kind: Kind, object: &Value) -> Vec<FieldError> {
    let rule = match kind {
        Kind::Service => NameRule::Dns1035,
        Kind::Namespace => NameRule::Label,
        _ => NameRule::Subdomain,
    };
    let mut errors = meta::validate(object, rule);
    errors.extend(match kind {
        Kind::Pod => pod::validate_spec(object),
        Kind::Secret => objects::secret(object),
        Kind::ConfigMap => objects::config_map(object),
        Kind::Service => objects::service(object),
        Kind::PersistentVolumeClaim => objects::persistent_volume_claim(object),
        Kind::ServiceAccount | Kind::Namespace | Kind::Event => Vec::new(),
    });
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{admit_create, admit_update};
    use crate::kind::Kind;
    use crate::validate::FieldValidation;

    #[test]
    fn generate_name_defaults_and_namespace() {
        let body = json!({"metadata": {"generateName": "runner-x-"}, "spec": {"containers": [{"name": "build", "image": "alpine:3"}]}});
        let admitted = admit_create(Kind::Pod, "ci", &body, FieldValidation::Strict).unwrap();
        let name = admitted.object["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("runner-x-") && name.len() == "runner-x-".len() + 5,
            "{name}"
        );
        assert_eq!(admitted.object["metadata"]["namespace"], "ci");
        assert_eq!(admitted.object["kind"], "Pod");
    }

    #[test]
    fn wrong_namespace_is_400_and_bad_name_is_422() {
        let body = json!({"metadata": {"name": "p", "namespace": "other"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert_eq!(
            admit_create(Kind::Pod, "ci", &body, FieldValidation::Strict)
                .unwrap_err()
                .code,
            400
        );
        let body = json!({"metadata": {"name": "P_1"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let error = admit_create(Kind::Pod, "ci", &body, FieldValidation::Strict).unwrap_err();
        assert_eq!((error.code, error.reason), (422, "Invalid"));
    }

    #[test]
    fn pod_spec_is_immutable_but_images_may_change() {
        let body = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let mut old = admit_create(Kind::Pod, "ci", &body, FieldValidation::Strict)
            .unwrap()
            .object;
        old["metadata"]["resourceVersion"] = json!("5");
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("y");
        assert!(admit_update(Kind::Pod, "ci", "p", &new, &old, FieldValidation::Strict).is_ok());
        new["spec"]["containers"][0]["command"] = json!(["sh"]);
        let error =
            admit_update(Kind::Pod, "ci", "p", &new, &old, FieldValidation::Strict).unwrap_err();
        assert!(
            error.message.contains("pod updates may not change fields"),
            "{error}"
        );
        new["metadata"]["resourceVersion"] = json!("4");
        assert_eq!(
            admit_update(Kind::Pod, "ci", "p", &new, &old, FieldValidation::Strict)
                .unwrap_err()
                .code,
            409
        );
    }
}
