//! One pod container as a Docker container: the environment (`envFrom`, `env` with
//! `valueFrom` and `$(VAR)` expansion, as `makeEnvironmentVariables` builds it), command and
//! args, working directory, stdin/tty, mounts of the pod's volumes, resources and the security
//! context, each applied where Docker has the same knob.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use serde_json::Value;

use super::sandbox::{Backing, Sandbox};
use crate::kind::Kind;
use crate::store::Store;
use runnel_kube::quantity;

/// The pod and namespace a container belongs to, for messages and references.
pub(crate) struct PodContext<'a> {
    pub namespace: &'a str,
    pub pod: &'a Value,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

/// Resolves a container's environment; `Err` is the `CreateContainerConfigError` message.
pub(crate) fn environment(
    store: &Store,
    context: &PodContext<'_>,
    container: &Value,
) -> Result<Vec<(String, String)>, String> {
    let namespace = context.namespace;
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, key: String, value: String| {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    };
    for source in list(container, "envFrom") {
        let prefix = str_of(source, "prefix");
        let (reference, kind) = if let Some(r) = source.get("configMapRef") {
            (r, Kind::ConfigMap)
        } else if let Some(r) = source.get("secretRef") {
            (r, Kind::Secret)
        } else {
            continue;
        };
        let name = str_of(reference, "name");
        let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
        match store.get(kind, namespace, name) {
            Some(object) => {
                for (key, value) in data_of(kind, object) {
                    set(&mut env, format!("{prefix}{key}"), value);
                }
            }
            None if optional => {}
            None => return Err(format!("{} \"{name}\" not found", kind_word(kind))),
        }
    }
    for var in list(container, "env") {
        let name = str_of(var, "name").to_owned();
        let value = match var.get("valueFrom") {
            None => {
                let lookup: HashMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(str_of(var, "value"), &lookup)
            }
            Some(source) => match value_from(store, context, container, source)? {
                Some(value) => value,
                None => continue,
            },
        };
        set(&mut env, name, value);
    }
    Ok(env)
}

fn value_from(
    store: &Store,
    context: &PodContext<'_>,
    container: &Value,
    source: &Value,
) -> Result<Option<String>, String> {
    let namespace = context.namespace;
    for (key, kind) in [
        ("configMapKeyRef", Kind::ConfigMap),
        ("secretKeyRef", Kind::Secret),
    ] {
        let Some(reference) = source.get(key) else {
            continue;
        };
        let name = str_of(reference, "name");
        let item = str_of(reference, "key");
        let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
        let Some(object) = store.get(kind, namespace, name) else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("{} \"{name}\" not found", kind_word(kind)))
            };
        };
        return match data_of(kind, object).into_iter().find(|(k, _)| k == item) {
            Some((_, value)) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {item} in {} {namespace}/{name}",
                kind.name()
            )),
        };
    }
    if let Some(field) = source.get("fieldRef") {
        let path = str_of(field, "fieldPath");
        let pod = context.pod;
        let meta = |k: &str| {
            pod.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let value = match path {
            "metadata.name" => meta("name"),
            "metadata.namespace" => meta("namespace"),
            "metadata.uid" => meta("uid"),
            "spec.nodeName" => crate::options::NODE_NAME.to_owned(),
            "spec.serviceAccountName" => pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            "status.podIP" | "status.podIPs" => context.pod_ip.to_owned(),
            "status.hostIP" | "status.hostIPs" => context.host_ip.to_owned(),
            other => {
                let keyed = |prefix: &str, map: &str| {
                    other
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.strip_prefix("['"))
                        .and_then(|rest| rest.strip_suffix("']"))
                        .map(|key| {
                            pod.pointer(&format!("/metadata/{map}"))
                                .and_then(|m| m.get(key))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned()
                        })
                };
                keyed("metadata.labels", "labels")
                    .or_else(|| keyed("metadata.annotations", "annotations"))
                    .ok_or_else(|| format!("unsupported fieldPath: {other}"))?
            }
        };
        return Ok(Some(value));
    }
    if let Some(resource) = source.get("resourceFieldRef") {
        let wanted = str_of(resource, "resource");
        let divisor = resource
            .get("divisor")
            .and_then(Value::as_str)
            .and_then(quantity::parse)
            .filter(|d| *d > 0.0)
            .unwrap_or(1.0);
        let (group, name) = wanted.split_once('.').unwrap_or(("limits", wanted));
        let amount = container
            .pointer(&format!("/resources/{group}/{name}"))
            .and_then(Value::as_str)
            .and_then(quantity::parse)
            .unwrap_or(if name == "cpu" { node_cpus() } else { 0.0 });
        return Ok(Some(format!("{}", (amount / divisor).ceil() as i64)));
    }
    Ok(None)
}

fn node_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn kind_word(kind: Kind) -> &'static str {
    if kind == Kind::Secret {
        "secret"
    } else {
        "configmap"
    }
}

/// The key/value pairs of a config map or secret (secrets decoded).
pub(crate) fn data_of(kind: Kind, object: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Some(Value::Object(data)) = object.get("data") {
        for (key, value) in data {
            let text = value.as_str().unwrap_or("");
            let value = if kind == Kind::Secret {
                BASE64
                    .decode(text)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            } else {
                text.to_owned()
            };
            pairs.push((key.clone(), value));
        }
    }
    if let Some(Value::Object(data)) = object.get("binaryData") {
        for (key, value) in data {
            let bytes = BASE64
                .decode(value.as_str().unwrap_or(""))
                .unwrap_or_default();
            pairs.push((key.clone(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    pairs
}

/// `$(VAR)` expansion of `third_party/forked/golang/expansion`: a defined variable is
/// replaced, `$$` is a literal `$`, anything else stays as written.
pub(crate) fn expand(input: &str, env: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The Docker configuration of a container in the pod's sandbox.
pub(crate) fn create_body(
    pod_spec: &Value,
    container: &Value,
    env: &[(String, String)],
    sandbox: &Sandbox,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let strings = |key: &str| -> Option<Vec<String>> {
        container.get(key).and_then(Value::as_array).map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(|s| expand(s, &lookup))
                .collect()
        })
    };
    let command = strings("command");
    let args = strings("args");
    // Kubernetes: `command` replaces the entrypoint and drops the image's CMD unless `args`
    // gives one; `args` alone keeps the entrypoint. Docker's create does the same.
    let (entrypoint, cmd) = match (command, args) {
        (Some(command), args) => (Some(command), Some(args.unwrap_or_default())),
        (None, args) => (None, args),
    };
    let pod_context = pod_spec
        .get("securityContext")
        .cloned()
        .unwrap_or(Value::Null);
    let context = container
        .get("securityContext")
        .cloned()
        .unwrap_or(Value::Null);
    let id = |key: &str| {
        context
            .get(key)
            .and_then(Value::as_i64)
            .or_else(|| pod_context.get(key).and_then(Value::as_i64))
    };
    let user = match (id("runAsUser"), id("runAsGroup")) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (Some(uid), None) => Some(uid.to_string()),
        _ => None,
    };
    let flag = |key: &str| context.get(key).and_then(Value::as_bool);
    let caps = |key: &str| -> Option<Vec<String>> {
        context
            .pointer(&format!("/capabilities/{key}"))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
    };
    let mut groups: Vec<String> = pod_context
        .get("supplementalGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(|g| g.to_string())
        .collect();
    if let Some(fs_group) = pod_context.get("fsGroup").and_then(Value::as_i64) {
        groups.push(fs_group.to_string());
    }
    let resource = |group: &str, name: &str| {
        container
            .pointer(&format!("/resources/{group}/{name}"))
            .and_then(Value::as_str)
            .and_then(quantity::parse)
    };
    let host_config = HostConfig {
        network_mode: Some(format!("container:{}", sandbox.pause_id)),
        ipc_mode: Some(format!("container:{}", sandbox.pause_id)),
        pid_mode: (pod_spec
            .get("shareProcessNamespace")
            .and_then(Value::as_bool)
            == Some(true))
        .then(|| format!("container:{}", sandbox.pause_id)),
        mounts: Some(mounts(container, sandbox)),
        memory: resource("limits", "memory").map(|b| b as i64),
        memory_reservation: resource("requests", "memory").map(|b| b as i64),
        nano_cpus: resource("limits", "cpu").map(|c| (c * 1e9) as i64),
        cpu_shares: resource("requests", "cpu").map(|c| ((c * 1024.0) as i64).max(2)),
        privileged: flag("privileged"),
        readonly_rootfs: flag("readOnlyRootFilesystem"),
        cap_add: caps("add"),
        cap_drop: caps("drop"),
        security_opt: (flag("allowPrivilegeEscalation") == Some(false))
            .then(|| vec!["no-new-privileges".to_owned()]),
        group_add: (!groups.is_empty()).then_some(groups),
        ..Default::default()
    };
    let stdin = container.get("stdin").and_then(Value::as_bool) == Some(true);
    ContainerCreateBody {
        image: Some(str_of(container, "image").to_owned()),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: container
            .get("workingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .map(str::to_owned),
        user,
        tty: container.get("tty").and_then(Value::as_bool),
        open_stdin: Some(stdin),
        stdin_once: container.get("stdinOnce").and_then(Value::as_bool),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn mounts(container: &Value, sandbox: &Sandbox) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for mount in list(container, "volumeMounts") {
        let Some(backing) = sandbox.volumes.get(str_of(mount, "name")) else {
            continue;
        };
        let target = str_of(mount, "mountPath").to_owned();
        let sub_path = str_of(mount, "subPath");
        let read_only =
            mount.get("readOnly").and_then(Value::as_bool) == Some(true) || backing.read_only();
        let (typ, source) = match (backing, sub_path.is_empty()) {
            (Backing::Volume { name, .. }, true) => (MountType::VOLUME, name.clone()),
            (Backing::Volume { host_dir, .. }, false) => {
                (MountType::BIND, format!("{host_dir}/{sub_path}"))
            }
            (Backing::Host { path }, true) => (MountType::BIND, path.clone()),
            (Backing::Host { path }, false) => (MountType::BIND, format!("{path}/{sub_path}")),
        };
        mounts.push(Mount {
            target: Some(target),
            source: Some(source),
            typ: Some(typ),
            read_only: Some(read_only),
            ..Default::default()
        });
    }
    mounts
}

fn list<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn str_of<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::{PodContext, environment, expand};
    use crate::kind::Kind;
    use crate::store::Store;

    #[test]
    fn expansion_rules() {
        let env = HashMap::from([("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)-$(C)-$$(A)-$", &env), "x-y-$(C)-$(A)-$");
        assert_eq!(expand("cost: $5 $(A", &env), "cost: $5 $(A");
    }

    #[test]
    fn env_from_secrets_fields_and_order() {
        let mut store = Store::new();
        store.create(Kind::Secret, json!({"metadata": {"name": "s", "namespace": "ci"}, "data": {"token": "c2VjcmV0"}})).unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ci", "labels": {"app": "web"}}});
        let context = PodContext {
            namespace: "ci",
            pod: &pod,
            pod_ip: "10.0.0.5",
            host_ip: "10.0.0.1",
        };
        let container = json!({"envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}], "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)$(S_token)"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}
        ]});
        let env = environment(&store, &context, &container).unwrap();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("S_token", "secret"),
                ("A", "1"),
                ("B", "1secret"),
                ("IP", "10.0.0.5"),
                ("APP", "web"),
                ("T", "secret")
            ]
        );
        let missing = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]});
        assert_eq!(
            environment(&store, &context, &missing).unwrap_err(),
            "secret \"nope\" not found"
        );
    }
}
