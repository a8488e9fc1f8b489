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
    /// The job's slot among the runner's running jobs (`CI_CONCURRENT_ID`, gitlab-runner's
    /// `RunnerID`): names the kept VM.
    pub concurrent_id: usize,
    /// The job's slot among the runner's running jobs of its project
    /// (`CI_CONCURRENT_PROJECT_ID`, `ProjectRunnerID`): names the per-job VM.
    pub project_concurrent_id: usize,
}

impl VmOwner {
    /// The VM kept between jobs when snapshots are on: `<base>-runner-<short>-concurrent-<n>`.
    pub(crate) fn persistent_vm(&self, base: &str) -> String {
        format!(
            "{base}-runner-{}-concurrent-{}",
            self.short_token, self.concurrent_id
        )
    }

    /// The per-job VM when snapshots are off: `<base>-<ProjectUniqueName>`, the unique part
    /// `runner-<short>-project-<id>-concurrent-<n>` made RFC 1123 compatible as gitlab-runner's
    /// `dns.MakeRFC1123Compatible` does (lower case, only `[-a-z0-9]`, 63 characters at most).
    /// GitLab: `executors/virtualbox/virtualbox.go` `getVMName` passes `base_name` here and
    /// `executors/parallels/parallels.go` `getVMName` the job's base VM (its allowed `image:`).
    /// `<n>` is the job's project slot (`ProjectRunnerID`).
    pub(crate) fn job_vm(&self, base: &str, project_id: u64) -> String {
        let unique = format!(
            "runner-{}-project-{project_id}-concurrent-{}",
            self.short_token, self.project_concurrent_id
        );
        format!("{base}-{}", rfc1123(&unique))
    }

    /// Whether `vm` is one of this runner's VMs, and whether it is a per-job clone.
    pub(crate) fn owns(&self, vm: &str) -> Option<VmKind> {
        let clone_marker = format!("-{}-", rfc1123(&format!("runner-{}", self.short_token)));
        if let Some((_, rest)) = vm.split_once(&clone_marker)
            && rest.starts_with("project-")
            && rest.contains("-concurrent-")
        {
            return Some(VmKind::JobClone);
        }
        let marker = format!("-runner-{}-", self.short_token);
        let (_, rest) = vm.split_once(&marker)?;
        let n = rest.strip_prefix("concurrent-")?;
        n.parse::<usize>().ok().map(|_| VmKind::Persistent)
    }
}

/// gitlab-runner's `dns.MakeRFC1123Compatible`: lower case, characters outside `[-a-z0-9]`
/// dropped, no leading `-`, at most 63 characters.
fn rfc1123(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    kept.trim_start_matches('-').chars().take(63).collect()
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
            project_concurrent_id: 2,
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

    #[test]
    fn job_vm_unique_part_is_rfc1123_compatible_as_gitlab_runners_project_unique_name() {
        let owner = VmOwner {
            short_token: "AbC_dEf12".into(),
            concurrent_id: 3,
            project_concurrent_id: 0,
        };
        // The base keeps its case; the unique part is lower case without the `_`.
        let clone = owner.job_vm("Ubuntu", 7);
        assert_eq!(clone, "Ubuntu-runner-abcdef12-project-7-concurrent-0");
        assert_eq!(owner.owns(&clone), Some(VmKind::JobClone));
        let persistent = owner.persistent_vm("Ubuntu");
        assert_eq!(persistent, "Ubuntu-runner-AbC_dEf12-concurrent-3");
        assert_eq!(owner.owns(&persistent), Some(VmKind::Persistent));
    }
}
