//! Watches: a chunked stream of `{"type": …, "object": …}` lines. From resource version `0` or
//! none, synthetic `ADDED` events for the current objects come first; from a version `N`, the
//! changes after `N` are replayed (or `ERROR` 410 Expired when the history no longer reaches
//! back); `sendInitialEvents=true` ends the initial events with the `k8s.io/initial-events-end`
//! bookmark. An object that stops (or starts) matching the selectors is seen as `DELETED` (or
//! `ADDED`), as the watch cache reports it.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::crud::Query;
use crate::kind::Kind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventType};

/// The real server's `--min-request-timeout` (a watch without `timeoutSeconds` ends after it).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    kind: Kind,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn in_scope(&self, kind: Kind, namespace: &str) -> bool {
        kind == self.kind && self.namespace.as_deref().is_none_or(|n| n == namespace)
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

struct WatchState {
    pending: VecDeque<Value>,
    receiver: broadcast::Receiver<Event>,
    filter: Filter,
    matched: HashSet<(String, String)>,
    deadline: Instant,
    cancel: CancellationToken,
    done: bool,
}

/// Starts a watch.
pub(crate) fn watch(
    shared: Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &Query,
) -> Result<Response, ApiError> {
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let send_initial = query.flag("sendInitialEvents")?;
    let filter = Filter {
        kind,
        namespace,
        labels,
        fields,
    };
    let store = shared.store();
    let receiver = store.subscribe();
    let current = store.resource_version();
    let mut pending = VecDeque::new();
    let mut matched = HashSet::new();
    let from = match query.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: Invalid value: {v:?}: strconv.ParseUint: parsing {v:?}: invalid syntax"))
        })?),
    };
    let snapshot = from.is_none() || send_initial;
    for object in store.list(kind, filter.namespace.as_deref()) {
        if filter.matches(&object) {
            matched.insert(key(&object));
            if snapshot {
                pending.push_back(line(EventType::Added.as_str(), object));
            }
        }
    }
    if let (Some(version), false) = (from, snapshot) {
        match store.events_since(version) {
            Some(events) => {
                for event in events
                    .into_iter()
                    .filter(|e| filter.in_scope(e.kind, &e.namespace))
                {
                    let relevant =
                        filter.matches(&event.object) || matched.contains(&key(&event.object));
                    if relevant {
                        pending.push_back(line(event.event_type.as_str(), event.object));
                    }
                }
            }
            None => {
                let status =
                    ApiError::gone(format!("too old resource version: {version} ({current})"))
                        .to_status();
                pending.push_back(line("ERROR", status));
            }
        }
    }
    if send_initial {
        let bookmark = json!({
            "kind": kind.name(), "apiVersion": "v1",
            "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}
        });
        pending.push_back(line("BOOKMARK", bookmark));
    }
    drop(store);
    let state = WatchState {
        pending,
        receiver,
        filter,
        matched,
        deadline: Instant::now() + timeout,
        cancel: shared.streams(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, next_chunk);
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn next_chunk(mut state: WatchState) -> Option<(Result<Bytes, Infallible>, WatchState)> {
    if let Some(value) = state.pending.pop_front() {
        let mut text = value.to_string();
        text.push('\n');
        return Some((Ok(Bytes::from(text)), state));
    }
    if state.done {
        return None;
    }
    loop {
        let event = tokio::select! {
            () = state.cancel.cancelled() => return None,
            () = tokio::time::sleep_until(state.deadline) => return None,
            event = state.receiver.recv() => event,
        };
        // A watcher that fell behind is closed; the client lists again.
        let Ok(event) = event else { return None };
        if let Some(value) = translate(&mut state, event) {
            let mut text = value.to_string();
            text.push('\n');
            return Some((Ok(Bytes::from(text)), state));
        }
    }
}

fn translate(state: &mut WatchState, event: Event) -> Option<Value> {
    if !state.filter.in_scope(event.kind, &event.namespace) {
        return None;
    }
    let key = key(&event.object);
    let now = state.filter.matches(&event.object);
    let was = state.matched.contains(&key);
    let kind = match (event.event_type, was, now) {
        (EventType::Deleted, true, _)
        | (EventType::Deleted, _, true)
        | (EventType::Modified, true, false) => {
            state.matched.remove(&key);
            EventType::Deleted
        }
        (EventType::Added | EventType::Modified, false, true) => {
            state.matched.insert(key);
            EventType::Added
        }
        (EventType::Modified | EventType::Added, true, true) => EventType::Modified,
        _ => return None,
    };
    Some(line(kind.as_str(), event.object))
}

fn line(event_type: &str, object: Value) -> Value {
    json!({"type": event_type, "object": object})
}

fn key(object: &Value) -> (String, String) {
    let get = |k: &str| {
        object
            .pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (get("namespace"), get("name"))
}
