//! The pod's containers, as gitlab-runner builds them: `build` (the job's image running the
//! shell-detecting script, the job's variables, its resources and security context), `helper`
//! (runnel itself) and `svc-N` for each service (its entrypoint, command and variables).
//!
//! GitLab: gitlab-runner `executors/kubernetes/kubernetes.go` (`buildContainer`,
//! `createBuildAndHelperContainers`, `getCommandAndArgs`, `getContainerResources`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, ResourceRequirements, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use runnel_api::Image;
use runnel_exec::PreparedJob;

use crate::pod::{BUILD_CONTAINER, DETECT_SHELL_SCRIPT, HELPER_CONTAINER, PodPlan};
use crate::policy::RunAs;
use crate::security::container_security_context;
use crate::settings::Quantities;

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

pub(crate) fn build_container(plan: &PodPlan<'_>, mounts: &[VolumeMount]) -> Container {
    let job = plan.job;
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
    Container {
        name: BUILD_CONTAINER.to_owned(),
        image: Some(plan.image.clone()),
        image_pull_policy: plan.build.pull_policy.clone(),
        command: Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            DETECT_SHELL_SCRIPT.to_owned(),
        ]),
        env: dedup_env(env),
        resources: resources(&plan.overwrites.build),
        volume_mounts: Some(mounts.to_vec()),
        security_context: Some(with_run_as(
            container_security_context(
                plan.settings,
                &plan.settings.build_container_security_context,
            ),
            plan.build.run_as,
        )),
        stdin: Some(true),
        ..Container::default()
    }
}

pub(crate) fn helper_container(plan: &PodPlan<'_>, mounts: &[VolumeMount]) -> Container {
    Container {
        name: HELPER_CONTAINER.to_owned(),
        image: Some(plan.settings.helper_image().to_owned()),
        image_pull_policy: plan.helper_pull_policy.clone(),
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

pub(crate) fn service_container(
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
    let choices = plan.service_choices.get(index).cloned().unwrap_or_default();
    Container {
        name: format!("svc-{index}"),
        image: Some(service.name.clone()),
        image_pull_policy: choices.pull_policy,
        command: non_empty(&service.entrypoint),
        args: non_empty(&service.command),
        env: dedup_env(env),
        resources: resources(&plan.overwrites.service),
        volume_mounts: Some(mounts.to_vec()),
        security_context: Some(with_run_as(
            container_security_context(
                plan.settings,
                &plan.settings.service_container_security_context,
            ),
            choices.run_as,
        )),
        stdin: Some(true),
        ..Container::default()
    }
}

/// The job's user where the configured security context names none (the administrator wins,
/// gitlab-runner !5724).
fn with_run_as(mut context: SecurityContext, run_as: Option<RunAs>) -> SecurityContext {
    if let Some(run_as) = run_as {
        context.run_as_user = context.run_as_user.or(Some(run_as.uid));
        context.run_as_group = context.run_as_group.or(run_as.gid);
    }
    context
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
