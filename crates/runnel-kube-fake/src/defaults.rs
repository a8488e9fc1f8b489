//! What the real API server fills in on create: the `SetDefaults_*` functions of
//! `pkg/apis/core/v1/defaults.go`, the admission plugins every cluster runs
//! (ServiceAccount, DefaultTolerationSeconds) and the registry's `PrepareForCreate` (status
//! reset, `stringData` merged into `data`, cluster IPs). A client reading an object back sees
//! these fields, as it would on a cluster.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::kind::Kind;

/// Applies the defaults of `kind` to a decoded object.
pub(crate) fn apply(kind: Kind, object: &mut Value) {
    match kind {
        Kind::Pod => pod(object),
        Kind::Secret => secret(object),
        Kind::Service => service(object),
        Kind::Namespace => namespace(object),
        Kind::PersistentVolumeClaim => claim(object),
        Kind::ConfigMap | Kind::ServiceAccount | Kind::Event => {}
    }
}

/// Sets `key` to `value` when the object has no such key.
fn default(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = object
        && map.get(key).is_none_or(Value::is_null)
    {
        map.insert(key.to_owned(), value);
    }
}

fn child<'a>(object: &'a mut Value, key: &str) -> &'a mut Value {
    default(object, key, Value::Object(Map::new()));
    &mut object[key]
}

fn pod(pod: &mut Value) {
    let spec = child(pod, "spec");
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "serviceAccountName", json!("default"));
    let account = spec["serviceAccountName"].clone();
    spec["serviceAccount"] = account;
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // DefaultTolerationSeconds admission: five minutes on a not-ready or unreachable node.
    default(spec, "tolerations", json!([]));
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = spec["tolerations"].as_array().is_some_and(|list| {
            list.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(taint) || t.get("key").is_none()
            })
        });
        if !tolerated && let Some(list) = spec["tolerations"].as_array_mut() {
            list.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    for group in ["initContainers", "containers"] {
        if let Some(list) = spec.get_mut(group).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(container);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for volume in volumes {
            for source in ["configMap", "secret"] {
                if let Some(source) = volume.get_mut(source) {
                    default(source, "defaultMode", json!(420));
                }
            }
            if let Some(host) = volume.get_mut("hostPath") {
                default(host, "type", json!(""));
            }
        }
    }
    let qos = qos_class(&pod["spec"]);
    if let Value::Object(map) = pod {
        map.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

fn container(container: &mut Value) {
    let image = container.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if image_tag(image).is_none_or(|tag| tag == "latest") && !image.contains('@') {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(container, "imagePullPolicy", json!(policy));
    default(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    default(container, "terminationMessagePolicy", json!("File"));
    let resources = child(container, "resources");
    if let Some(limits) = resources
        .get("limits")
        .cloned()
        .and_then(|l| l.as_object().cloned())
    {
        let requests = child(resources, "requests");
        for (name, value) in limits {
            default(requests, &name, value);
        }
    }
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
        for var in env {
            if let Some(field) = var.pointer_mut("/valueFrom/fieldRef") {
                default(field, "apiVersion", json!("v1"));
            }
        }
    }
}

/// The tag of an image reference, if it names one (`host:5000/a/b:tag` → `tag`).
pub(crate) fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag)
}

/// `GetPodQOS`: Guaranteed, Burstable or BestEffort from the containers' resources.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|g| spec.get(*g).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let entries = |c: &Value, group: &str| {
        c.pointer(&format!("/resources/{group}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    if containers
        .iter()
        .all(|c| entries(c, "requests").is_empty() && entries(c, "limits").is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (requests, limits) = (entries(c, "requests"), entries(c, "limits"));
        ["cpu", "memory"].iter().all(|r| limits.contains_key(*r))
            && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn secret(secret: &mut Value) {
    default(secret, "type", json!("Opaque"));
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    let data = child(secret, "data");
    for (key, value) in strings {
        let text = value.as_str().unwrap_or("");
        data[key.as_str()] = json!(BASE64.encode(text));
    }
}

fn service(service: &mut Value) {
    let spec = child(service, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
            let number = port.get("port").cloned().unwrap_or(Value::Null);
            default(port, "targetPort", number);
        }
    }
    default(service, "status", json!({"loadBalancer": {}}));
}

fn namespace(namespace: &mut Value) {
    let name = namespace
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let labels = child(child(namespace, "metadata"), "labels");
    labels["kubernetes.io/metadata.name"] = name;
    default(namespace, "spec", json!({"finalizers": ["kubernetes"]}));
    namespace["status"] = json!({"phase": "Active"});
}

fn claim(claim: &mut Value) {
    let spec = child(claim, "spec");
    default(spec, "volumeMode", json!("Filesystem"));
    default(spec, "storageClassName", json!("standard"));
    let modes = spec.get("accessModes").cloned().unwrap_or(json!([]));
    let capacity = spec
        .pointer("/resources/requests")
        .cloned()
        .unwrap_or(json!({}));
    claim["status"] = json!({"phase": "Bound", "accessModes": modes, "capacity": capacity});
}

/// A random suffix for `generateName`, from the alphabet of `k8s.io/apiserver`'s
/// `SimpleNameGenerator` (no vowels, no confusable digits).
pub(crate) fn name_suffix() -> String {
    random_string(5)
}

/// Random characters from the name generator's alphabet.
pub(crate) fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0_u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        bytes
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 7) as u8);
    }
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A random RFC 4122 version 4 UID, as the server assigns to `metadata.uid`.
pub(crate) fn uid() -> String {
    let mut b = [0_u8; 16];
    if getrandom::fill(&mut b).is_err() {
        b = std::process::id()
            .to_le_bytes()
            .repeat(4)
            .try_into()
            .unwrap_or([7; 16]);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{apply, image_tag};
    use crate::kind::Kind;

    #[test]
    fn pod_defaults_as_a_cluster_sets_them() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "build", "image": "alpine", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "svc", "image": "postgres:16", "ports": [{"containerPort": 5432}]}
        ]}});
        apply(Kind::Pod, &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
        assert_eq!(pod["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "Burstable"})
        );
    }

    #[test]
    fn string_data_becomes_data() {
        let mut secret = json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}});
        apply(Kind::Secret, &mut secret);
        assert_eq!(
            secret,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "aGk="}})
        );
    }

    #[test]
    fn tags() {
        assert_eq!(image_tag("alpine"), None);
        assert_eq!(image_tag("localhost:5000/a/b:1.2"), Some("1.2"));
        assert_eq!(image_tag("localhost:5000/a/b"), None);
    }
}
