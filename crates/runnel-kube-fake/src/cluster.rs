//! [`FakeCluster`]: the handle a test holds. It starts the API server on 127.0.0.1, writes a
//! kubeconfig, shows what was requested and stored, breaks things on purpose, and removes
//! every Docker object it made when it shuts down (or is dropped).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bollard::Docker;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::kind::Kind;
use crate::kubelet::{Kubelet, LABEL_INSTANCE, Termination, leftovers, sweep, sweep_stale};
use crate::ops::{self, DeleteOptions};
use crate::options::{FakeOptions, Fault};
use crate::server::listener::{CutListener, Peer, Tls};
use crate::server::router;
use crate::shared::{RecordedRequest, Shared, lock};
use crate::status::ApiError;
use crate::store::EventType;
use crate::tls::{Authority, TlsError};
use crate::validate::FieldValidation;

/// Why a fake cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The port could not be bound.
    #[error("failed to bind the fake API server to 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// The Docker engine (needed when the cluster has a node) does not answer.
    #[error("failed to reach the Docker engine for the fake cluster's node")]
    Docker(#[source] bollard::errors::Error),
    /// The certificates for HTTPS could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The kubeconfig could not be written.
    #[error("failed to write the kubeconfig `{path}`")]
    Kubeconfig {
        /// Where it was to go.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}

/// A running fake Kubernetes API server with one Docker-backed node.
pub struct FakeCluster {
    shared: Arc<Shared>,
    addr: SocketAddr,
    serving: Mutex<Option<JoinHandle<()>>>,
    shut_down: bool,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster")
            .field("url", &self.url())
            .field("instance", &self.instance_id())
            .finish()
    }
}

impl FakeCluster {
    /// Starts a cluster: the API server on `127.0.0.1:0`, the namespaces of `options` with
    /// their `default` service accounts, and (with `options.node`) a node on the Docker engine.
    pub async fn start(options: FakeOptions) -> Result<Self, FakeError> {
        let docker = if options.node {
            let docker = Docker::connect_with_defaults().map_err(FakeError::Docker)?;
            docker.ping().await.map_err(FakeError::Docker)?;
            sweep_stale(&docker).await;
            Some(docker)
        } else {
            None
        };
        let instance = format!(
            "{}-{}",
            std::process::id(),
            crate::defaults::random_string(8)
        );
        let authority = if options.tls {
            Some(Authority::new()?)
        } else {
            None
        };
        let kubelet = Kubelet::new(docker, instance);
        let shared = Arc::new(Shared::new(options.clone(), kubelet, authority));
        let mut namespaces = options.namespaces.clone();
        if !namespaces.iter().any(|n| n == "default") {
            namespaces.insert(0, "default".to_owned());
        }
        for namespace in namespaces {
            let body =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            if ops::create(
                &shared,
                Kind::Namespace,
                "",
                &body,
                FieldValidation::Strict,
                false,
            )
            .is_err()
            {
                tracing::warn!("the namespace `{namespace}` of the options is not a valid name");
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeError::Bind)?;
        let addr = listener.local_addr().map_err(FakeError::Bind)?;
        let serving = serve(&shared, listener)?;
        Ok(Self {
            shared,
            addr,
            serving: Mutex::new(Some(serving)),
            shut_down: false,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.authority.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The cluster's CA certificate (PEM) when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.shared
            .authority
            .as_ref()
            .map(|a| a.ca_pem().to_owned())
    }

    /// A client certificate and key (PEM) signed by the cluster's CA: a request presenting it
    /// is authenticated as `user` (in 403 answers too), with or without a token.
    pub fn client_certificate(&self, user: &str) -> Result<(String, String), FakeError> {
        let authority = self.shared.authority.as_ref().ok_or(TlsError::Disabled)?;
        Ok(authority.client_certificate(user, &[])?)
    }

    /// The address the API server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value of the [`LABEL_INSTANCE`] label on this cluster's Docker objects.
    pub fn instance_id(&self) -> &str {
        self.shared.kubelet.instance()
    }

    /// The bearer token requests must carry (if any).
    pub fn token(&self) -> Option<String> {
        self.shared.control().token.clone()
    }

    /// Writes a kubeconfig with one cluster, user and context named `context`, whose
    /// namespace is `namespace`, and makes it the current context.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        context: &str,
        namespace: &str,
    ) -> Result<(), FakeError> {
        let quote = |s: &str| Value::String(s.to_owned()).to_string();
        let user = match self.token() {
            Some(token) => format!("    token: {}\n", quote(&token)),
            None => "    {}\n".to_owned(),
        };
        let authority = match self.ca_pem() {
            Some(ca) => format!(
                "    certificate-authority-data: {}\n",
                quote(&BASE64.encode(ca))
            ),
            None => String::new(),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {url}\n{authority}contexts:\n- name: {c}\n  context:\n    cluster: {c}\n    user: {c}\n    namespace: {ns}\ncurrent-context: {c}\nusers:\n- name: {c}\n  user:\n{user}",
            c = quote(context),
            url = quote(&self.url()),
            ns = quote(namespace),
        );
        std::fs::write(path, text).map_err(|source| FakeError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.records()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.clear_records();
    }

    /// The stored objects of a kind, in one namespace or (with `None`) in all.
    pub fn objects(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.shared.store().list(kind, namespace)
    }

    /// One stored object.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let namespace = if kind.namespaced() { namespace } else { "" };
        self.shared.store().get(kind, namespace, name).cloned()
    }

    /// The pods of a namespace (or of all), typed.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<Pod> {
        self.objects(Kind::Pod, namespace)
            .into_iter()
            .filter_map(|p| serde_json::from_value(p).ok())
            .collect()
    }

    /// One pod, typed.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.object(Kind::Pod, namespace, name)
            .and_then(|p| serde_json::from_value(p).ok())
    }

    /// Creates an object as a client would (same admission), e.g. a namespace, a service
    /// account or a claim a test needs.
    pub fn create(&self, kind: Kind, namespace: &str, object: Value) -> Result<Value, ApiError> {
        ops::create(
            &self.shared,
            kind,
            namespace,
            &object,
            FieldValidation::Strict,
            false,
        )
        .map(|w| w.object)
    }

    /// Deletes a pod as `kubectl delete pod` would (with its grace period, or `grace_seconds`).
    pub fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        grace_seconds: Option<i64>,
    ) -> Result<(), ApiError> {
        let options = DeleteOptions {
            grace_period_seconds: grace_seconds,
            ..DeleteOptions::default()
        };
        ops::delete(&self.shared, Kind::Pod, namespace, name, &options).map(|_| ())
    }

    /// Evicts a pod as the kubelet does under node pressure: its containers are stopped
    /// (grace period of the pod) and it stays, `Failed` with reason `Evicted`, until deleted.
    pub fn evict(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let pod = self
            .object(Kind::Pod, namespace, name)
            .ok_or_else(|| ApiError::not_found("pods", name))?;
        let grace = pod
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let uid = ops::meta_str(&pod, "uid");
        if !self.shared.kubelet.terminate(
            &uid,
            Termination::Evict {
                grace_seconds: grace,
            },
        ) {
            return Err(ApiError::bad_request(format!(
                "pod {name} is not running on the node"
            )));
        }
        Ok(())
    }

    /// Switches a fault on (or off with [`Fault::None`]).
    pub async fn set_fault(&self, fault: Fault) {
        let previous = std::mem::replace(&mut self.shared.control().fault, fault);
        if previous == fault {
            return;
        }
        match fault {
            Fault::Unreachable => {
                let serving = lock(&self.serving).take();
                if let Some(serving) = serving {
                    serving.abort();
                    let _ = serving.await;
                }
                self.shared.cut_connections();
            }
            Fault::None | Fault::Unauthorized => {
                if previous == Fault::Unreachable {
                    // The port is ours: nothing else binds 127.0.0.1 ports it did not get from 0.
                    for _ in 0..50 {
                        if let Ok(listener) = TcpListener::bind(self.addr).await
                            && let Ok(serving) = serve(&self.shared, listener)
                        {
                            *lock(&self.serving) = Some(serving);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }

    /// Replaces the bearer token (`None`: no authentication), as a rotated credential would.
    pub fn set_token(&self, token: Option<&str>) {
        self.shared.control().token = token.map(str::to_owned);
    }

    /// Forbids (403) or allows every request in a namespace.
    pub fn forbid_namespace(&self, namespace: &str, forbidden: bool) {
        let mut control = self.shared.control();
        if forbidden {
            control.forbidden.insert(namespace.to_owned());
        } else {
            control.forbidden.remove(namespace);
        }
    }

    /// Waits until the pod satisfies `condition` (checked at every change of it), or until
    /// `limit` passes; returns the pod as it was last seen. `None` once it is deleted.
    pub async fn wait_for_pod(
        &self,
        namespace: &str,
        name: &str,
        limit: Duration,
        condition: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = self.shared.store().subscribe();
        loop {
            let current = self.object(Kind::Pod, namespace, name);
            match &current {
                Some(pod) if condition(pod) => return current,
                None => return None,
                Some(_) => {}
            }
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => return self.object(Kind::Pod, namespace, name),
                    Ok(Ok(event)) if event.kind == Kind::Pod && event.namespace == namespace => {
                        if event.event_type == EventType::Deleted
                            && ops::meta_str(&event.object, "name") == name
                        {
                            return None;
                        }
                        break;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break,
                }
            }
        }
    }

    /// The Docker containers and volumes of this cluster that still exist (names), once the
    /// kubelet has finished cleaning up after deleted pods (it waits at most a minute for that).
    pub async fn docker_leftovers(&self) -> (Vec<String>, Vec<String>) {
        self.settle().await;
        match self.shared.kubelet.docker() {
            Some(docker) => leftovers(docker, self.instance_id()).await,
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Waits (at most a minute) until the kubelet has stopped and removed the containers of
    /// every pod that is no longer stored: deletion answers before the kubelet is done, as on
    /// a cluster.
    pub async fn settle(&self) {
        let shared = self.shared.clone();
        let exists = move |uid: &str| {
            shared
                .store()
                .list(Kind::Pod, None)
                .iter()
                .any(|p| ops::meta_str(p, "uid") == uid)
        };
        self.shared
            .kubelet
            .settle(Duration::from_secs(60), exists)
            .await;
    }

    /// Stops the API server, kills every pod and removes every Docker object of this cluster.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        if let Some(serving) = lock(&self.serving).take() {
            serving.abort();
        }
        self.shared.cut_connections();
        self.shared.kubelet.shutdown().await;
    }
}

impl Drop for FakeCluster {
    /// A test that panicked before [`FakeCluster::shutdown`] still leaves no containers:
    /// the instance's Docker objects are swept on a thread of its own.
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        if let Some(serving) = lock(&self.serving).take() {
            serving.abort();
        }
        self.shared.cut_connections();
        let Some(docker) = self.shared.kubelet.docker().cloned() else {
            return;
        };
        let instance = self.instance_id().to_owned();
        let sweeper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                // The engine client of another runtime cannot be used here: connect anew.
                let docker = Docker::connect_with_defaults().unwrap_or(docker);
                sweep(&docker, LABEL_INSTANCE, &instance).await;
            });
        });
        let _ = sweeper.join();
    }
}

fn serve(shared: &Arc<Shared>, listener: TcpListener) -> Result<JoinHandle<()>, TlsError> {
    let app = router(shared.clone()).into_make_service_with_connect_info::<Peer>();
    let tls = match &shared.authority {
        Some(authority) => Some(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(authority.server_config()?),
            users: authority.users(),
        }),
        None => None,
    };
    let listener = CutListener {
        inner: listener,
        cut: shared.cut.clone(),
        tls,
    };
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}
