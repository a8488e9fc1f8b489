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

use k8s_openapi::api::core::v1::{HostAlias, LocalObjectReference, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use runnel_api::Image;
use runnel_exec::PreparedJob;

use crate::containers::{build_container, helper_container, service_container};
use crate::metadata::{annotations, labels};
use crate::names::{service_aliases, valid_dns_subdomain};
use crate::overwrites::Overwrites;
use crate::policy::RunAs;
use crate::security::pod_security_context;
use crate::settings::KubeSettings;
use crate::volumes::{volume_mounts, volumes};

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
    /// The helper image's pull policy for this try of the pod (Kubernetes' spelling).
    pub(crate) helper_pull_policy: Option<String>,
    /// What the job chose for the build container.
    pub(crate) build: Choices,
    /// What each service chose for its container, in the order of `services`.
    pub(crate) service_choices: Vec<Choices>,
}

/// A container's pull policy and user, as the job chose them within what the runner allows
/// (see [`crate::policy`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Choices {
    /// The pull policy in Kubernetes' spelling; `None` leaves it to the cluster.
    pub(crate) pull_policy: Option<String>,
    /// `image:kubernetes:user`.
    pub(crate) run_as: Option<RunAs>,
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
    let mut host_aliases = Vec::new();
    if !aliases.is_empty() {
        host_aliases.push(HostAlias {
            ip: "127.0.0.1".to_owned(),
            hostnames: Some(aliases),
        });
    }
    // gitlab-runner `createHostAliases`: the configured `host_aliases` after the services'.
    for alias in &settings.host_aliases {
        host_aliases.push(HostAlias {
            ip: alias.ip.clone(),
            hostnames: (!alias.hostnames.is_empty()).then(|| alias.hostnames.clone()),
        });
    }
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
            host_aliases: (!host_aliases.is_empty()).then_some(host_aliases),
            dns_policy: Some(dns_policy(settings.dns_policy.as_deref()).to_owned()),
            priority_class_name: settings.priority_class_name.clone(),
            scheduler_name: settings.scheduler_name.clone(),
            runtime_class_name: settings.runtime_class_name.clone(),
            automount_service_account_token: settings.automount_service_account_token,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runnel_api::{Image, JobPayload};
    use runnel_exec::PreparedJob;
    use runnel_exec::test_support::{PayloadBuilder, TestProject, prepared_job};

    use super::{Choices, PodPlan, pod};
    use crate::overwrites::{OverwriteError, overwrites};
    use crate::policy::RunAs;
    use crate::settings::{
        Capabilities, ContainerSecurityContext, EmptyDirVolume, HostAlias, HostPathVolume,
        KeyedVolume, KubeSettings, PodSecurityContext, PvcVolume, Quantities,
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
        settings.priority_class_name = Some("ci-low".to_owned());
        settings.scheduler_name = Some("ci-scheduler".to_owned());
        settings.automount_service_account_token = Some(false);
        settings.host_aliases = vec![HostAlias {
            ip: "10.0.0.7".to_owned(),
            hostnames: vec!["registry.internal".to_owned()],
        }];
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
            helper_pull_policy: crate::policy::helper_pull_policies(settings)
                .first()
                .cloned(),
            legacy_exec: legacy,
            build: Choices {
                pull_policy: Some("IfNotPresent".to_owned()),
                run_as: None,
            },
            service_choices: vec![Choices {
                pull_policy: Some("IfNotPresent".to_owned()),
                run_as: None,
            }],
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
            helper_pull_policy: crate::policy::helper_pull_policies(&settings)
                .first()
                .cloned(),
            legacy_exec: false,
            build: Choices::default(),
            service_choices: Vec::new(),
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

    #[test]
    fn the_job_user_runs_the_build_and_service_containers_unless_configured() {
        let mut settings = settings();
        settings.build_container_security_context.run_as_user = Some(1000);
        let job = job(payload().build());
        let overwrites = overwrites(&settings, &job.variables, &mut Vec::new()).expect("ok");
        let run_as = Some(RunAs {
            uid: 1234,
            gid: Some(2345),
        });
        let plan = PodPlan {
            settings: &settings,
            overwrites: &overwrites,
            job: &job,
            name: "p".to_owned(),
            namespace: "ci".to_owned(),
            image: "busybox".to_owned(),
            services: vec![Image {
                name: "postgres:15".to_owned(),
                ..Image::default()
            }],
            credentials_secret: None,
            helper_pull_policy: crate::policy::helper_pull_policies(&settings)
                .first()
                .cloned(),
            legacy_exec: false,
            build: Choices {
                pull_policy: None,
                run_as,
            },
            service_choices: vec![Choices {
                pull_policy: Some("Never".to_owned()),
                run_as,
            }],
        };
        let pod = serde_json::to_value(pod(&plan)).expect("json");
        let containers = &pod["spec"]["containers"];
        // The configured user of the build container wins; the group comes from the job.
        assert_eq!(containers[0]["securityContext"]["runAsUser"], 1000);
        assert_eq!(containers[0]["securityContext"]["runAsGroup"], 2345);
        assert!(
            containers[1]["securityContext"]["runAsUser"].is_null(),
            "the helper keeps its own"
        );
        assert_eq!(containers[2]["securityContext"]["runAsUser"], 1234);
        assert_eq!(containers[2]["imagePullPolicy"], "Never");
    }
}
