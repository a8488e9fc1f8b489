//! What a test chooses about its fake cluster, and what it can break on purpose.

use std::collections::BTreeMap;

/// The image of each pod's sandbox ("pause") container, whose network namespace the pod's
/// containers join. Built offline by `scripts/test-images.sh`.
pub const DEFAULT_PAUSE_IMAGE: &str = "runnel-test/busybox:latest";

/// The name of the fake cluster's one node.
pub const NODE_NAME: &str = "runnel-fake-node";

/// How a [`crate::FakeCluster`] is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The bearer token every request must carry; `None` accepts anonymous requests.
    pub token: Option<String>,
    /// The user name the authorizer reports in 403 answers.
    pub user: String,
    /// Namespaces that exist from the start (`default` always does), each with a `default`
    /// service account.
    pub namespaces: Vec<String>,
    /// Namespaces in which every request is forbidden (403), as RBAC would answer.
    pub forbidden_namespaces: Vec<String>,
    /// Whether the cluster has a node that runs pods on the Docker engine. Without one, pods
    /// stay `Pending` with an `Unschedulable` condition, as on a cluster without nodes.
    pub node: bool,
    /// Labels of the node (beside `kubernetes.io/hostname`, `kubernetes.io/os=linux` and
    /// `kubernetes.io/arch`), for `nodeSelector`.
    pub node_labels: BTreeMap<String, String>,
    /// Taints of the node: `(key, value, effect)`.
    pub node_taints: Vec<(String, String, String)>,
    /// The sandbox image (see [`DEFAULT_PAUSE_IMAGE`]).
    pub pause_image: String,
    /// Whether the image registry can be reached. The fake pulls nothing: with a reachable
    /// registry an image the Docker engine has counts as pulled (also with `Always`); with an
    /// unreachable one every pull fails (`Always` even for an image the engine has), as on a
    /// node cut off from its registry.
    pub registry_reachable: bool,
    /// Serve HTTPS with a certificate authority of the cluster's own
    /// ([`crate::FakeCluster::ca_pem`]); clients may then also authenticate with a client
    /// certificate ([`crate::FakeCluster::client_certificate`]).
    pub tls: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            token: Some("runnel-fake-token".to_owned()),
            user: "system:serviceaccount:default:runnel".to_owned(),
            namespaces: vec!["default".to_owned()],
            forbidden_namespaces: Vec::new(),
            node: true,
            node_labels: BTreeMap::new(),
            node_taints: Vec::new(),
            pause_image: DEFAULT_PAUSE_IMAGE.to_owned(),
            registry_reachable: true,
            tls: false,
        }
    }
}

impl FakeOptions {
    /// A cluster whose API works but which has no node: no Docker engine is needed, pods
    /// never leave `Pending`.
    pub fn without_node() -> Self {
        Self {
            node: false,
            ..Self::default()
        }
    }

    /// Adds a namespace that exists from the start.
    pub fn namespace(mut self, name: &str) -> Self {
        if !self.namespaces.iter().any(|n| n == name) {
            self.namespaces.push(name.to_owned());
        }
        self
    }

    /// Cuts the node off from its image registry (see [`FakeOptions::registry_reachable`]).
    pub fn registry_unreachable(mut self) -> Self {
        self.registry_reachable = false;
        self
    }

    /// Sets the bearer token (`None`: no authentication).
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// Serves HTTPS (see [`FakeOptions::tls`]).
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Adds a node label.
    pub fn node_label(mut self, key: &str, value: &str) -> Self {
        self.node_labels.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// A failure a test switches on to see how a client copes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Everything works.
    #[default]
    None,
    /// The API server is gone: the port refuses connections, open connections (watches,
    /// logs, exec streams) are cut.
    Unreachable,
    /// Every request is answered 401 Unauthorized, as after a revoked token.
    Unauthorized,
}
