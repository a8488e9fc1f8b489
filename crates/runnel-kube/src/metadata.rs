//! The job pod's name, labels and annotations, as gitlab-runner sets them.
//!
//! GitLab: gitlab-runner `executors/kubernetes/kubernetes.go` (`buildLabels`,
//! `buildPodAnnotations`), `common/build.go` (`ProjectUniqueName`), `util.go` (`sanitizeLabel`).

use std::collections::BTreeMap;

use runnel_exec::PreparedJob;

use crate::names::{JOB_LABEL, MANAGED_LABEL, RUNNER_LABEL, sanitize_label};
use crate::pod::PodPlan;

/// gitlab-runner `buildLabels`: its own labels cannot be overwritten by `pod_labels`.
pub(crate) fn labels(plan: &PodPlan<'_>) -> BTreeMap<String, String> {
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
pub(crate) fn annotations(plan: &PodPlan<'_>) -> BTreeMap<String, String> {
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
        job.variables.get("CI_CONCURRENT_PROJECT_ID").unwrap_or("0"),
    )
}
