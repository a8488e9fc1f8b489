//! The scheduler's filters for the fake's one node: `nodeSelector`, required node affinity,
//! taints against tolerations, and claims that must exist. The messages are the scheduler's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kind::Kind;
use crate::options::{FakeOptions, NODE_NAME};
use crate::store::Store;

const PREEMPTION: &str =
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

/// The node's labels.
pub(crate) fn node_labels(options: &FakeOptions) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), NODE_NAME.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), arch.to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), arch.to_owned()),
    ]);
    labels.extend(options.node_labels.clone());
    labels
}

/// `Ok` when the pod fits the node, else the `PodScheduled=False` message.
pub(crate) fn fits(
    options: &FakeOptions,
    store: &Store,
    namespace: &str,
    spec: &Value,
) -> Result<(), String> {
    if !options.node {
        return Err("no nodes available to schedule pods".to_owned());
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(claim) = volume
            .pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
            && store
                .get(Kind::PersistentVolumeClaim, namespace, claim)
                .is_none()
        {
            return Err(format!(
                "0/1 nodes are available: persistentvolumeclaim \"{claim}\" not found. {PREEMPTION}"
            ));
        }
    }
    let labels = node_labels(options);
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|selector| {
            selector
                .iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    if !selector_ok || !affinity_ok(spec, &labels) {
        return Err(format!(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {PREEMPTION}"
        ));
    }
    let tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (key, value, effect) in &options.node_taints {
        if effect == "PreferNoSchedule" {
            continue;
        }
        if !tolerations.iter().any(|t| tolerates(t, key, value, effect)) {
            let shown = if value.is_empty() {
                format!("{{{key}: }}")
            } else {
                format!("{{{key}: {value}}}")
            };
            return Err(format!(
                "0/1 nodes are available: 1 node(s) had untolerated taint {shown}. {PREEMPTION}"
            ));
        }
    }
    Ok(())
}

fn tolerates(toleration: &Value, key: &str, value: &str, effect: &str) -> bool {
    let get = |k: &str| toleration.get(k).and_then(Value::as_str).unwrap_or("");
    if !get("effect").is_empty() && get("effect") != effect {
        return false;
    }
    if !get("key").is_empty() && get("key") != key {
        return false;
    }
    match get("operator") {
        "Exists" => true,
        _ => get("key") == key && get("value") == value,
    }
}

/// `requiredDuringSchedulingIgnoredDuringExecution`: any term whose expressions all hold.
fn affinity_ok(spec: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(terms) = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|term| {
        term.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().all(|expression| {
            let key = expression.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = expression.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            let actual = labels.get(key).map(String::as_str);
            let number = |v: Option<&str>| v.and_then(|s| s.parse::<i64>().ok());
            match expression.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => actual.is_some_and(|a| values.contains(&a)),
                "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
                "Exists" => actual.is_some(),
                "DoesNotExist" => actual.is_none(),
                "Gt" => matches!((number(actual), number(values.first().copied())), (Some(a), Some(b)) if a > b),
                "Lt" => matches!((number(actual), number(values.first().copied())), (Some(a), Some(b)) if a < b),
                _ => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fits;
    use crate::options::FakeOptions;
    use crate::store::Store;

    #[test]
    fn selector_taints_and_claims() {
        let options = FakeOptions::default().node_label("ci", "yes");
        let store = Store::new();
        assert!(
            fits(
                &options,
                &store,
                "ci",
                &json!({"nodeSelector": {"kubernetes.io/os": "linux", "ci": "yes"}})
            )
            .is_ok()
        );
        let error = fits(
            &options,
            &store,
            "ci",
            &json!({"nodeSelector": {"gpu": "true"}}),
        )
        .unwrap_err();
        assert!(
            error.starts_with(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
            ),
            "{error}"
        );
        let claim =
            json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "cache"}}]});
        assert!(
            fits(&options, &store, "ci", &claim)
                .unwrap_err()
                .contains("persistentvolumeclaim \"cache\" not found")
        );
        let mut tainted = FakeOptions::default();
        tainted
            .node_taints
            .push(("dedicated".into(), "ci".into(), "NoSchedule".into()));
        assert!(
            fits(&tainted, &store, "ci", &json!({}))
                .unwrap_err()
                .contains("untolerated taint {dedicated: ci}")
        );
        let tolerated = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"}]});
        assert!(fits(&tainted, &store, "ci", &tolerated).is_ok());
        assert_eq!(
            fits(&FakeOptions::without_node(), &store, "ci", &json!({})).unwrap_err(),
            "no nodes available to schedule pods"
        );
    }
}
