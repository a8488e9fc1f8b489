//! The state every part of the fake shares: options, the store, the request record, the
//! switches of fault tests, and the kubelet.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::kubelet::Kubelet;
use crate::options::{FakeOptions, Fault};
use crate::store::Store;
use crate::tls::Authority;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/api/v1/namespaces/ci/pods`.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The HTTP status of the answer.
    pub status: u16,
}

impl RecordedRequest {
    /// The value of one query parameter, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        query_pairs(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Decodes a query string into its pairs, in order.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// The switches a test flips at run time.
#[derive(Debug)]
pub(crate) struct Control {
    pub fault: Fault,
    pub token: Option<String>,
    pub forbidden: BTreeSet<String>,
}

/// Everything the handlers and the kubelet share.
pub(crate) struct Shared {
    pub options: FakeOptions,
    store: Mutex<Store>,
    records: Mutex<Vec<RecordedRequest>>,
    control: Mutex<Control>,
    /// Bumped to cut every open connection (see `server::listener`).
    pub cut: Arc<AtomicU64>,
    streams: Mutex<CancellationToken>,
    pub kubelet: Kubelet,
    /// The certificate authority when the cluster serves HTTPS.
    pub authority: Option<Authority>,
}

impl Shared {
    pub(crate) fn new(
        options: FakeOptions,
        kubelet: Kubelet,
        authority: Option<Authority>,
    ) -> Self {
        let control = Control {
            fault: Fault::None,
            token: options.token.clone(),
            forbidden: options.forbidden_namespaces.iter().cloned().collect(),
        };
        Self {
            options,
            store: Mutex::new(Store::new()),
            records: Mutex::new(Vec::new()),
            control: Mutex::new(control),
            cut: Arc::new(AtomicU64::new(0)),
            streams: Mutex::new(CancellationToken::new()),
            kubelet,
            authority,
        }
    }

    /// The store, locked. Never held across an `.await`.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        lock(&self.records).push(request);
    }

    pub(crate) fn records(&self) -> Vec<RecordedRequest> {
        lock(&self.records).clone()
    }

    pub(crate) fn clear_records(&self) {
        lock(&self.records).clear();
    }

    /// A token that is cancelled when open streams must end (fault or shutdown).
    pub(crate) fn streams(&self) -> CancellationToken {
        lock(&self.streams).clone()
    }

    /// Ends every open stream and cuts every open connection.
    pub(crate) fn cut_connections(&self) {
        self.cut.fetch_add(1, Ordering::SeqCst);
        let mut streams = lock(&self.streams);
        streams.cancel();
        *streams = CancellationToken::new();
    }
}

/// Locks a mutex; a panic in another holder does not poison the fake for the rest of a test.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
