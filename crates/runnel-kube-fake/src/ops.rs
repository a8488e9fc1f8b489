//! The verbs on objects, shared by the HTTP handlers and the test API: create (admission,
//! the ServiceAccount admission plugin), replace, merge-patch, delete with the pod's graceful
//! deletion and propagation policies, and the garbage collector that follows
//! `ownerReferences` as the real one does.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::kind::Kind;
use crate::kubelet::Termination;
use crate::shared::Shared;
use crate::status::{ApiError, FieldError};
use crate::time;
use crate::validate::{FieldValidation, admit_create, admit_update};

/// An object written, and the `Warning` headers for its answer.
#[derive(Debug)]
pub(crate) struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// `DeleteOptions` from the body and the query.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads the options from a `DeleteOptions` body and query parameters (the query wins).
    pub(crate) fn read(body: Option<&Value>, query: &[(String, String)]) -> Result<Self, ApiError> {
        let mut options = Self::default();
        if let Some(body) = body.filter(|b| b.is_object()) {
            if let Some(kind) = body.get("kind").and_then(Value::as_str)
                && kind != "DeleteOptions"
            {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind (DeleteOptions)"
                )));
            }
            options.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
            options.propagation_policy = body
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                options.propagation_policy = Some("Orphan".to_owned());
            }
            options.precondition_uid = body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            options.precondition_resource_version = body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            options.dry_run = body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| !d.is_empty());
        }
        for (key, value) in query {
            match key.as_str() {
                "gracePeriodSeconds" => {
                    let seconds = value.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid gracePeriodSeconds: {value:?}"))
                    })?;
                    options.grace_period_seconds = Some(seconds);
                }
                "propagationPolicy" => options.propagation_policy = Some(value.clone()),
                "orphanDependents" if value == "true" => {
                    options.propagation_policy = Some("Orphan".to_owned())
                }
                "dryRun" => options.dry_run = value == "All",
                _ => {}
            }
        }
        if let Some(policy) = &options.propagation_policy
            && !["Orphan", "Background", "Foreground"].contains(&policy.as_str())
        {
            let error = FieldError::not_supported(
                "propagationPolicy",
                policy.as_str(),
                &["Foreground", "Background", "Orphan"],
            );
            return Err(ApiError::invalid("DeleteOptions", "", &[error]));
        }
        Ok(options)
    }
}

/// Creates an object posted to `namespace`.
pub(crate) fn create(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    body: &Value,
    validation: FieldValidation,
    dry_run: bool,
) -> Result<Written, ApiError> {
    if kind.namespaced() {
        require_namespace(shared, namespace)?;
    }
    let admitted = admit_create(kind, namespace, body, validation)?;
    if kind == Kind::Pod {
        admit_service_account(shared, namespace, &admitted.object)?;
    }
    if dry_run {
        return Ok(Written {
            object: admitted.object,
            warnings: admitted.warnings,
        });
    }
    let created = shared.store().create(kind, admitted.object)?;
    match kind {
        Kind::Pod => {
            let name = meta_str(&created, "name");
            let uid = meta_str(&created, "uid");
            shared.kubelet.start(shared.clone(), namespace, &name, &uid);
        }
        Kind::Namespace => {
            let name = meta_str(&created, "name");
            ensure_default_service_account(shared, &name);
        }
        _ => {}
    }
    if created.pointer("/metadata/ownerReferences").is_some() {
        collect_garbage(shared, namespace);
    }
    Ok(Written {
        object: created,
        warnings: admitted.warnings,
    })
}

/// Replaces an object (`PUT`).
pub(crate) fn replace(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    name: &str,
    body: &Value,
    validation: FieldValidation,
) -> Result<Written, ApiError> {
    let old = shared
        .store()
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind.resource(), name))?;
    let admitted = admit_update(kind, namespace, name, body, &old, validation)?;
    if kind == Kind::Secret || kind == Kind::ConfigMap {
        immutable(kind, name, &old, &admitted.object)?;
    }
    let object = shared.store().replace(kind, admitted.object)?;
    if object.pointer("/metadata/ownerReferences").is_some() {
        collect_garbage(shared, namespace);
    }
    Ok(Written {
        object,
        warnings: admitted.warnings,
    })
}

/// Applies a JSON merge patch (RFC 7386; strategic merge patches are read the same way, which
/// is exact for maps and replaces lists whole).
pub(crate) fn merge_patch(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    name: &str,
    patch: &Value,
    validation: FieldValidation,
) -> Result<Written, ApiError> {
    let mut object = shared
        .store()
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind.resource(), name))?;
    let precondition = patch.pointer("/metadata/resourceVersion").cloned();
    apply_merge_patch(&mut object, patch);
    if precondition.is_none()
        && let Some(Value::Object(meta)) = object.get_mut("metadata")
    {
        // A patch without a resource version applies to whatever version is current.
        meta.remove("resourceVersion");
    }
    replace(shared, kind, namespace, name, &object, validation)
}

fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                apply_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Deletes an object; the answer body is the pod (or namespace) or a `Status`.
pub(crate) fn delete(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<Value, ApiError> {
    let object = shared
        .store()
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind.resource(), name))?;
    let uid = meta_str(&object, "uid");
    if let Some(want) = &options.precondition_uid
        && *want != uid
    {
        return Err(ApiError::conflict(
            kind.resource(),
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let version = meta_str(&object, "resourceVersion");
    if let Some(want) = &options.precondition_resource_version
        && *want != version
    {
        return Err(ApiError::conflict(
            kind.resource(),
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {version}"
            ),
        ));
    }
    if options.dry_run {
        return Ok(object);
    }
    match kind {
        Kind::Pod => Ok(delete_pod(shared, namespace, name, options)),
        Kind::Namespace => Ok(delete_namespace(shared, name)),
        _ => {
            let removed = shared.store().remove(kind, namespace, name);
            if kind == Kind::PersistentVolumeClaim {
                shared.kubelet.claim_deleted(&uid);
            }
            after_removal(
                shared,
                namespace,
                &uid,
                options.propagation_policy.as_deref(),
            );
            let _ = removed;
            Ok(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": kind.resource(), "uid": uid}
            }))
        }
    }
}

/// The pod's graceful deletion (`podStrategy.CheckGracefulDelete`): an unscheduled or finished
/// pod, or a grace period of 0, goes at once; otherwise the pod gets a `deletionTimestamp` and
/// the kubelet removes it once its containers have stopped.
fn delete_pod(shared: &Arc<Shared>, namespace: &str, name: &str, options: &DeleteOptions) -> Value {
    let Some(pod) = shared.store().get(Kind::Pod, namespace, name).cloned() else {
        return Value::Null;
    };
    let uid = meta_str(&pod, "uid");
    let mut period = options
        .grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !scheduled || phase == "Succeeded" || phase == "Failed" {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    if let Some(current) = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        && current <= period
    {
        // Already terminating with a grace period at least as short.
        return pod;
    }
    let policy = options.propagation_policy.clone();
    if period == 0 {
        let removed = shared
            .store()
            .remove(Kind::Pod, namespace, name)
            .unwrap_or(pod);
        shared
            .kubelet
            .terminate(&uid, Termination::Delete { grace_seconds: 0 });
        after_removal(shared, namespace, &uid, policy.as_deref());
        return removed;
    }
    let finalizer = match policy.as_deref() {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    };
    let updated = shared.store().modify(Kind::Pod, namespace, name, |pod| {
        pod["metadata"]["deletionTimestamp"] = json!(time::in_seconds(period));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(period);
        if let Some(finalizer) = finalizer {
            pod["metadata"]["finalizers"] = json!([finalizer]);
        }
    });
    if !shared.kubelet.terminate(
        &uid,
        Termination::Delete {
            grace_seconds: period,
        },
    ) {
        pod_terminated(shared, namespace, name, &uid);
    }
    updated.unwrap_or(Value::Null)
}

/// Called by the kubelet once a deleted pod's containers are gone: the object goes, and its
/// dependents follow the propagation policy recorded in its finalizers.
pub(crate) fn pod_terminated(shared: &Arc<Shared>, namespace: &str, name: &str, uid: &str) {
    let removed = {
        let mut store = shared.store();
        let same = store
            .get(Kind::Pod, namespace, name)
            .is_some_and(|p| meta_str(p, "uid") == uid);
        if same {
            store.remove(Kind::Pod, namespace, name)
        } else {
            None
        }
    };
    if let Some(pod) = removed {
        let orphan = pod
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "orphan"));
        after_removal(
            shared,
            namespace,
            uid,
            if orphan { Some("Orphan") } else { None },
        );
    }
}

fn after_removal(shared: &Arc<Shared>, namespace: &str, uid: &str, policy: Option<&str>) {
    if policy == Some("Orphan") {
        orphan_dependents(shared, namespace, uid);
    } else {
        collect_garbage(shared, namespace);
    }
}

fn delete_namespace(shared: &Arc<Shared>, name: &str) -> Value {
    let updated = shared.store().modify(Kind::Namespace, "", name, |ns| {
        ns["metadata"]["deletionTimestamp"] = json!(time::now());
        ns["status"]["phase"] = json!("Terminating");
    });
    for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
        let objects = shared.store().list(kind, Some(name));
        for object in objects {
            let object_name = meta_str(&object, "name");
            let _ = delete(shared, kind, name, &object_name, &DeleteOptions::default());
        }
    }
    let pods_left = !shared.store().list(Kind::Pod, Some(name)).is_empty();
    if !pods_left {
        shared.store().remove(Kind::Namespace, "", name);
    }
    updated.unwrap_or(Value::Null)
}

fn orphan_dependents(shared: &Arc<Shared>, namespace: &str, uid: &str) {
    let mut store = shared.store();
    for kind in Kind::ALL {
        for object in store.list(kind, Some(namespace)) {
            if owner_uids(&object).iter().any(|u| u == uid) {
                let name = meta_str(&object, "name");
                store.modify(kind, namespace, &name, |o| {
                    if let Some(list) = o
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        list.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                    }
                });
            }
        }
    }
}

/// The garbage collector: a dependent all of whose owners are gone is deleted (a pod
/// gracefully); references to absent owners are dropped when some owner remains.
pub(crate) fn collect_garbage(shared: &Arc<Shared>, namespace: &str) {
    loop {
        let mut doomed = Vec::new();
        {
            let mut store = shared.store();
            for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                for object in store.list(kind, Some(namespace)) {
                    let Some(references) = object
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .cloned()
                    else {
                        continue;
                    };
                    if references.is_empty()
                        || object.pointer("/metadata/deletionTimestamp").is_some()
                    {
                        continue;
                    }
                    let live: Vec<bool> = references
                        .iter()
                        .map(|r| owner_exists(&store, namespace, r))
                        .collect();
                    let name = meta_str(&object, "name");
                    if live.iter().all(|l| !l) {
                        doomed.push((kind, name));
                    } else if live.iter().any(|l| !l) {
                        store.modify(kind, namespace, &name, |o| {
                            if let Some(list) = o
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                let mut alive = live.iter();
                                list.retain(|_| *alive.next().unwrap_or(&true));
                            }
                        });
                    }
                }
            }
        }
        if doomed.is_empty() {
            return;
        }
        for (kind, name) in doomed {
            let _ = delete(shared, kind, namespace, &name, &DeleteOptions::default());
        }
    }
}

fn owner_exists(store: &crate::store::Store, namespace: &str, reference: &Value) -> bool {
    let kind_name = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(kind) = Kind::ALL.into_iter().find(|k| k.name() == kind_name) else {
        return false;
    };
    let owner_ns = if kind.namespaced() { namespace } else { "" };
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = reference.get("uid").and_then(Value::as_str).unwrap_or("");
    store
        .get(kind, owner_ns, name)
        .is_some_and(|o| meta_str(o, "uid") == uid)
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn require_namespace(shared: &Shared, namespace: &str) -> Result<(), ApiError> {
    let store = shared.store();
    let ns = store
        .get(Kind::Namespace, "", namespace)
        .ok_or_else(|| ApiError::not_found("namespaces", namespace))?;
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::forbidden_by_admission(
            "",
            "",
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        ));
    }
    Ok(())
}

/// The ServiceAccount admission plugin: the pod's service account must exist.
fn admit_service_account(shared: &Shared, namespace: &str, pod: &Value) -> Result<(), ApiError> {
    let account = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if shared
        .store()
        .get(Kind::ServiceAccount, namespace, account)
        .is_none()
    {
        let name = meta_str(pod, "name");
        return Err(ApiError::forbidden_by_admission(
            "pods",
            &name,
            &format!(
                "error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
            ),
        ));
    }
    Ok(())
}

/// What the service account controller does for a new namespace.
pub(crate) fn ensure_default_service_account(shared: &Shared, namespace: &str) {
    let mut store = shared.store();
    if store
        .get(Kind::ServiceAccount, namespace, "default")
        .is_none()
    {
        let _ = store.create(
            Kind::ServiceAccount,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}),
        );
    }
}

fn immutable(kind: Kind, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for key in ["data", "binaryData"] {
        if old.get(key) != new.get(key) {
            errors.push(FieldError::forbidden(
                key,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind.name(), name, &errors))
    }
}

/// A string of `metadata`.
pub(crate) fn meta_str(object: &Value, key: &str) -> String {
    object
        .pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{DeleteOptions, apply_merge_patch};

    #[test]
    fn merge_patch_rfc7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        apply_merge_patch(&mut target, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(target, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn delete_options_from_body_and_query() {
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 5, "propagationPolicy": "Background"});
        let options =
            DeleteOptions::read(Some(&body), &[("gracePeriodSeconds".into(), "0".into())]).unwrap();
        assert_eq!(options.grace_period_seconds, Some(0));
        assert_eq!(options.propagation_policy.as_deref(), Some("Background"));
        let error =
            DeleteOptions::read(Some(&json!({"propagationPolicy": "Later"})), &[]).unwrap_err();
        assert_eq!(error.code, 422);
        assert!(
            error
                .message
                .contains("propagationPolicy: Unsupported value: \"Later\""),
            "{error}"
        );
    }
}
