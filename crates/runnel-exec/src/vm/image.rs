//! Which base VM a job gets, and the names of the VMs runnel makes (GitLab: gitlab-runner
//! `executors/vm/vm.go` `GetBaseName`, `common/build.go` `ProjectUniqueName`).

use regex::Regex;
use runnel_api::FailureReason;

use crate::error::ExecError;
use crate::executor::PreparedJob;
use crate::trace::Trace;

/// The base VM of `job`: its `image:` when it matches one of `allowed_images` (regular
/// expressions), else `default`. Without `allowed_images` the job's image is ignored with a
/// warning; an image that matches none fails the job.
pub(crate) fn base_name(
    job: &PreparedJob,
    default: &str,
    allowed_images: &[String],
    trace: &mut Trace,
) -> Result<String, ExecError> {
    let allowed = allowed_images
        .iter()
        .map(|pattern| {
            Regex::new(pattern).map_err(|_| ExecError::JobFailed {
                reason: FailureReason::RunnerConfigurationError,
                message: format!("invalid regexp pattern in allowed_images parameter: {pattern}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let image = job
        .payload
        .image
        .as_ref()
        .map(|image| job.variables.expand(&image.name))
        .unwrap_or_default();
    if image.is_empty() || image == default {
        return Ok(default.to_owned());
    }
    if allowed.is_empty() {
        trace.warning(&format!(
            "No allowed_images configuration found for \"{image}\", using image \"{default}\""
        ));
        return Ok(default.to_owned());
    }
    if allowed.iter().any(|re| re.is_match(&image)) {
        return Ok(image);
    }
    trace.println("");
    trace.error(&format!(
        "The {image:?} image is not present on list of allowed images"
    ));
    for pattern in allowed_images {
        trace.println(&format!("- {pattern}"));
    }
    trace.println("");
    trace.println("Please check runner's configuration");
    Err(ExecError::JobFailed {
        reason: FailureReason::RunnerConfigurationError,
        message: "invalid image".to_owned(),
    })
}

/// Who the VMs belong to: the runner's short token and the job's concurrency slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmOwner {
    /// The runner's short token (gitlab-runner's `ShortDescription`).
    pub short_token: String,
    /// The job's slot among the runner's running jobs (`CI_CONCURRENT_ID`).
    pub concurrent_id: usize,
}

impl VmOwner {
    /// The VM kept between jobs when snapshots are on: `<base>-runner-<short>-concurrent-<n>`.
    pub(crate) fn persistent_vm(&self, base: &str) -> String {
        format!(
            "{base}-runner-{}-concurrent-{}",
            self.short_token, self.concurrent_id
        )
    }

    /// The per-job clone when snapshots are off: `<base>-runner-<short>-project-<id>-concurrent-<n>`.
    pub(crate) fn job_vm(&self, base: &str, project_id: u64) -> String {
        format!(
            "{base}-runner-{}-project-{project_id}-concurrent-{}",
            self.short_token, self.concurrent_id
        )
    }

    /// Whether `vm` is one of this runner's VMs, and whether it is a per-job clone.
    pub(crate) fn owns(&self, vm: &str) -> Option<VmKind> {
        let marker = format!("-runner-{}-", self.short_token);
        let (_, rest) = vm.split_once(&marker)?;
        if rest.starts_with("project-") && rest.contains("-concurrent-") {
            Some(VmKind::JobClone)
        } else if let Some(n) = rest.strip_prefix("concurrent-") {
            n.parse::<usize>().ok().map(|_| VmKind::Persistent)
        } else {
            None
        }
    }
}

/// What kind of VM runnel made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VmKind {
    /// Kept between jobs and restored from its `Started` snapshot.
    Persistent,
    /// Made for one job and deleted after it.
    JobClone,
}

#[cfg(test)]
mod tests {
    use super::{VmKind, VmOwner};

    #[test]
    fn vm_names_follow_gitlab_runner_and_are_recognised() {
        let owner = VmOwner {
            short_token: "abc123def".into(),
            concurrent_id: 2,
        };
        let persistent = owner.persistent_vm("ubuntu");
        assert_eq!(persistent, "ubuntu-runner-abc123def-concurrent-2");
        let clone = owner.job_vm("ubuntu", 7);
        assert_eq!(clone, "ubuntu-runner-abc123def-project-7-concurrent-2");
        assert_eq!(owner.owns(&persistent), Some(VmKind::Persistent));
        assert_eq!(owner.owns(&clone), Some(VmKind::JobClone));
        assert_eq!(owner.owns("ubuntu"), None);
        assert_eq!(owner.owns("ubuntu-runner-other-concurrent-2"), None);
    }
}
