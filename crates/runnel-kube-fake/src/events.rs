//! Events as the scheduler and the kubelet post them about a pod (`Scheduled`,
//! `FailedScheduling`, `Pulled`, `Failed`, `BackOff`, `Created`, `Started`, `Killing`,
//! `FailedMount`, `Evicted`), aggregated like the client-go event correlator does: the same
//! event again raises `count` and `lastTimestamp`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::kind::Kind;
use crate::options::NODE_NAME;
use crate::shared::Shared;
use crate::time;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Normal,
    Warning,
}

/// Who reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Scheduler,
    Kubelet,
}

/// One event about a pod (or one of its containers, `field_path` `spec.containers{build}`).
pub(crate) struct PodEvent<'a> {
    pub severity: Severity,
    pub source: Source,
    pub field_path: Option<String>,
    pub reason: &'a str,
    pub message: String,
}

/// Posts (or aggregates) an event about the pod `namespace/name` with uid `uid`.
pub(crate) fn record(shared: &Shared, namespace: &str, name: &str, uid: &str, event: PodEvent<'_>) {
    let mut store = shared.store();
    let same = |e: &Value| {
        e.pointer("/involvedObject/uid").and_then(Value::as_str) == Some(uid)
            && e.pointer("/involvedObject/fieldPath")
                .and_then(Value::as_str)
                == event.field_path.as_deref()
            && e.get("reason").and_then(Value::as_str) == Some(event.reason)
            && e.get("message").and_then(Value::as_str) == Some(event.message.as_str())
    };
    let now = time::now();
    if let Some(existing) = store
        .list(Kind::Event, Some(namespace))
        .into_iter()
        .find(|e| same(e))
    {
        let event_name = existing
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        store.modify(Kind::Event, namespace, &event_name, |e| {
            let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            e["count"] = json!(count + 1);
            e["lastTimestamp"] = json!(now);
        });
        return;
    }
    let (component, host) = match event.source {
        Source::Scheduler => ("default-scheduler", None),
        Source::Kubelet => ("kubelet", Some(NODE_NAME)),
    };
    let mut involved = json!({"kind": "Pod", "namespace": namespace, "name": name, "uid": uid, "apiVersion": "v1"});
    if let Some(path) = &event.field_path {
        involved["fieldPath"] = json!(path);
    }
    let mut source = json!({"component": component});
    if let Some(host) = host {
        source["host"] = json!(host);
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{:x}", unique_nanos()), "namespace": namespace},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match event.severity { Severity::Normal => "Normal", Severity::Warning => "Warning" },
        "reportingComponent": component,
        "reportingInstance": host.unwrap_or(""),
    });
    let _ = store.create(Kind::Event, object);
}

/// The event name's suffix: the time in nanoseconds, as client-go's recorder names events
/// (`<object>.<hex nanos>`), kept strictly increasing so names sort in the order of events.
fn unique_nanos() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let previous = LAST.fetch_max(now, Ordering::SeqCst);
    if previous >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}
