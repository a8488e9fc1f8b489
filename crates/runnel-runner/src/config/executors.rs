//! The executor sections of `[[runners]]`: `[runners.docker]`, `[runners.kubernetes]`,
//! `[runners.ssh]`, `[runners.virtualbox]`, `[runners.parallels]` and `[runners.custom]`, with gitlab-runner's keys (`common/config.go`).
//! Nested structures runnel does not interpret yet stay `toml::Value`.

use serde::{Deserialize, Serialize};

/// `[runners.docker]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerConfig {
    /// Docker daemon address.
    pub host: Option<String>,
    /// Container hostname.
    pub hostname: Option<String>,
    /// Default job image.
    pub image: Option<String>,
    /// Privileged job containers.
    pub privileged: Option<bool>,
    /// Privileged service containers.
    pub services_privileged: Option<bool>,
    /// User in the job container.
    pub user: Option<String>,
    /// Users a job may choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
    /// Volumes in `docker -v` syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Containers whose volumes are mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Volume driver.
    pub volume_driver: Option<String>,
    /// Keep volumes after the job.
    pub volume_keep: Option<bool>,
    /// Cache directory.
    pub cache_dir: Option<String>,
    /// No `/cache` volume.
    pub disable_cache: Option<bool>,
    /// Keep the image entrypoint.
    pub disable_entrypoint_overwrite: Option<bool>,
    /// `always`, `if-not-present`, `never`: a string or a list.
    pub pull_policy: Option<toml::Value>,
    /// Pull policies a job may choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_pull_policies: Vec<String>,
    /// Image globs a job may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
    /// Service globs a job may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_services: Vec<String>,
    /// Images that may run privileged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_privileged_images: Vec<String>,
    /// Services that may run privileged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_privileged_services: Vec<String>,
    /// Network mode.
    pub network_mode: Option<String>,
    /// IPv6 on the job network.
    pub enable_ipv6: Option<bool>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `host:ip` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Container links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Memory limit.
    pub memory: Option<String>,
    /// Swap limit.
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    pub memory_reservation: Option<String>,
    /// CPU count.
    pub cpus: Option<String>,
    /// CPU shares.
    pub cpu_shares: Option<i64>,
    /// CPU set.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes.
    pub cpuset_mems: Option<String>,
    /// Parent cgroup.
    pub cgroup_parent: Option<String>,
    /// GPUs.
    pub gpus: Option<String>,
    /// Devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Device cgroup rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Added capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Security options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Sysctls table.
    pub sysctls: Option<toml::Value>,
    /// `/dev/shm` size in bytes.
    pub shm_size: Option<i64>,
    /// Tmpfs mounts table.
    pub tmpfs: Option<toml::Value>,
    /// Service tmpfs mounts table.
    pub services_tmpfs: Option<toml::Value>,
    /// Disable the OOM killer.
    pub oom_kill_disable: Option<bool>,
    /// OOM score adjustment.
    pub oom_score_adjust: Option<i64>,
    /// User namespace mode.
    pub userns_mode: Option<String>,
    /// PID namespace mode.
    pub pid_mode: Option<String>,
    /// IPC mode.
    pub ipcmode: Option<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// Windows isolation.
    pub isolation: Option<String>,
    /// Container runtime.
    pub runtime: Option<String>,
    /// Helper image (runnel needs none).
    pub helper_image: Option<String>,
    /// Helper image flavour.
    pub helper_image_flavor: Option<String>,
    /// Labels on job containers.
    pub container_labels: Option<toml::Value>,
    /// Seconds to wait for services.
    pub wait_for_services_timeout: Option<i64>,
    /// Most services per job.
    pub services_limit: Option<i64>,
    /// Service memory limit.
    pub service_memory: Option<String>,
    /// Service swap limit.
    pub service_memory_swap: Option<String>,
    /// Service memory soft limit.
    pub service_memory_reservation: Option<String>,
    /// Service CPU count.
    pub service_cpus: Option<String>,
    /// Service CPU shares.
    pub service_cpu_shares: Option<i64>,
    /// Service CPU set.
    pub service_cpuset_cpus: Option<String>,
    /// Service GPUs.
    pub service_gpus: Option<String>,
    /// Logging driver options.
    pub log_options: Option<toml::Value>,
    /// Docker TLS certificates.
    pub tls_cert_path: Option<String>,
    /// Verify Docker TLS.
    pub tls_verify: Option<bool>,
    /// Extra groups of the job container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// Security options of service containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services_security_opt: Vec<String>,
    /// Host devices per service image.
    pub services_devices: Option<toml::Value>,
    /// Volume driver options table.
    pub volume_driver_ops: Option<toml::Value>,
    /// cgroup parent of service containers.
    pub service_cgroup_parent: Option<String>,
    /// Template of slot-derived service cgroup names.
    pub service_slot_cgroup_template: Option<String>,
    /// Ulimits table.
    pub ulimit: Option<toml::Value>,
    /// MTU of per-build networks; gitlab-runner's `register` writes `network_mtu = 0`.
    pub network_mtu: Option<i64>,
    /// `[[runners.docker.services]]`: started for every job, before the job's `services:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<DockerService>,
}

/// `[[runners.docker.services]]`: a service started with every job (gitlab-runner
/// `common/config.go` `Service`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerService {
    /// The image, `$VAR`-expanded with the job's variables.
    #[serde(default)]
    pub name: String,
    /// Aliases, separated by spaces or commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Overrides the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// `KEY=VALUE` variables of the service container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
}

/// `[runners.kubernetes]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubernetesConfig {
    /// API server URL.
    pub host: Option<String>,
    /// kubeconfig context.
    pub context: Option<String>,
    /// Client certificate.
    pub cert_file: Option<String>,
    /// Client key.
    pub key_file: Option<String>,
    /// CA certificate.
    pub ca_file: Option<String>,
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// Allow `KUBERNETES_BEARER_TOKEN`.
    pub bearer_token_overwrite_allowed: Option<bool>,
    /// Default job image.
    pub image: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Regex of namespaces a job may choose.
    pub namespace_overwrite_allowed: Option<String>,
    /// One namespace per job.
    pub namespace_per_job: Option<bool>,
    /// Privileged containers.
    pub privileged: Option<bool>,
    /// Allow privilege escalation.
    pub allow_privilege_escalation: Option<bool>,
    /// Runtime class.
    pub runtime_class_name: Option<String>,
    /// Build CPU limit.
    pub cpu_limit: Option<String>,
    /// Largest CPU limit a job may set.
    pub cpu_limit_overwrite_max_allowed: Option<String>,
    /// Build CPU request.
    pub cpu_request: Option<String>,
    /// Largest CPU request a job may set.
    pub cpu_request_overwrite_max_allowed: Option<String>,
    /// Build memory limit.
    pub memory_limit: Option<String>,
    /// Largest memory limit a job may set.
    pub memory_limit_overwrite_max_allowed: Option<String>,
    /// Build memory request.
    pub memory_request: Option<String>,
    /// Largest memory request a job may set.
    pub memory_request_overwrite_max_allowed: Option<String>,
    /// Build ephemeral storage limit.
    pub ephemeral_storage_limit: Option<String>,
    /// Build ephemeral storage request.
    pub ephemeral_storage_request: Option<String>,
    /// Helper CPU limit.
    pub helper_cpu_limit: Option<String>,
    /// Helper CPU request.
    pub helper_cpu_request: Option<String>,
    /// Helper memory limit.
    pub helper_memory_limit: Option<String>,
    /// Helper memory request.
    pub helper_memory_request: Option<String>,
    /// Service CPU limit.
    pub service_cpu_limit: Option<String>,
    /// Service CPU request.
    pub service_cpu_request: Option<String>,
    /// Service memory limit.
    pub service_memory_limit: Option<String>,
    /// Service memory request.
    pub service_memory_request: Option<String>,
    /// Largest build ephemeral storage limit a job may set.
    pub ephemeral_storage_limit_overwrite_max_allowed: Option<String>,
    /// Largest build ephemeral storage request a job may set.
    pub ephemeral_storage_request_overwrite_max_allowed: Option<String>,
    /// Largest service CPU limit a job may set.
    pub service_cpu_limit_overwrite_max_allowed: Option<String>,
    /// Largest service CPU request a job may set.
    pub service_cpu_request_overwrite_max_allowed: Option<String>,
    /// Largest service memory limit a job may set.
    pub service_memory_limit_overwrite_max_allowed: Option<String>,
    /// Largest service memory request a job may set.
    pub service_memory_request_overwrite_max_allowed: Option<String>,
    /// Largest service ephemeral storage limit a job may set.
    pub service_ephemeral_storage_limit_overwrite_max_allowed: Option<String>,
    /// Largest service ephemeral storage request a job may set.
    pub service_ephemeral_storage_request_overwrite_max_allowed: Option<String>,
    /// Service ephemeral storage limit.
    pub service_ephemeral_storage_limit: Option<String>,
    /// Service ephemeral storage request.
    pub service_ephemeral_storage_request: Option<String>,
    /// Largest helper CPU limit a job may set.
    pub helper_cpu_limit_overwrite_max_allowed: Option<String>,
    /// Largest helper CPU request a job may set.
    pub helper_cpu_request_overwrite_max_allowed: Option<String>,
    /// Largest helper memory limit a job may set.
    pub helper_memory_limit_overwrite_max_allowed: Option<String>,
    /// Largest helper memory request a job may set.
    pub helper_memory_request_overwrite_max_allowed: Option<String>,
    /// Largest helper ephemeral storage limit a job may set.
    pub helper_ephemeral_storage_limit_overwrite_max_allowed: Option<String>,
    /// Largest helper ephemeral storage request a job may set.
    pub helper_ephemeral_storage_request_overwrite_max_allowed: Option<String>,
    /// Helper ephemeral storage limit.
    pub helper_ephemeral_storage_limit: Option<String>,
    /// Helper ephemeral storage request.
    pub helper_ephemeral_storage_request: Option<String>,
    /// Pod CPU limit.
    pub pod_cpu_limit: Option<String>,
    /// Pod CPU request.
    pub pod_cpu_request: Option<String>,
    /// Pod memory limit.
    pub pod_memory_limit: Option<String>,
    /// Pod memory request.
    pub pod_memory_request: Option<String>,
    /// Service account.
    pub service_account: Option<String>,
    /// Regex of service accounts a job may choose.
    pub service_account_overwrite_allowed: Option<String>,
    /// Image pull secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// Use the service account's pull secrets.
    pub use_service_account_image_pull_secrets: Option<bool>,
    /// Pull policy: a string or a list.
    pub pull_policy: Option<toml::Value>,
    /// Image globs a job may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
    /// Service globs a job may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_services: Vec<String>,
    /// Pull policies a job may choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_pull_policies: Vec<String>,
    /// Users a job may choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_users: Vec<String>,
    /// Groups a job may choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_groups: Vec<String>,
    /// Node selector table.
    pub node_selector: Option<toml::Value>,
    /// Node tolerations table.
    pub node_tolerations: Option<toml::Value>,
    /// Affinity.
    pub affinity: Option<toml::Value>,
    /// Regex of node selectors a job may set.
    pub node_selector_overwrite_allowed: Option<String>,
    /// Regex of node tolerations a job may set.
    pub node_tolerations_overwrite_allowed: Option<String>,
    /// Pod labels.
    pub pod_labels: Option<toml::Value>,
    /// Regex of pod labels a job may set.
    pub pod_labels_overwrite_allowed: Option<String>,
    /// Pod annotations.
    pub pod_annotations: Option<toml::Value>,
    /// Regex of pod annotations a job may set.
    pub pod_annotations_overwrite_allowed: Option<String>,
    /// Pod security context.
    pub pod_security_context: Option<toml::Value>,
    /// Build container security context.
    pub build_container_security_context: Option<toml::Value>,
    /// Helper container security context.
    pub helper_container_security_context: Option<toml::Value>,
    /// Service container security context.
    pub service_container_security_context: Option<toml::Value>,
    /// Init container security context.
    pub init_permissions_container_security_context: Option<toml::Value>,
    /// Volumes (`host_path`, `pvc`, `config_map`, `secret`, `empty_dir`, `csi`, `nfs`).
    pub volumes: Option<toml::Value>,
    /// Services.
    pub services: Option<toml::Value>,
    /// Added capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// DNS policy.
    pub dns_policy: Option<String>,
    /// DNS config.
    pub dns_config: Option<toml::Value>,
    /// Host aliases.
    pub host_aliases: Option<toml::Value>,
    /// Priority class.
    pub priority_class_name: Option<String>,
    /// Scheduler.
    pub scheduler_name: Option<String>,
    /// Helper image.
    pub helper_image: Option<String>,
    /// Helper image flavour.
    pub helper_image_flavor: Option<String>,
    /// Pick the helper image's OS and architecture from the node.
    pub helper_image_autoset_arch_and_os: Option<bool>,
    /// Mount the service account token in the build pod.
    pub automount_service_account_token: Option<bool>,
    /// Container lifecycle hooks.
    pub container_lifecycle: Option<toml::Value>,
    /// Retries per Kubernetes API error.
    pub retry_limits: Option<toml::Value>,
    /// Seconds between pod status polls.
    pub poll_interval: Option<i64>,
    /// Seconds to wait for the pod.
    pub poll_timeout: Option<i64>,
    /// Pod termination grace period.
    pub pod_termination_grace_period_seconds: Option<i64>,
    /// The older name of `pod_termination_grace_period_seconds`.
    pub termination_grace_period_seconds: Option<i64>,
    /// Cleanup grace period.
    pub cleanup_grace_period_seconds: Option<i64>,
    /// Cleanup timeout, a Go duration.
    pub cleanup_resources_timeout: Option<String>,
    /// Resource checks before giving up.
    pub resource_availability_check_max_attempts: Option<i64>,
    /// API retries.
    pub retry_limit: Option<i64>,
    /// Largest API retry backoff in milliseconds.
    pub retry_backoff_max: Option<i64>,
    /// Base directory of logs.
    pub logs_base_dir: Option<String>,
    /// Base directory of scripts.
    pub scripts_base_dir: Option<String>,
    /// Pod spec patches.
    pub pod_spec: Option<toml::Value>,
    /// Print pod warning events.
    pub print_pod_warning_events: Option<bool>,
}

/// `[runners.ssh]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SshConfig {
    /// Host.
    pub host: Option<String>,
    /// Port.
    pub port: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Private key file.
    pub identity_file: Option<String>,
    /// Accept unknown host keys.
    pub disable_strict_host_key_checking: Option<bool>,
    /// `known_hosts` file.
    pub known_hosts_file: Option<String>,
}

/// `[runners.virtualbox]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualBoxConfig {
    /// The VM to clone.
    pub base_name: Option<String>,
    /// The base VM's snapshot clones are linked to.
    pub base_snapshot: Option<String>,
    /// Where clones are created.
    pub base_folder: Option<String>,
    /// A full clone per job, deleted after it.
    pub disable_snapshots: Option<bool>,
    /// `startvm --type`: `headless` (default), `gui`, `separate`.
    pub start_type: Option<String>,
    /// Regular expressions of base VMs a job's `image:` may name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
}

/// `[runners.parallels]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParallelsConfig {
    /// The VM the template is made of.
    pub base_name: Option<String>,
    /// The template; `<base_name>-template` by default.
    pub template_name: Option<String>,
    /// A VM per job, deleted after it.
    pub disable_snapshots: Option<bool>,
    /// Where the guest sets its clock from.
    pub time_server: Option<String>,
    /// Regular expressions of base VMs a job's `image:` may name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_images: Vec<String>,
}

/// `[runners.custom]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomConfig {
    /// Config program.
    pub config_exec: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_args: Vec<String>,
    /// Its timeout in seconds.
    pub config_exec_timeout: Option<i64>,
    /// Prepare program.
    pub prepare_exec: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepare_args: Vec<String>,
    /// Its timeout in seconds.
    pub prepare_exec_timeout: Option<i64>,
    /// Run program (required).
    pub run_exec: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_args: Vec<String>,
    /// Cleanup program.
    pub cleanup_exec: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup_args: Vec<String>,
    /// Its timeout in seconds.
    pub cleanup_exec_timeout: Option<i64>,
    /// Seconds between SIGTERM and SIGKILL.
    pub graceful_kill_timeout: Option<i64>,
    /// Seconds to wait after SIGKILL.
    pub force_kill_timeout: Option<i64>,
}
