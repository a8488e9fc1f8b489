//! The settings of the Kubernetes executor: gitlab-runner's `[runners.kubernetes]` section as
//! plain data, filled by the runner daemon from `config.toml` and by `runnel exec` from its flags.
//!
//! GitLab: gitlab-runner `common/config.go` `KubernetesConfig` (key names, defaults:
//! `KubernetesPollInterval` 3 s, `KubernetesPollTimeout` 180 s), `KubernetesVolumes`,
//! `KubernetesPodSecurityContext`, `KubernetesContainerSecurityContext`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// gitlab-runner's `KubernetesPollInterval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(3);
/// gitlab-runner's `KubernetesPollTimeout`.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(180);
/// The helper image `scripts/kube-helper-image.sh` builds: the runnel binary and nothing else
/// it needs.
pub const DEFAULT_HELPER_IMAGE: &str = "runnel/helper:latest";

/// How to reach the API server. Empty means the kubeconfig (`KUBECONFIG`, `~/.kube/config`,
/// its current context) or, inside a pod, the service account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `host`: the API server URL; with it, the kubeconfig is not read.
    pub host: Option<String>,
    /// `context`: the kubeconfig context (`runnel exec --kube-context`).
    pub context: Option<String>,
    /// `cert_file`: a client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// `key_file`: its key (PEM).
    pub key_file: Option<PathBuf>,
    /// `ca_file`: the CA of the API server (PEM).
    pub ca_file: Option<PathBuf>,
    /// `bearer_token`.
    pub bearer_token: Option<String>,
    /// `bearer_token_overwrite_allowed`: a job's `KUBERNETES_BEARER_TOKEN` replaces it.
    pub bearer_token_overwrite_allowed: bool,
}

/// CPU, memory and ephemeral storage quantities (`"500m"`, `"1Gi"`), each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantities {
    /// `cpu`.
    pub cpu: Option<String>,
    /// `memory`.
    pub memory: Option<String>,
    /// `ephemeral-storage`.
    pub ephemeral_storage: Option<String>,
}

/// The resources of one kind of container and the largest values a job may ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerResources {
    /// `*_limit`.
    pub limits: Quantities,
    /// `*_request`.
    pub requests: Quantities,
    /// `*_limit_overwrite_max_allowed`: empty means the job's variables cannot change a limit.
    pub limits_max: Quantities,
    /// `*_request_overwrite_max_allowed`.
    pub requests_max: Quantities,
}

/// `[[runners.kubernetes.volumes.host_path]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HostPathVolume {
    /// The volume name.
    #[serde(default)]
    pub name: String,
    /// Where it is mounted in the containers.
    #[serde(default)]
    pub mount_path: String,
    /// A sub-path of the volume.
    #[serde(default)]
    pub sub_path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The host path; the mount path when empty (gitlab-runner `getVolumesForHostPaths`).
    #[serde(default)]
    pub host_path: String,
    /// `None`, `HostToContainer`, `Bidirectional`.
    #[serde(default)]
    pub mount_propagation: Option<String>,
}

/// `[[runners.kubernetes.volumes.pvc]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PvcVolume {
    /// The volume and claim name (`$VAR`-expanded).
    #[serde(default)]
    pub name: String,
    /// Where it is mounted.
    #[serde(default)]
    pub mount_path: String,
    /// A sub-path of the volume.
    #[serde(default)]
    pub sub_path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Mount propagation.
    #[serde(default)]
    pub mount_propagation: Option<String>,
}

/// `[[runners.kubernetes.volumes.config_map]]` and `…secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KeyedVolume {
    /// The volume name and the config map's or secret's name.
    #[serde(default)]
    pub name: String,
    /// Where it is mounted.
    #[serde(default)]
    pub mount_path: String,
    /// A sub-path of the volume.
    #[serde(default)]
    pub sub_path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Key → path of the keys to project; empty projects every key.
    #[serde(default)]
    pub items: BTreeMap<String, String>,
}

/// `[[runners.kubernetes.volumes.empty_dir]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EmptyDirVolume {
    /// The volume name.
    #[serde(default)]
    pub name: String,
    /// Where it is mounted.
    #[serde(default)]
    pub mount_path: String,
    /// A sub-path of the volume.
    #[serde(default)]
    pub sub_path: String,
    /// `Memory` for a tmpfs.
    #[serde(default)]
    pub medium: String,
    /// A size limit (`"1Gi"`).
    #[serde(default)]
    pub size_limit: String,
    /// Mount propagation.
    #[serde(default)]
    pub mount_propagation: Option<String>,
}

/// `[runners.kubernetes.volumes]`: the kinds runnel mounts (`csi` and `nfs` are warned about by
/// the daemon and not mounted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Volumes {
    /// `host_path`.
    #[serde(default)]
    pub host_path: Vec<HostPathVolume>,
    /// `pvc`.
    #[serde(default)]
    pub pvc: Vec<PvcVolume>,
    /// `config_map`.
    #[serde(default)]
    pub config_map: Vec<KeyedVolume>,
    /// `secret`.
    #[serde(default)]
    pub secret: Vec<KeyedVolume>,
    /// `empty_dir`.
    #[serde(default)]
    pub empty_dir: Vec<EmptyDirVolume>,
}

/// `[[runners.kubernetes.host_aliases]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HostAlias {
    /// The address.
    pub ip: String,
    /// The names that resolve to it.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// `[runners.kubernetes.pod_security_context]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodSecurityContext {
    /// `fs_group`.
    pub fs_group: Option<i64>,
    /// `run_as_group`.
    pub run_as_group: Option<i64>,
    /// `run_as_non_root`.
    pub run_as_non_root: Option<bool>,
    /// `run_as_user`.
    pub run_as_user: Option<i64>,
    /// `supplemental_groups`.
    #[serde(default)]
    pub supplemental_groups: Vec<i64>,
    /// `selinux_type`.
    #[serde(default)]
    pub selinux_type: String,
}

/// `capabilities` of a container security context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Capabilities {
    /// `add`.
    pub add: Option<Vec<String>>,
    /// `drop`.
    pub drop: Option<Vec<String>>,
}

/// `[runners.kubernetes.build_container_security_context]` and the helper's and services'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerSecurityContext {
    /// `capabilities`.
    pub capabilities: Option<Capabilities>,
    /// `privileged`: overrides the section's `privileged`.
    pub privileged: Option<bool>,
    /// `run_as_user`.
    pub run_as_user: Option<i64>,
    /// `run_as_group`.
    pub run_as_group: Option<i64>,
    /// `run_as_non_root`.
    pub run_as_non_root: Option<bool>,
    /// `read_only_root_filesystem`.
    pub read_only_root_filesystem: Option<bool>,
    /// `allow_privilege_escalation`: overrides the section's.
    pub allow_privilege_escalation: Option<bool>,
    /// `selinux_type`.
    #[serde(default)]
    pub selinux_type: String,
    /// `proc_mount`: `default` or `unmasked`.
    #[serde(default)]
    pub proc_mount: String,
}

/// `[runners.kubernetes]`: where and how job pods run. Every field has gitlab-runner's default
/// when left at its `Default` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeSettings {
    /// How to reach the API server.
    pub connection: Connection,
    /// `namespace`; `None` is the kubeconfig context's namespace, else `default`.
    pub namespace: Option<String>,
    /// `namespace_overwrite_allowed`: a regex a job's `KUBERNETES_NAMESPACE_OVERWRITE` must
    /// match; `None` forbids overwrites.
    pub namespace_overwrite_allowed: Option<String>,
    /// `image`: the image of jobs that name none.
    pub image: Option<String>,
    /// `privileged`.
    pub privileged: Option<bool>,
    /// `allow_privilege_escalation`.
    pub allow_privilege_escalation: Option<bool>,
    /// `cpu_*`, `memory_*`, `ephemeral_storage_*` of the build container.
    pub build: ContainerResources,
    /// `helper_*`.
    pub helper: ContainerResources,
    /// `service_*`.
    pub service: ContainerResources,
    /// `service_account`.
    pub service_account: Option<String>,
    /// `service_account_overwrite_allowed`: regex for `KUBERNETES_SERVICE_ACCOUNT_OVERWRITE`.
    pub service_account_overwrite_allowed: Option<String>,
    /// `node_selector`.
    pub node_selector: BTreeMap<String, String>,
    /// `node_selector_overwrite_allowed`: regex for `KUBERNETES_NODE_SELECTOR_*`.
    pub node_selector_overwrite_allowed: Option<String>,
    /// `node_tolerations`: `key[=value]` → effect.
    pub node_tolerations: BTreeMap<String, String>,
    /// `node_tolerations_overwrite_allowed`: regex for `KUBERNETES_NODE_TOLERATIONS_*`.
    pub node_tolerations_overwrite_allowed: Option<String>,
    /// `pod_labels` (`$VAR`-expanded).
    pub pod_labels: BTreeMap<String, String>,
    /// `pod_labels_overwrite_allowed`: regex for `KUBERNETES_POD_LABELS_*`.
    pub pod_labels_overwrite_allowed: Option<String>,
    /// `pod_annotations` (`$VAR`-expanded).
    pub pod_annotations: BTreeMap<String, String>,
    /// `pod_annotations_overwrite_allowed`: regex for `KUBERNETES_POD_ANNOTATIONS_*`.
    pub pod_annotations_overwrite_allowed: Option<String>,
    /// `image_pull_secrets`.
    pub image_pull_secrets: Vec<String>,
    /// `pull_policy`: `always`, `if-not-present`, `never`; the first is used (Kubernetes has one
    /// policy per container). Empty leaves it to the cluster.
    pub pull_policy: Vec<String>,
    /// `allowed_pull_policies`: the policies a job's `image:pull_policy` (or the runner's
    /// `pull_policy`) may name; empty allows those of `pull_policy`, or any when that is empty.
    pub allowed_pull_policies: Vec<String>,
    /// `allowed_users`: the user ids a job's `image:kubernetes:user` may name; empty allows any.
    pub allowed_users: Vec<String>,
    /// `allowed_groups`: the group ids it may name; empty allows any.
    pub allowed_groups: Vec<String>,
    /// `priority_class_name`.
    pub priority_class_name: Option<String>,
    /// `scheduler_name`.
    pub scheduler_name: Option<String>,
    /// `runtime_class_name`.
    pub runtime_class_name: Option<String>,
    /// `automount_service_account_token`.
    pub automount_service_account_token: Option<bool>,
    /// `[[runners.kubernetes.host_aliases]]`: extra `/etc/hosts` entries of the pod.
    pub host_aliases: Vec<HostAlias>,
    /// `allowed_images`: globs a job's image must match; empty allows every image.
    pub allowed_images: Vec<String>,
    /// `allowed_services`.
    pub allowed_services: Vec<String>,
    /// `poll_interval`.
    pub poll_interval: Duration,
    /// `poll_timeout`: how long the pod may stay `Pending`.
    pub poll_timeout: Duration,
    /// `helper_image`; `None` is [`DEFAULT_HELPER_IMAGE`].
    pub helper_image: Option<String>,
    /// `pod_security_context`.
    pub pod_security_context: PodSecurityContext,
    /// `build_container_security_context`.
    pub build_container_security_context: ContainerSecurityContext,
    /// `helper_container_security_context`.
    pub helper_container_security_context: ContainerSecurityContext,
    /// `service_container_security_context`.
    pub service_container_security_context: ContainerSecurityContext,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `cap_drop` (`NET_RAW` is always dropped unless added, as gitlab-runner does).
    pub cap_drop: Vec<String>,
    /// `dns_policy`: `none`, `default`, `cluster-first`, `cluster-first-with-host-net`.
    pub dns_policy: Option<String>,
    /// `cleanup_grace_period_seconds`: the grace period of the pod's deletion.
    pub cleanup_grace_period_seconds: Option<i64>,
    /// `pod_termination_grace_period_seconds` (or the older `termination_grace_period_seconds`).
    pub termination_grace_period_seconds: Option<i64>,
    /// `[runners.kubernetes.volumes]`.
    pub volumes: Volumes,
    /// `[[runners.kubernetes.services]]`: started with every job, before the job's own.
    pub services: Vec<runnel_api::Image>,
    /// The `[[runners]]` entry's `name` (the `manager.runner.gitlab.com/name` label).
    pub runner_name: String,
    /// Its short token (`manager.runner.gitlab.com/id-short`, and the leftover sweep's label).
    pub runner_short_token: String,
}

impl KubeSettings {
    /// Settings with gitlab-runner's defaults.
    pub fn new() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            ..Self::default()
        }
    }

    /// The helper image.
    pub fn helper_image(&self) -> &str {
        self.helper_image.as_deref().unwrap_or(DEFAULT_HELPER_IMAGE)
    }
}
