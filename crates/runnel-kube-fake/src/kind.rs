//! The core/v1 resources the fake serves, with the names the API server uses for them.

/// A core/v1 resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `pods`: run on Docker by the fake's kubelet.
    Pod,
    /// `secrets`.
    Secret,
    /// `configmaps`.
    ConfigMap,
    /// `services`: stored and given a cluster IP; no traffic is routed.
    Service,
    /// `serviceaccounts`: checked by the pod admission as the real ServiceAccount plugin does.
    ServiceAccount,
    /// `persistentvolumeclaims`: a pod's claim must exist; the claim becomes a Docker volume.
    PersistentVolumeClaim,
    /// `namespaces` (cluster-scoped).
    Namespace,
    /// `events`: what the scheduler and the kubelet report about pods.
    Event,
}

impl Kind {
    /// Every kind, in the order `objects` lists them.
    pub const ALL: [Kind; 8] = [
        Kind::Pod,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::Service,
        Kind::ServiceAccount,
        Kind::PersistentVolumeClaim,
        Kind::Namespace,
        Kind::Event,
    ];

    /// The plural resource name of the URL (`pods`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
            Kind::Service => "services",
            Kind::ServiceAccount => "serviceaccounts",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::Namespace => "namespaces",
            Kind::Event => "events",
        }
    }

    /// The `kind` of an object (`Pod`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Namespace => "Namespace",
            Kind::Event => "Event",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// The kind for a URL's resource name.
    pub fn from_resource(resource: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.resource() == resource)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.resource())
    }
}
