//! Runs payloads with the Kubernetes executor (`executor = "kubernetes"`, crate `runnel-kube`):
//! `[runners.kubernetes]` into its settings, one warning naming the keys runnel reads but does
//! not implement, and the sweep of pods and secrets an earlier daemon left.
//!
//! GitLab: gitlab-runner `common/config.go` `KubernetesConfig` (keys, defaults) and
//! `executors/kubernetes` (`GetFeatures`: image, services, variables, artifacts, cache).

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_api::{FailureReason, FeaturesInfo, Image, JobPayload, JobVariable};
use runnel_kube::{
    Connection, ContainerResources, ContainerSecurityContext, KubeSettings, KubernetesExecutor,
    PodSecurityContext, Quantities, Volumes,
};

use crate::config::{DockerService, KubernetesConfig, RunnerConfig};
use crate::exec_adapter::{KILL_GRACE, ShellJobExecutor, exec_outcome};
use crate::executor::{ExecFuture, ExecOutcome, ExecStatus, JobContext, JobExecutor, StartUp};

/// A `[runners.kubernetes]` section runnel cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeSettingsError {
    /// A table or list of the wrong shape.
    #[error("`runners.kubernetes.{key}`: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The keys of `[runners.kubernetes]` runnel reads and keeps but does not act on.
const NOT_IMPLEMENTED: &[&str] = &[
    "namespace_per_job",
    "pod_cpu_limit",
    "pod_cpu_request",
    "pod_memory_limit",
    "pod_memory_request",
    "use_service_account_image_pull_secrets",
    "affinity",
    "init_permissions_container_security_context",
    "dns_config",
    "helper_image_flavor",
    "helper_image_autoset_arch_and_os",
    "container_lifecycle",
    "retry_limits",
    "cleanup_resources_timeout",
    "resource_availability_check_max_attempts",
    "retry_limit",
    "retry_backoff_max",
    "logs_base_dir",
    "scripts_base_dir",
    "pod_spec",
    "print_pod_warning_events",
];

/// The keys set in `section` that runnel does not implement (including nested ones it could not
/// place, such as `volumes.csi`), in the file's order of [`NOT_IMPLEMENTED`].
pub fn unimplemented_keys(section: &KubernetesConfig) -> Vec<String> {
    let value = toml::Value::try_from(section).unwrap_or(toml::Value::Table(Default::default()));
    let mut keys: Vec<String> = NOT_IMPLEMENTED
        .iter()
        .filter(|key| value.get(**key).is_some())
        .map(|key| (*key).to_owned())
        .collect();
    if let Some(volumes) = &section.volumes {
        let _ = parse_ignoring::<Volumes>(volumes, "volumes", &mut keys);
    }
    for (key, context) in [
        ("pod_security_context", &section.pod_security_context),
        (
            "build_container_security_context",
            &section.build_container_security_context,
        ),
        (
            "helper_container_security_context",
            &section.helper_container_security_context,
        ),
        (
            "service_container_security_context",
            &section.service_container_security_context,
        ),
    ] {
        if let Some(context) = context {
            if key == "pod_security_context" {
                let _ = parse_ignoring::<PodSecurityContext>(context, key, &mut keys);
            } else {
                let _ = parse_ignoring::<ContainerSecurityContext>(context, key, &mut keys);
            }
        }
    }
    keys
}

/// Deserializes `value`, adding `prefix.<key>` to `ignored` for keys the type does not have.
fn parse_ignoring<T: serde::de::DeserializeOwned>(
    value: &toml::Value,
    prefix: &str,
    ignored: &mut Vec<String>,
) -> Result<T, KubeSettingsError> {
    let mut unused = Vec::new();
    let parsed = serde_ignored::deserialize(value.clone(), |path| {
        unused.push(format!("{prefix}.{}", path.to_string().replace("?.", "")));
    })
    .map_err(|err: toml::de::Error| KubeSettingsError::Invalid {
        key: prefix.to_owned(),
        message: err.to_string().trim().to_owned(),
    })?;
    ignored.extend(unused);
    Ok(parsed)
}

fn string_map(
    key: &str,
    value: Option<&toml::Value>,
) -> Result<BTreeMap<String, String>, KubeSettingsError> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let table = value.as_table().ok_or_else(|| KubeSettingsError::Invalid {
        key: key.to_owned(),
        message: format!("expected a table of strings, found `{value}`"),
    })?;
    table
        .iter()
        .map(|(k, v)| match v {
            toml::Value::String(text) => Ok((k.clone(), text.clone())),
            other => Err(KubeSettingsError::Invalid {
                key: format!("{key}.{k}"),
                message: format!("expected a string, found `{other}`"),
            }),
        })
        .collect()
}

/// `pull_policy` (a string or a list of strings) or `allowed_pull_policies` (`key`).
fn pull_policies(key: &str, value: Option<&toml::Value>) -> Result<Vec<String>, KubeSettingsError> {
    let invalid = |message: String| KubeSettingsError::Invalid {
        key: key.to_owned(),
        message,
    };
    let check = |text: &str| match text {
        "always" | "if-not-present" | "never" => Ok(text.to_owned()),
        other => Err(invalid(format!(
            "unknown pull policy `{other}` (expected `always`, `if-not-present` or `never`)"
        ))),
    };
    match value {
        None => Ok(Vec::new()),
        Some(toml::Value::String(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(toml::Value::String(text)) => Ok(vec![check(text)?]),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => check(text),
                other => Err(invalid(format!("expected a string, found `{other}`"))),
            })
            .collect(),
        Some(other) => Err(invalid(format!(
            "expected a string or a list of strings, found `{other}`"
        ))),
    }
}

fn services(value: Option<&toml::Value>) -> Result<Vec<Image>, KubeSettingsError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list: Vec<DockerService> =
        value
            .clone()
            .try_into()
            .map_err(|err: toml::de::Error| KubeSettingsError::Invalid {
                key: "services".to_owned(),
                message: err.to_string().trim().to_owned(),
            })?;
    list.into_iter()
        .enumerate()
        .map(|(index, service)| {
            if service.name.trim().is_empty() {
                return Err(KubeSettingsError::Invalid {
                    key: format!("services[{index}]"),
                    message: "has no `name`".to_owned(),
                });
            }
            Ok(Image {
                name: service.name.trim().to_owned(),
                alias: service.alias.unwrap_or_default(),
                command: service.command,
                entrypoint: service.entrypoint,
                variables: service
                    .environment
                    .iter()
                    .filter_map(|entry| entry.split_once('='))
                    .map(|(key, value)| JobVariable {
                        internal: true,
                        ..JobVariable::new(key, value)
                    })
                    .collect(),
                ..Image::default()
            })
        })
        .collect()
}

fn seconds(value: Option<i64>, default: Duration) -> Duration {
    match value {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
        _ => default,
    }
}

/// The `runnel-kube` settings of a `[[runners]]` entry: its `[runners.kubernetes]` (absent
/// means every default), with relative files resolved by `dirs`.
pub fn kube_settings(
    runner: &RunnerConfig,
    dirs: &ShellJobExecutor,
) -> Result<KubeSettings, KubeSettingsError> {
    let default = KubernetesConfig::default();
    let k = runner.kubernetes.as_ref().unwrap_or(&default);
    let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let file = |value: &Option<String>| nonempty(value).map(|f| dirs.resolve(&f));
    let q = |cpu: &Option<String>, memory: &Option<String>, storage: &Option<String>| Quantities {
        cpu: nonempty(cpu),
        memory: nonempty(memory),
        ephemeral_storage: nonempty(storage),
    };
    let mut ignored = Vec::new();
    let context = |key: &str, value: &Option<toml::Value>, ignored: &mut Vec<String>| {
        value
            .as_ref()
            .map_or(Ok(ContainerSecurityContext::default()), |v| {
                parse_ignoring(v, key, ignored)
            })
    };
    Ok(KubeSettings {
        connection: Connection {
            host: nonempty(&k.host),
            context: nonempty(&k.context),
            cert_file: file(&k.cert_file),
            key_file: file(&k.key_file),
            ca_file: file(&k.ca_file),
            bearer_token: nonempty(&k.bearer_token),
            bearer_token_overwrite_allowed: k.bearer_token_overwrite_allowed.unwrap_or(false),
        },
        namespace: nonempty(&k.namespace),
        namespace_overwrite_allowed: nonempty(&k.namespace_overwrite_allowed),
        image: nonempty(&k.image),
        privileged: k.privileged,
        allow_privilege_escalation: k.allow_privilege_escalation,
        build: ContainerResources {
            limits: q(&k.cpu_limit, &k.memory_limit, &k.ephemeral_storage_limit),
            requests: q(
                &k.cpu_request,
                &k.memory_request,
                &k.ephemeral_storage_request,
            ),
            limits_max: q(
                &k.cpu_limit_overwrite_max_allowed,
                &k.memory_limit_overwrite_max_allowed,
                &k.ephemeral_storage_limit_overwrite_max_allowed,
            ),
            requests_max: q(
                &k.cpu_request_overwrite_max_allowed,
                &k.memory_request_overwrite_max_allowed,
                &k.ephemeral_storage_request_overwrite_max_allowed,
            ),
        },
        helper: ContainerResources {
            limits: q(
                &k.helper_cpu_limit,
                &k.helper_memory_limit,
                &k.helper_ephemeral_storage_limit,
            ),
            requests: q(
                &k.helper_cpu_request,
                &k.helper_memory_request,
                &k.helper_ephemeral_storage_request,
            ),
            limits_max: q(
                &k.helper_cpu_limit_overwrite_max_allowed,
                &k.helper_memory_limit_overwrite_max_allowed,
                &k.helper_ephemeral_storage_limit_overwrite_max_allowed,
            ),
            requests_max: q(
                &k.helper_cpu_request_overwrite_max_allowed,
                &k.helper_memory_request_overwrite_max_allowed,
                &k.helper_ephemeral_storage_request_overwrite_max_allowed,
            ),
        },
        service: ContainerResources {
            limits: q(
                &k.service_cpu_limit,
                &k.service_memory_limit,
                &k.service_ephemeral_storage_limit,
            ),
            requests: q(
                &k.service_cpu_request,
                &k.service_memory_request,
                &k.service_ephemeral_storage_request,
            ),
            limits_max: q(
                &k.service_cpu_limit_overwrite_max_allowed,
                &k.service_memory_limit_overwrite_max_allowed,
                &k.service_ephemeral_storage_limit_overwrite_max_allowed,
            ),
            requests_max: q(
                &k.service_cpu_request_overwrite_max_allowed,
                &k.service_memory_request_overwrite_max_allowed,
                &k.service_ephemeral_storage_request_overwrite_max_allowed,
            ),
        },
        service_account: nonempty(&k.service_account),
        service_account_overwrite_allowed: nonempty(&k.service_account_overwrite_allowed),
        node_selector: string_map("node_selector", k.node_selector.as_ref())?,
        node_selector_overwrite_allowed: nonempty(&k.node_selector_overwrite_allowed),
        node_tolerations: string_map("node_tolerations", k.node_tolerations.as_ref())?,
        node_tolerations_overwrite_allowed: nonempty(&k.node_tolerations_overwrite_allowed),
        pod_labels: string_map("pod_labels", k.pod_labels.as_ref())?,
        pod_labels_overwrite_allowed: nonempty(&k.pod_labels_overwrite_allowed),
        pod_annotations: string_map("pod_annotations", k.pod_annotations.as_ref())?,
        pod_annotations_overwrite_allowed: nonempty(&k.pod_annotations_overwrite_allowed),
        image_pull_secrets: k.image_pull_secrets.clone(),
        pull_policy: pull_policies("pull_policy", k.pull_policy.as_ref())?,
        allowed_pull_policies: pull_policies(
            "allowed_pull_policies",
            Some(&toml::Value::Array(
                k.allowed_pull_policies
                    .iter()
                    .map(|p| toml::Value::String(p.clone()))
                    .collect(),
            )),
        )?,
        allowed_users: k.allowed_users.clone(),
        allowed_groups: k.allowed_groups.clone(),
        priority_class_name: nonempty(&k.priority_class_name),
        scheduler_name: nonempty(&k.scheduler_name),
        runtime_class_name: nonempty(&k.runtime_class_name),
        automount_service_account_token: k.automount_service_account_token,
        host_aliases: k.host_aliases.as_ref().map_or(Ok(Vec::new()), |v| {
            parse_ignoring(v, "host_aliases", &mut ignored)
        })?,
        allowed_images: k.allowed_images.clone(),
        allowed_services: k.allowed_services.clone(),
        poll_interval: seconds(k.poll_interval, runnel_kube::DEFAULT_POLL_INTERVAL),
        poll_timeout: seconds(k.poll_timeout, runnel_kube::DEFAULT_POLL_TIMEOUT),
        helper_image: nonempty(&k.helper_image),
        pod_security_context: k
            .pod_security_context
            .as_ref()
            .map_or(Ok(PodSecurityContext::default()), |v| {
                parse_ignoring(v, "pod_security_context", &mut ignored)
            })?,
        build_container_security_context: context(
            "build_container_security_context",
            &k.build_container_security_context,
            &mut ignored,
        )?,
        helper_container_security_context: context(
            "helper_container_security_context",
            &k.helper_container_security_context,
            &mut ignored,
        )?,
        service_container_security_context: context(
            "service_container_security_context",
            &k.service_container_security_context,
            &mut ignored,
        )?,
        cap_add: k.cap_add.clone(),
        cap_drop: k.cap_drop.clone(),
        dns_policy: nonempty(&k.dns_policy),
        cleanup_grace_period_seconds: k.cleanup_grace_period_seconds,
        termination_grace_period_seconds: k
            .pod_termination_grace_period_seconds
            .or(k.termination_grace_period_seconds),
        volumes: k.volumes.as_ref().map_or(Ok(Volumes::default()), |v| {
            parse_ignoring(v, "volumes", &mut ignored)
        })?,
        services: services(k.services.as_ref())?,
        runner_name: runner.name.clone(),
        runner_short_token: runner.short_token(),
    })
}

/// The Kubernetes executor behind the daemon. Directories are the shell executor's: runnel
/// prepares the job there and copies it into the pod.
#[derive(Debug, Clone, Default)]
pub struct KubeJobExecutor {
    /// Resolves `builds_dir`/`cache_dir` and builds the job context.
    pub dirs: ShellJobExecutor,
}

impl JobExecutor for KubeJobExecutor {
    fn supports(&self, name: &str) -> bool {
        name == "kubernetes"
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        crate::executor::container_features(self.dirs.features(runner))
    }

    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        Box::pin(async move {
            for runner in runners.iter().filter(|r| self.supports(&r.executor)) {
                let section = runner.kubernetes.clone().unwrap_or_default();
                let keys = unimplemented_keys(&section);
                if !keys.is_empty() {
                    tracing::warn!(
                        name = %runner.name,
                        "[runners.kubernetes] keys runnel reads but does not implement yet: {}",
                        keys.join(", ")
                    );
                }
                match kube_settings(runner, &self.dirs) {
                    Ok(settings) => sweep(&settings).await,
                    Err(err) => tracing::error!(name = %runner.name, "{err}"),
                }
            }
        })
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        let settings = kube_settings(&ctx.runner, &self.dirs);
        let mut exec_ctx = self.dirs.exec_context(&ctx);
        // `[runners.cache]` as for the shell and Docker executors: the cache stages run on the
        // runner's host, so a distributed cache needs no credentials in the pod.
        exec_ctx.cache =
            crate::cache::job_cache_store(&ctx.runner, exec_ctx.cache_dir.clone(), &payload);
        let trace = ctx.trace.clone();
        Box::pin(async move {
            let settings = match settings {
                Ok(settings) => settings,
                Err(err) => {
                    trace.write(format!("\x1b[31;1mERROR: {err}\x1b[0;m\n").as_bytes());
                    return ExecOutcome {
                        status: ExecStatus::Failed,
                        failure_reason: Some(FailureReason::RunnerSystemFailure),
                        exit_code: None,
                    };
                }
            };
            let mut executor = KubernetesExecutor::new(settings, KILL_GRACE);
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            exec_outcome(runnel_exec::run_job_with(&mut executor, payload, exec_ctx, events).await)
        })
    }
}

/// Deletes what this runner left in its namespace; an unreachable cluster is a warning (the
/// daemon keeps going and each job reports the failure).
async fn sweep(settings: &KubeSettings) {
    let host = settings
        .connection
        .host
        .clone()
        .unwrap_or_else(|| "the kubeconfig's cluster".to_owned());
    let swept = async {
        let config = runnel_kube::client_config(&settings.connection, None)
            .await
            .map_err(|e| e.to_string())?;
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let (client, _) = runnel_kube::client(config).map_err(|e| e.to_string())?;
        runnel_kube::remove_leftovers(client, &namespace, &settings.runner_short_token)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(30), swept).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => {
            tracing::info!(
                host,
                removed,
                "removed pods and secrets left by an earlier runnel"
            );
        }
        Ok(Err(err)) => {
            tracing::warn!(host, error = %err, "cannot remove leftovers of an earlier runnel");
        }
        Err(_) => {
            tracing::warn!(
                host,
                "cannot remove leftovers of an earlier runnel: timed out"
            );
        }
    }
}
