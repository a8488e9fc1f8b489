//! The object store: every object by kind, namespace and name, one cluster-wide resource
//! version counter, and the event history that watches replay from a resource version. It does
//! no validation (see `validate`) and no I/O.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::defaults;
use crate::kind::Kind;
use crate::status::ApiError;
use crate::time;

/// How many events a watch can replay from an older resource version.
const HISTORY: usize = 10_000;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// A new object.
    Added,
    /// A changed object.
    Modified,
    /// A removed object (with its last state).
    Deleted,
}

impl EventType {
    /// The word of the watch protocol.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The object's kind.
    pub(crate) kind: Kind,
    /// Its namespace (empty for namespaces).
    pub(crate) namespace: String,
    /// What happened.
    pub(crate) event_type: EventType,
    /// The object after the change.
    pub(crate) object: Value,
    /// The resource version of the change.
    pub(crate) resource_version: u64,
}

type Key = (Kind, String, String);

/// Every object of the fake cluster.
#[derive(Debug)]
pub(crate) struct Store {
    version: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    events: broadcast::Sender<Event>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            version: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            events: broadcast::channel(4096).0,
        }
    }

    /// The current resource version (of the last change).
    pub(crate) fn resource_version(&self) -> u64 {
        self.version
    }

    /// Receives every later change.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The events after `version`, or `None` when the history no longer reaches back that far.
    pub(crate) fn events_since(&self, version: u64) -> Option<Vec<Event>> {
        if let Some(oldest) = self.history.front()
            && oldest.resource_version > version + 1
            && self.history.len() >= HISTORY
        {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|e| e.resource_version > version)
                .cloned()
                .collect(),
        )
    }

    /// The object, if it exists.
    pub(crate) fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
    }

    /// Objects of `kind`, in one namespace or (with `None`) in all.
    pub(crate) fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((k, ns, _), _)| *k == kind && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores a new object: assigns `uid`, `resourceVersion` and `creationTimestamp`.
    pub(crate) fn create(&mut self, kind: Kind, mut object: Value) -> Result<Value, ApiError> {
        let (namespace, name) = names(kind, &object);
        let key = (kind, namespace.clone(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(kind.resource(), &name));
        }
        self.version += 1;
        let meta = &mut object["metadata"];
        meta["uid"] = json!(defaults::uid());
        meta["resourceVersion"] = json!(self.version.to_string());
        meta["creationTimestamp"] = json!(time::now());
        self.objects.insert(key, object.clone());
        self.publish(kind, namespace, EventType::Added, object.clone());
        Ok(object)
    }

    /// Replaces an existing object (its resource version is bumped).
    pub(crate) fn replace(&mut self, kind: Kind, mut object: Value) -> Result<Value, ApiError> {
        let (namespace, name) = names(kind, &object);
        let key = (kind, namespace.clone(), name.clone());
        if !self.objects.contains_key(&key) {
            return Err(ApiError::not_found(kind.resource(), &name));
        }
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.objects.insert(key, object.clone());
        self.publish(kind, namespace, EventType::Modified, object.clone());
        Ok(object)
    }

    /// Changes an object in place; a change bumps its resource version and is published.
    /// Returns the object after the change, or `None` if it does not exist.
    pub(crate) fn modify(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let object = self.objects.get_mut(&key)?;
        let before = object.clone();
        change(object);
        if *object == before {
            return Some(before);
        }
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let after = object.clone();
        self.publish(
            kind,
            namespace.to_owned(),
            EventType::Modified,
            after.clone(),
        );
        Some(after)
    }

    /// Removes an object; watches see `DELETED` with its last state.
    pub(crate) fn remove(&mut self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let mut object = self
            .objects
            .remove(&(kind, namespace.to_owned(), name.to_owned()))?;
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.publish(
            kind,
            namespace.to_owned(),
            EventType::Deleted,
            object.clone(),
        );
        Some(object)
    }

    fn publish(&mut self, kind: Kind, namespace: String, event_type: EventType, object: Value) {
        let event = Event {
            kind,
            namespace,
            event_type,
            object,
            resource_version: self.version,
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // No receiver is fine: nobody watches.
        let _ = self.events.send(event);
    }
}

fn names(kind: Kind, object: &Value) -> (String, String) {
    let namespace = if kind.namespaced() {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    } else {
        String::new()
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    (namespace, name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{EventType, Store};
    use crate::kind::Kind;

    #[test]
    fn versions_history_and_conflicts() {
        let mut store = Store::new();
        let mut events = store.subscribe();
        let secret = json!({"metadata": {"name": "s", "namespace": "ci"}});
        let created = store.create(Kind::Secret, secret.clone()).unwrap();
        let version: u64 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(store.create(Kind::Secret, secret).unwrap_err().code, 409);
        store
            .modify(Kind::Secret, "ci", "s", |s| {
                s["data"] = json!({"a": "Yg=="})
            })
            .unwrap();
        // An unchanged object is not a new version.
        store.modify(Kind::Secret, "ci", "s", |_| {}).unwrap();
        store.remove(Kind::Secret, "ci", "s").unwrap();
        let since: Vec<EventType> = store
            .events_since(version)
            .unwrap()
            .iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(since, [EventType::Modified, EventType::Deleted]);
        assert_eq!(events.try_recv().unwrap().event_type, EventType::Added);
        assert!(store.get(Kind::Secret, "ci", "s").is_none());
    }
}
