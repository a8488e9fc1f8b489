//! The pod of one job, as gitlab-runner builds it: containers `build`, `helper` and `svc-0…N`,
//! the builds and scripts volumes, gitlab-runner's labels and annotations, resources after the
//! job's overwrites, security contexts, the configured volumes, pull secrets, node selection,
//! DNS policy and grace period. A pure function of the settings and the job, so tests can pin
//! every field.
//!
//! GitLab: gitlab-runner `executors/kubernetes/kubernetes.go` (`preparePodConfig`,
//! `createBuildAndHelperContainers`, `buildContainer`, `getCommandAndArgs`, `buildLabels`,
//! `buildPodAnnotations`, `getVolumeMounts`, `getVolumes*`, `getPodTolerations`,
//! `prepareImagePullSecrets`), `host_aliases.go` (service aliases resolve to the pod's
//! 127.0.0.1), `util.go` (`sanitizeLabel`) and `common/config.go` (`GetContainerSecurityContext`,
//! `GetPodSecurityContext`, `KubernetesDNSPolicy.Get`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, HostAlias,
    HostPathVolumeSource, KeyToPath, LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SELinuxOptions, SecretVolumeSource,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runnel_api::Image;
use runnel_exec::PreparedJob;

use crate::names::{
    JOB_LABEL, MANAGED_LABEL, RUNNER_LABEL, sanitize_label, service_aliases, valid_dns_subdomain,
};
use crate::overwrites::Overwrites;
use crate::settings::{self, KubeSettings, Quantities};

/// The build container's name.
pub(crate) const BUILD_CONTAINER: &str = "build";
/// The helper container's name.
pub(crate) const HELPER_CONTAINER: &str = "helper";

/// gitlab-runner's shell detection (`shells/bash.go` `BashDetectShellScript`): `bash` where the
/// image has it, else `sh`. The build container runs it reading its standard input: in the
/// attach strategy each stage's command is written to it; in the exec strategy each stage
/// runs it again.
pub(crate) const DETECT_SHELL_SCRIPT: &str = "if [ -x /usr/local/bin/bash ]; then
\texec /usr/local/bin/bash \"$@\"
elif [ -x /usr/bin/bash ]; then
\texec /usr/bin/bash \"$@\"
elif [ -x /bin/bash ]; then
\texec /bin/bash \"$@\"
elif [ -x /usr/local/bin/sh ]; then
\texec /usr/local/bin/sh \"$@\"
elif [ -x /usr/bin/sh ]; then
\texec /usr/bin/sh \"$@\"
elif [ -x /bin/sh ]; then
\texec /bin/sh \"$@\"
elif [ -x /busybox/sh ]; then
\texec /busybox/sh \"$@\"
else
\techo shell not found
\texit 1
fi
";

/// Everything the pod is made of, decided before it is built.
#[derive(Debug, Clone)]
pub(crate) struct PodPlan<'a> {
    pub(crate) settings: &'a KubeSettings,
    pub(crate) overwrites: &'a Overwrites,
    pub(crate) job: &'a PreparedJob,
    /// The pod's name (DNS-1123 label).
    pub(crate) name: String,
    /// Its namespace.
    pub(crate) namespace: String,
    /// The build image, expanded.
    pub(crate) image: String,
    /// The runner's and the job's services, names expanded.
    pub(crate) services: Vec<Image>,
    /// The secret with the job's registry credentials, when it has any.
    pub(crate) credentials_secret: Option<String>,
    /// `FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY`: no scripts volume.
    pub(crate) legacy_exec: bool,
}

/// The directory of the stage scripts in the attach strategy: gitlab-runner's
/// `/scripts-<project id>-<job id>`.
pub(crate) fn scripts_dir(job: &PreparedJob) -> String {
    format!(
        "/scripts-{}-{}",
        job.payload.job_info.project_id, job.payload.id.0
    )
}

/// The pod of `plan`.
pub(crate) fn pod(plan: &PodPlan<'_>) -> Pod {
    let settings = plan.settings;
    let mounts = volume_mounts(plan);
    let mut containers = vec![
        build_container(plan, &mounts),
        helper_container(plan, &mounts),
    ];
    for (index, service) in plan.services.iter().enumerate() {
        containers.push(service_container(plan, index, service, &mounts));
    }
    let mut image_pull_secrets: Vec<LocalObjectReference> = settings
        .image_pull_secrets
        .iter()
        .map(|name| LocalObjectReference { name: name.clone() })
        .collect();
    if let Some(secret) = &plan.credentials_secret {
        image_pull_secrets.push(LocalObjectReference {
            name: secret.clone(),
        });
    }
    let aliases: Vec<String> = plan
        .services
        .iter()
        .filter(|s| s.ports.is_empty())
        .flat_map(|s| service_aliases(s, &s.name))
        .filter(|alias| valid_dns_subdomain(alias))
        .collect();
    let host_aliases = (!aliases.is_empty()).then(|| {
        vec![HostAlias {
            ip: "127.0.0.1".to_owned(),
            hostnames: Some(aliases),
        }]
    });
    let tolerations: Vec<Toleration> = plan
        .overwrites
        .node_tolerations
        .iter()
        .map(|(key_value, effect)| toleration(key_value, effect))
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            namespace: Some(plan.namespace.clone()),
            labels: Some(labels(plan)),
            annotations: Some(annotations(plan)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes(plan)),
            service_account_name: plan.overwrites.service_account.clone(),
            restart_policy: Some("Never".to_owned()),
            node_selector: non_empty_map(&plan.overwrites.node_selector),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            containers,
            termination_grace_period_seconds: settings.termination_grace_period_seconds,
            image_pull_secrets: (!image_pull_secrets.is_empty()).then_some(image_pull_secrets),
            security_context: pod_security_context(&settings.pod_security_context),
            host_aliases,
            dns_policy: Some(dns_policy(settings.dns_policy.as_deref()).to_owned()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// gitlab-runner `KubernetesDNSPolicy.Get`; an unknown policy falls back to the cluster's
/// default (gitlab-runner warns; the executor does too, see [`dns_policy_error`]).
pub(crate) fn dns_policy(policy: Option<&str>) -> &'static str {
    match policy.unwrap_or_default() {
        "none" => "None",
        "default" => "Default",
        "cluster-first-with-host-net" => "ClusterFirstWithHostNet",
        _ => "ClusterFirst",
    }
}

/// The warning for a `dns_policy` gitlab-runner does not know.
pub(crate) fn dns_policy_error(policy: Option<&str>) -> Option<String> {
    let policy = policy.filter(|p| !p.is_empty())?;
    (!matches!(
        policy,
        "none" | "default" | "cluster-first" | "cluster-first-with-host-net"
    ))
    .then(|| {
        format!(
            "falling back to cluster's default policy: unsupported kubernetes-dns-policy: {policy:?}"
        )
    })
}

fn non_empty_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// gitlab-runner `getPodTolerations`: `key=value` is `Equal`, a bare key `Exists`.
fn toleration(key_value: &str, effect: &str) -> Toleration {
    let effect = (!effect.is_empty()).then(|| effect.to_owned());
    match key_value.split_once('=') {
        Some((key, value)) => Toleration {
            key: Some(key.to_owned()),
            value: Some(value.to_owned()),
            operator: Some("Equal".to_owned()),
            effect,
            ..Toleration::default()
        },
        None => Toleration {
            key: (!key_value.is_empty()).then(|| key_value.to_owned()),
            operator: Some("Exists".to_owned()),
            effect,
            ..Toleration::default()
        },
    }
}

/// gitlab-runner `buildLabels`: its own labels cannot be overwritten by `pod_labels`.
fn labels(plan: &PodPlan<'_>) -> BTreeMap<String, String> {
    let job = plan.job;
    let var = |key: &str| sanitize_label(job.variables.get(key).unwrap_or_default());
    let unique = sanitize_label(&project_unique_name(job));
    let info = &job.payload.job_info;
    let mut labels = BTreeMap::new();
    for (key, value) in plan
        .settings
        .pod_labels
        .iter()
        .chain(plan.overwrites.pod_labels.iter())
    {
        if key.contains("runner.gitlab.com/") || key.starts_with("runnel.dev/") {
            continue;
        }
        labels.insert(key.clone(), sanitize_label(&job.variables.expand(value)));
    }
    let fixed = [
        ("pod", unique.clone()),
        ("project.runner.gitlab.com/id", info.project_id.to_string()),
        (
            "project.runner.gitlab.com/namespace-id",
            var("CI_PROJECT_NAMESPACE_ID"),
        ),
        (
            "project.runner.gitlab.com/name",
            sanitize_label(&info.project_name),
        ),
        (
            "project.runner.gitlab.com/namespace",
            var("CI_PROJECT_NAMESPACE"),
        ),
        (
            "project.runner.gitlab.com/root-namespace",
            var("CI_PROJECT_ROOT_NAMESPACE"),
        ),
        (
            "project.runner.gitlab.com/root-namespace-id",
            var("CI_PROJECT_ROOT_NAMESPACE_ID"),
        ),
        ("job.runner.gitlab.com/pod", unique),
        (
            "manager.runner.gitlab.com/name",
            sanitize_label(&plan.settings.runner_name),
        ),
        (
            "manager.runner.gitlab.com/id-short",
            sanitize_label(&plan.settings.runner_short_token),
        ),
        (MANAGED_LABEL, "true".to_owned()),
        (
            RUNNER_LABEL,
            sanitize_label(&plan.settings.runner_short_token),
        ),
        (JOB_LABEL, job.payload.id.0.to_string()),
    ];
    for (key, value) in fixed {
        labels.insert(key.to_owned(), value);
    }
    labels
}

/// gitlab-runner `buildPodAnnotations`, then `pod_annotations` and the job's overwrites.
fn annotations(plan: &PodPlan<'_>) -> BTreeMap<String, String> {
    let job = plan.job;
    let payload = &job.payload;
    let timeout = runnel_exec::job_timeout_text(payload);
    let mut annotations = BTreeMap::from([
        (
            "job.runner.gitlab.com/id".to_owned(),
            payload.id.0.to_string(),
        ),
        (
            "job.runner.gitlab.com/url".to_owned(),
            job.variables
                .get("CI_JOB_URL")
                .unwrap_or_default()
                .to_owned(),
        ),
        (
            "job.runner.gitlab.com/sha".to_owned(),
            payload.git_info.sha.clone(),
        ),
        (
            "job.runner.gitlab.com/before_sha".to_owned(),
            payload.git_info.before_sha.clone(),
        ),
        (
            "job.runner.gitlab.com/ref".to_owned(),
            payload.git_info.ref_name.clone(),
        ),
        (
            "job.runner.gitlab.com/name".to_owned(),
            payload.job_info.name.clone(),
        ),
        ("job.runner.gitlab.com/timeout".to_owned(), timeout),
        (
            "project.runner.gitlab.com/id".to_owned(),
            payload.job_info.project_id.to_string(),
        ),
    ]);
    for (key, value) in &plan.overwrites.pod_annotations {
        annotations.insert(key.clone(), job.variables.expand(value));
    }
    annotations
}

/// gitlab-runner's `ProjectUniqueName`: `runner-<short token>-project-<id>-concurrent-<n>`.
pub(crate) fn project_unique_name(job: &PreparedJob) -> String {
    format!(
        "runner-{}-project-{}-concurrent-{}",
        job.variables
            .get("CI_RUNNER_SHORT_TOKEN")
            .unwrap_or("local"),
        job.payload.job_info.project_id,
        job.variables.get("CI_CONCURRENT_ID").unwrap_or("0"),
    )
}

fn volume_mounts(plan: &PodPlan<'_>) -> Vec<VolumeMount> {
    let job = plan.job;
    let expand = |text: &str| job.variables.expand(text);
    let optional = |text: &str| (!text.is_empty()).then(|| expand(text));
    let propagation = |mode: &Option<String>| mode.clone().filter(|m| !m.is_empty());
    let volumes = &plan.settings.volumes;
    let mut mounts = Vec::new();
    if !plan.legacy_exec {
        mounts.push(mount("scripts", scripts_dir(job)));
    }
    for v in &volumes.host_path {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.secret {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.pvc {
        mounts.push(VolumeMount {
            name: expand(&v.name),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.config_map {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.empty_dir {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    // The builds directory the scripts use; runnel prepares the job on the runner's host and
    // copies it in (see the crate's documentation).
    mounts.push(mount("repo", crate::executor::REMOTE_BUILDS_DIR.to_owned()));
    mounts
}

fn mount(name: &str, path: String) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path,
        ..VolumeMount::default()
    }
}

fn empty_dir() -> Option<EmptyDirVolumeSource> {
    Some(EmptyDirVolumeSource::default())
}

fn items(items: &BTreeMap<String, String>) -> Option<Vec<KeyToPath>> {
    (!items.is_empty()).then(|| {
        items
            .iter()
            .map(|(key, path)| KeyToPath {
                key: key.clone(),
                path: path.clone(),
                mode: None,
            })
            .collect()
    })
}

fn volumes(plan: &PodPlan<'_>) -> Vec<Volume> {
    let job = plan.job;
    let config = &plan.settings.volumes;
    let mut volumes = Vec::new();
    for v in &config.host_path {
        // gitlab-runner `getVolumesForHostPaths`: the mount path when no host path is given.
        let path = if v.host_path.is_empty() {
            &v.mount_path
        } else {
            &v.host_path
        };
        volumes.push(Volume {
            name: v.name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: job.variables.expand(path),
                type_: None,
            }),
            ..Volume::default()
        });
    }
    for v in &config.secret {
        volumes.push(Volume {
            name: v.name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(v.name.clone()),
                items: items(&v.items),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for v in &config.pvc {
        let name = job.variables.expand(&v.name);
        volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name,
                read_only: v.read_only.then_some(true),
            }),
            ..Volume::default()
        });
    }
    for v in &config.config_map {
        volumes.push(Volume {
            name: v.name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: v.name.clone(),
                items: items(&v.items),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for v in &config.empty_dir {
        volumes.push(Volume {
            name: v.name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: (!v.medium.is_empty()).then(|| v.medium.clone()),
                size_limit: (!v.size_limit.is_empty()).then(|| Quantity(v.size_limit.clone())),
            }),
            ..Volume::default()
        });
    }
    volumes.push(Volume {
        name: "repo".to_owned(),
        empty_dir: empty_dir(),
        ..Volume::default()
    });
    if !plan.legacy_exec {
        volumes.push(Volume {
            name: "scripts".to_owned(),
            empty_dir: empty_dir(),
            ..Volume::default()
        });
    }
    volumes
}

fn resources((limits, requests): &(Quantities, Quantities)) -> Option<ResourceRequirements> {
    let list = |q: &Quantities| {
        let mut map = BTreeMap::new();
        for (name, value) in [
            ("cpu", &q.cpu),
            ("memory", &q.memory),
            ("ephemeral-storage", &q.ephemeral_storage),
        ] {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                map.insert(name.to_owned(), Quantity(value.clone()));
            }
        }
        (!map.is_empty()).then_some(map)
    };
    let (limits, requests) = (list(limits), list(requests));
    (limits.is_some() || requests.is_some()).then(|| ResourceRequirements {
        limits,
        requests,
        ..ResourceRequirements::default()
    })
}

/// gitlab-runner `getPullPolicies`: the first configured policy, in Kubernetes' spelling.
fn pull_policy(settings: &KubeSettings) -> Option<String> {
    settings.pull_policy.first().map(|policy| {
        match policy.as_str() {
            "always" => "Always",
            "never" => "Never",
            _ => "IfNotPresent",
        }
        .to_owned()
    })
}

fn build_container(plan: &PodPlan<'_>, mounts: &[VolumeMount]) -> Container {
    let job = plan.job;
    let image = job.payload.image.as_ref();
    // gitlab-runner `getCommandAndArgs`: the image's `entrypoint` replaces the shell only when
    // given; runnel keeps the shell so stages can run (the Docker executor does the same).
    let env = job
        .variables
        .iter()
        .filter(|v| (v.public || v.internal) && !v.file && !host_path(job, &v.value))
        .map(|v| EnvVar {
            name: v.key.clone(),
            value: Some(v.value.clone()),
            value_from: None,
        })
        .collect::<Vec<_>>();
    let _ = image;
    Container {
        name: BUILD_CONTAINER.to_owned(),
        image: Some(plan.image.clone()),
        image_pull_policy: pull_policy(plan.settings),
        command: Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            DETECT_SHELL_SCRIPT.to_owned(),
        ]),
        env: dedup_env(env),
        resources: resources(&plan.overwrites.build),
        volume_mounts: Some(mounts.to_vec()),
        security_context: Some(container_security_context(
            plan.settings,
            &plan.settings.build_container_security_context,
        )),
        stdin: Some(true),
        ..Container::default()
    }
}

fn helper_container(plan: &PodPlan<'_>, mounts: &[VolumeMount]) -> Container {
    Container {
        name: HELPER_CONTAINER.to_owned(),
        image: Some(plan.settings.helper_image().to_owned()),
        image_pull_policy: pull_policy(plan.settings),
        command: Some(vec![
            "runnel".to_owned(),
            "helper".to_owned(),
            "sleep".to_owned(),
        ]),
        resources: resources(&plan.overwrites.helper),
        volume_mounts: Some(mounts.to_vec()),
        security_context: Some(container_security_context(
            plan.settings,
            &plan.settings.helper_container_security_context,
        )),
        stdin: Some(true),
        ..Container::default()
    }
}

fn service_container(
    plan: &PodPlan<'_>,
    index: usize,
    service: &Image,
    mounts: &[VolumeMount],
) -> Container {
    let job = plan.job;
    // gitlab-runner `GetServiceVariables`: the job's public variables, then the service's own.
    let env: Vec<EnvVar> = job
        .variables
        .iter()
        .filter(|v| (v.public || v.internal) && !v.file && !host_path(job, &v.value))
        .map(|v| (v.key.clone(), v.value.clone()))
        .chain(
            service
                .variables
                .iter()
                .map(|v| (v.key.clone(), job.variables.expand(&v.value))),
        )
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    let non_empty = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
    Container {
        name: format!("svc-{index}"),
        image: Some(service.name.clone()),
        image_pull_policy: pull_policy(plan.settings),
        command: non_empty(&service.entrypoint),
        args: non_empty(&service.command),
        env: dedup_env(env),
        resources: resources(&plan.overwrites.service),
        volume_mounts: Some(mounts.to_vec()),
        security_context: Some(container_security_context(
            plan.settings,
            &plan.settings.service_container_security_context,
        )),
        stdin: Some(true),
        ..Container::default()
    }
}

/// Whether `value` names a directory of the runner's host (`CI_PROJECT_DIR` before the job
/// is moved to the pod's builds directory): the scripts export the pod's paths themselves.
fn host_path(job: &PreparedJob, value: &str) -> bool {
    let builds = job.builds_dir.to_string_lossy();
    !builds.is_empty() && value.starts_with(builds.as_ref())
}

/// The last value of each name wins (Kubernetes rejects nothing, but later duplicates are
/// confusing in `kubectl describe`).
fn dedup_env(env: Vec<EnvVar>) -> Option<Vec<EnvVar>> {
    let mut out: Vec<EnvVar> = Vec::with_capacity(env.len());
    for var in env {
        out.retain(|v| v.name != var.name);
        out.push(var);
    }
    (!out.is_empty()).then_some(out)
}

/// gitlab-runner `GetContainerSecurityContext` with `NET_RAW` dropped by default.
pub(crate) fn container_security_context(
    settings: &KubeSettings,
    context: &settings::ContainerSecurityContext,
) -> SecurityContext {
    // gitlab-runner `getCapabilities`: the default drop, then `cap_add`, then `cap_drop`.
    let mut enabled: BTreeMap<&str, bool> = BTreeMap::from([("NET_RAW", false)]);
    for cap in &settings.cap_add {
        enabled.insert(cap, true);
    }
    for cap in &settings.cap_drop {
        enabled.insert(cap, false);
    }
    let pick = |on: bool| -> Option<Vec<String>> {
        let caps: Vec<String> = enabled
            .iter()
            .filter(|(_, e)| **e == on)
            .map(|(c, _)| (*c).to_owned())
            .collect();
        (!caps.is_empty()).then_some(caps)
    };
    let mut add = pick(true);
    let mut drop = pick(false);
    if let Some(caps) = &context.capabilities {
        if caps.add.is_some() {
            add.clone_from(&caps.add);
        }
        if caps.drop.is_some() {
            drop.clone_from(&caps.drop);
        }
    }
    let capabilities = (add.is_some() || drop.is_some()).then_some(Capabilities { add, drop });
    SecurityContext {
        capabilities,
        privileged: context.privileged.or(settings.privileged),
        allow_privilege_escalation: context
            .allow_privilege_escalation
            .or(settings.allow_privilege_escalation),
        run_as_group: context.run_as_group,
        run_as_non_root: context.run_as_non_root,
        run_as_user: context.run_as_user,
        read_only_root_filesystem: context.read_only_root_filesystem,
        proc_mount: match context.proc_mount.to_ascii_lowercase().as_str() {
            "unmasked" => Some("Unmasked".to_owned()),
            "default" => Some("Default".to_owned()),
            _ => None,
        },
        se_linux_options: (!context.selinux_type.is_empty()).then(|| SELinuxOptions {
            type_: Some(context.selinux_type.clone()),
            ..SELinuxOptions::default()
        }),
        ..SecurityContext::default()
    }
}

/// gitlab-runner `GetPodSecurityContext`: `None` when nothing is set.
fn pod_security_context(config: &settings::PodSecurityContext) -> Option<PodSecurityContext> {
    if config == &settings::PodSecurityContext::default() {
        return None;
    }
    Some(PodSecurityContext {
        fs_group: config.fs_group,
        run_as_group: config.run_as_group,
        run_as_non_root: config.run_as_non_root,
        run_as_user: config.run_as_user,
        supplemental_groups: (!config.supplemental_groups.is_empty())
            .then(|| config.supplemental_groups.clone()),
        se_linux_options: (!config.selinux_type.is_empty()).then(|| SELinuxOptions {
            type_: Some(config.selinux_type.clone()),
            ..SELinuxOptions::default()
        }),
        ..PodSecurityContext::default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runnel_api::{Image, JobPayload};
    use runnel_exec::PreparedJob;
    use runnel_exec::test_support::{PayloadBuilder, TestProject, prepared_job};

    use super::{PodPlan, pod};
    use crate::overwrites::{OverwriteError, overwrites};
    use crate::settings::{
        Capabilities, ContainerSecurityContext, EmptyDirVolume, HostPathVolume, KeyedVolume,
        KubeSettings, PodSecurityContext, PvcVolume, Quantities,
    };

    fn job(payload: JobPayload) -> PreparedJob {
        let project = TestProject::new();
        prepared_job(payload, &project.context("k8s"), "kubernetes")
    }

    fn payload() -> PayloadBuilder {
        PayloadBuilder::new(77, "test")
            .var("CI_BUILDS_DIR", "/builds")
            .var("CI_PROJECT_DIR", "/builds/acme/app")
            .var("CI_RUNNER_SHORT_TOKEN", "abc123")
            .var("CI_PROJECT_NAMESPACE", "acme")
            .masked_var("SECRET", "hunter2hunter2")
    }

    fn settings() -> KubeSettings {
        let q = |cpu: &str, memory: &str| Quantities {
            cpu: Some(cpu.to_owned()),
            memory: Some(memory.to_owned()),
            ephemeral_storage: None,
        };
        let mut settings = KubeSettings::new();
        settings.runner_name = "k8s runner".to_owned();
        settings.runner_short_token = "abc123".to_owned();
        settings.namespace = Some("ci".to_owned());
        settings.build.limits = q("2", "2Gi");
        settings.build.requests = q("500m", "512Mi");
        settings.build.limits_max = q("4", "4Gi");
        settings.helper.requests = q("100m", "64Mi");
        settings.service.limits = q("1", "1Gi");
        settings.service_account = Some("ci-builder".to_owned());
        settings.node_selector = BTreeMap::from([("kubernetes.io/arch".into(), "amd64".into())]);
        settings.node_tolerations = BTreeMap::from([
            ("ci=true".into(), "NoSchedule".into()),
            ("spot".into(), String::new()),
        ]);
        settings.pod_labels = BTreeMap::from([
            ("team".into(), "$CI_PROJECT_NAMESPACE".into()),
            ("job.runner.gitlab.com/pod".into(), "hijack".into()),
        ]);
        settings.pod_annotations = BTreeMap::from([("owner".into(), "ops".into())]);
        settings.image_pull_secrets = vec!["registry-cred".to_owned()];
        settings.pull_policy = vec!["if-not-present".to_owned()];
        settings.privileged = Some(false);
        settings.allow_privilege_escalation = Some(false);
        settings.cap_add = vec!["SYS_PTRACE".to_owned()];
        settings.pod_security_context = PodSecurityContext {
            fs_group: Some(1000),
            run_as_user: Some(1000),
            ..PodSecurityContext::default()
        };
        settings.build_container_security_context = ContainerSecurityContext {
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".to_owned()]),
            }),
            read_only_root_filesystem: Some(false),
            ..ContainerSecurityContext::default()
        };
        settings.dns_policy = Some("cluster-first-with-host-net".to_owned());
        settings.termination_grace_period_seconds = Some(5);
        settings.volumes.host_path.push(HostPathVolume {
            name: "docker".into(),
            mount_path: "/var/run/docker.sock".into(),
            read_only: true,
            ..HostPathVolume::default()
        });
        settings.volumes.pvc.push(PvcVolume {
            name: "cache-$CI_PROJECT_NAMESPACE".into(),
            mount_path: "/cache".into(),
            ..PvcVolume::default()
        });
        settings.volumes.config_map.push(KeyedVolume {
            name: "settings".into(),
            mount_path: "/etc/app".into(),
            items: BTreeMap::from([("app.toml".into(), "app.toml".into())]),
            ..KeyedVolume::default()
        });
        settings.volumes.secret.push(KeyedVolume {
            name: "tls".into(),
            mount_path: "/etc/tls".into(),
            read_only: true,
            ..KeyedVolume::default()
        });
        settings.volumes.empty_dir.push(EmptyDirVolume {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            medium: "Memory".into(),
            size_limit: "1Gi".into(),
            ..EmptyDirVolume::default()
        });
        settings
    }

    fn plan_json(settings: &KubeSettings, job: &PreparedJob, legacy: bool) -> serde_json::Value {
        let mut notes = Vec::new();
        let overwrites = overwrites(settings, &job.variables, &mut notes).expect("overwrites");
        let services = vec![Image {
            name: "postgres:15".to_owned(),
            alias: "db".to_owned(),
            ..Image::default()
        }];
        let plan = PodPlan {
            settings,
            overwrites: &overwrites,
            job,
            name: "runner-abc123-project-1-concurrent-0-0123abcd".to_owned(),
            namespace: "ci".to_owned(),
            image: "python:3.11".to_owned(),
            services,
            credentials_secret: None,
            legacy_exec: legacy,
        };
        let mut value = serde_json::to_value(pod(&plan)).expect("json");
        // The job's variables are checked below; the snapshot shows the layout.
        for container in value["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
        {
            if let Some(env) = container.get_mut("env") {
                *env = serde_json::json!("<job variables>");
            }
        }
        value
    }

    #[test]
    fn pod_spec_matches_gitlab_runner_layout() {
        let job = job(payload().build());
        insta::assert_json_snapshot!(plan_json(&settings(), &job, false));
    }

    #[test]
    fn build_environment_has_public_variables_but_no_masked_ones() {
        let job = job(payload().var("GREETING", "hi").build());
        let mut notes = Vec::new();
        let settings = settings();
        let overwrites = overwrites(&settings, &job.variables, &mut notes).expect("overwrites");
        let plan = PodPlan {
            settings: &settings,
            overwrites: &overwrites,
            job: &job,
            name: "p".to_owned(),
            namespace: "ci".to_owned(),
            image: "busybox".to_owned(),
            services: Vec::new(),
            credentials_secret: None,
            legacy_exec: false,
        };
        let text = serde_json::to_string(&pod(&plan)).expect("json");
        assert!(text.contains("\"GREETING\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn legacy_exec_strategy_has_no_scripts_volume() {
        let job = job(payload().build());
        let value = plan_json(&settings(), &job, true);
        let text = value.to_string();
        assert!(!text.contains("\"scripts\""), "{text}");
        assert!(text.contains("\"repo\""), "{text}");
    }

    #[test]
    fn allowed_overwrites_change_the_pod() {
        let mut settings = settings();
        settings.namespace_overwrite_allowed = Some("^ci-.*".to_owned());
        settings.pod_labels_overwrite_allowed = Some(".*".to_owned());
        settings.node_selector_overwrite_allowed = Some(".*".to_owned());
        let job = job(payload()
            .var("KUBERNETES_NAMESPACE_OVERWRITE", "ci-$CI_PROJECT_NAMESPACE")
            .var("KUBERNETES_CPU_LIMIT", "3")
            .var("KUBERNETES_MEMORY_REQUEST", "1Gi")
            .var("KUBERNETES_POD_LABELS_1", "tier=fast")
            .var("KUBERNETES_NODE_SELECTOR_ZONE", "zone=a")
            .build());
        let mut notes = Vec::new();
        let o = overwrites(&settings, &job.variables, &mut notes).expect("overwrites");
        assert_eq!(o.namespace.as_deref(), Some("ci-acme"));
        assert_eq!(o.build.0.cpu.as_deref(), Some("3"));
        // No maximum for the memory request: the overwrite is ignored, as in gitlab-runner.
        assert_eq!(o.build.1.memory.as_deref(), Some("512Mi"));
        assert_eq!(o.pod_labels.get("tier").map(String::as_str), Some("fast"));
        assert_eq!(o.node_selector.get("zone").map(String::as_str), Some("a"));
        insta::assert_snapshot!(notes.join("\n"));
    }

    #[test]
    fn forbidden_namespace_overwrite_is_refused() {
        let mut settings = settings();
        let job = job(payload()
            .var("KUBERNETES_NAMESPACE_OVERWRITE", "kube-system")
            .build());
        let err = overwrites(&settings, &job.variables, &mut Vec::new()).expect_err("refused");
        assert!(matches!(err, OverwriteError::NotAllowed { .. }));
        settings.namespace_overwrite_allowed = Some("^ci-.*".to_owned());
        let err = overwrites(&settings, &job.variables, &mut Vec::new()).expect_err("refused");
        insta::assert_snapshot!(err.to_string());
    }

    #[test]
    fn limits_above_the_maximum_are_refused() {
        let job = job(payload().var("KUBERNETES_MEMORY_LIMIT", "5Gi").build());
        let err = overwrites(&settings(), &job.variables, &mut Vec::new()).expect_err("too high");
        insta::assert_snapshot!(err.to_string());
    }
}
