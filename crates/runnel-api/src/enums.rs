//! String enums of the wire protocol. Each keeps GitLab's spelling, and the open ones keep a
//! value they do not know in `Other`, so a newer GitLab does not make a payload unreadable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines an enum whose wire form is a string. Extra spellings after `|` are accepted when
/// reading and never written. With `other`, unknown strings are kept in `Other(String)`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)* ),+ $(,)? }
        $(other: $(#[$ometa:meta])* $other:ident)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            $( $(#[$ometa])* $other(String), )?
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    $( Self::$other(value) => value, )?
                }
            }

            /// Parses the wire spelling; `None` for an unknown value of a closed enum.
            #[allow(unreachable_code, reason = "open enums return from the `other` arm")]
            pub fn from_wire(value: &str) -> Option<Self> {
                match value {
                    $( $wire $(| $alias)* => Some(Self::$variant), )+
                    _ => {
                        $( return Some(Self::$other(value.to_owned())); )?
                        None
                    }
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::from_wire(&value).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&value, &[$($wire),+])
                })
            }
        }
    };
}

wire_enum!(
    /// When a step, artifact or cache applies. gitlab-runner treats an empty string as
    /// `on_success` (`common/spec/spec.go` `StepWhen.OnSuccess`).
    When {
        /// Only when everything before succeeded (the default).
        OnSuccess = "on_success" | "",
        /// Only when something before failed.
        OnFailure = "on_failure",
        /// In both cases.
        Always = "always",
    }
);

#[expect(
    clippy::derivable_impls,
    reason = "the enum is defined by `wire_enum!`"
)]
impl Default for When {
    fn default() -> Self {
        Self::OnSuccess
    }
}

impl When {
    /// Whether this applies when the job so far has succeeded (`true`) or failed (`false`),
    /// as gitlab-runner's `ShouldCache` / `OnSuccess` / `OnFailure`.
    pub fn applies(&self, job_succeeded: bool) -> bool {
        match self {
            Self::OnSuccess => job_succeeded,
            Self::OnFailure => !job_succeeded,
            Self::Always => true,
        }
    }
}

wire_enum!(
    /// A cache's `policy`. gitlab-runner reads an empty policy as `pull-push` and fails the cache
    /// step on any other value ("unknown cache policy"), so unknown values are kept, not rejected.
    CachePolicy {
        /// Download before the job and upload after it (the default).
        PullPush = "pull-push" | "",
        /// Download only.
        Pull = "pull",
        /// Upload only.
        Push = "push",
    }
    other:
        /// A value gitlab-runner would reject at cache time.
        Other
);

#[expect(
    clippy::derivable_impls,
    reason = "the enum is defined by `wire_enum!`"
)]
impl Default for CachePolicy {
    fn default() -> Self {
        Self::PullPush
    }
}

impl CachePolicy {
    /// Whether the cache is downloaded before the job.
    pub fn pulls(&self) -> bool {
        matches!(self, Self::PullPush | Self::Pull)
    }

    /// Whether the cache is uploaded after the job.
    pub fn pushes(&self) -> bool {
        matches!(self, Self::PullPush | Self::Push)
    }
}

wire_enum!(
    /// `git_info.ref_type`.
    RefType {
        /// A branch.
        Branch = "branch",
        /// A tag.
        Tag = "tag",
    }
    other:
        /// Anything else a newer GitLab may send.
        Other
);

#[expect(
    clippy::derivable_impls,
    reason = "the enum is defined by `wire_enum!`"
)]
impl Default for RefType {
    fn default() -> Self {
        Self::Branch
    }
}

wire_enum!(
    /// The `state` a runner reports in `PUT /api/v4/jobs/:id` (gitlab-runner `common/network.go`
    /// `JobState`).
    JobState {
        /// Keep-alive while a two-phase commit waits for the runner.
        Pending = "pending",
        /// The job runs.
        Running = "running",
        /// The job succeeded.
        Success = "success",
        /// The job failed (including canceled jobs: the server turns them into `canceled`).
        Failed = "failed",
    }
);

wire_enum!(
    /// A job status as the server reports it, e.g. in the `Job-Status` header
    /// (GitLab `app/models/concerns/ci/has_status.rb`).
    JobStatus {
        /// Created, not yet pending.
        Created = "created",
        /// Waiting for a runner.
        Pending = "pending",
        /// Running.
        Running = "running",
        /// Succeeded.
        Success = "success",
        /// Failed.
        Failed = "failed",
        /// Cancel requested; `after_script` still runs.
        Canceling = "canceling",
        /// Canceled.
        Canceled = "canceled",
        /// Skipped.
        Skipped = "skipped",
        /// Waiting for a manual action.
        Manual = "manual",
        /// Scheduled (`when: delayed`).
        Scheduled = "scheduled",
        /// Waiting for resource (`resource_group`).
        WaitingForResource = "waiting_for_resource",
        /// Preparing.
        Preparing = "preparing",
    }
    other:
        /// A status this version does not know.
        Other
);

wire_enum!(
    /// A job's `failure_reason`, with GitLab's strings (gitlab-runner `common/network.go`,
    /// GitLab `app/models/concerns/enums/ci/commit_status.rb`).
    FailureReason {
        /// The user's script failed.
        ScriptFailure = "script_failure",
        /// The runner broke.
        RunnerSystemFailure = "runner_system_failure",
        /// The job passed its timeout.
        JobExecutionTimeout = "job_execution_timeout",
        /// The job was stuck or timed out (server side).
        StuckOrTimeoutFailure = "stuck_or_timeout_failure",
        /// Anything else, and every reason the server does not list.
        UnknownFailure = "unknown_failure",
        /// The image could not be pulled.
        ImagePullFailure = "image_pull_failure",
        /// The runner's configuration is wrong for this job.
        RunnerConfigurationError = "runner_configuration_error",
        /// An external dependency (registry, …) failed.
        RunnerExternalDependencyFailure = "runner_external_dependency_failure",
        /// The runner was shut down while the job ran.
        RunnerInterrupted = "runner_interrupted",
        /// The runner's internal reason for a canceled job (maps to `unknown_failure`).
        JobCanceled = "job_canceled",
        /// An API call failed (server side).
        ApiFailure = "api_failure",
        /// A dependency's artifacts are missing (server side).
        MissingDependencyFailure = "missing_dependency_failure",
        /// The runner does not support a feature the job needs (server side).
        RunnerUnsupported = "runner_unsupported",
        /// A delayed job's schedule went stale (server side).
        StaleSchedule = "stale_schedule",
        /// The project is archived (server side).
        ArchivedFailure = "archived_failure",
        /// Prerequisites such as environments were not met (server side).
        UnmetPrerequisites = "unmet_prerequisites",
        /// The scheduler failed (server side).
        SchedulerFailure = "scheduler_failure",
        /// Data integrity problem (server side).
        DataIntegrityFailure = "data_integrity_failure",
        /// The trace exceeded the instance limit (server side).
        TraceSizeExceeded = "trace_size_exceeded",
        /// The job token expired (server side).
        JobTokenExpired = "job_token_expired",
    }
    other:
        /// A reason this version does not know.
        Other
);

impl FailureReason {
    /// Maps a reason onto what the server supports, as gitlab-runner's
    /// `common/failure_reason_mapper.go`: supported (the payload's `features.failure_reasons`
    /// plus the three always-supported ones) → as is; else a compatible fallback; else
    /// `unknown_failure`.
    pub fn for_server(&self, supported: &[FailureReason]) -> FailureReason {
        let always = [
            Self::ScriptFailure,
            Self::RunnerSystemFailure,
            Self::JobExecutionTimeout,
        ];
        let ok = |reason: &FailureReason| always.contains(reason) || supported.contains(reason);
        if ok(self) {
            return self.clone();
        }
        let fallback = match self {
            Self::ImagePullFailure | Self::RunnerExternalDependencyFailure => {
                Some(Self::RunnerSystemFailure)
            }
            Self::RunnerConfigurationError => Some(Self::ScriptFailure),
            _ => None,
        };
        match fallback {
            Some(reason) if ok(&reason) => reason,
            _ => Self::UnknownFailure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CachePolicy, FailureReason, When};

    #[test]
    fn empty_when_reads_as_on_success_and_writes_canonically() {
        let when: When = serde_json::from_str("\"\"").expect("valid json");
        assert_eq!(when, When::OnSuccess);
        assert_eq!(
            serde_json::to_string(&when).expect("serializable"),
            "\"on_success\""
        );
    }

    #[test]
    fn unknown_failure_reason_is_kept() {
        let reason: FailureReason = serde_json::from_str("\"new_reason\"").expect("valid json");
        assert_eq!(reason, FailureReason::Other("new_reason".into()));
        assert_eq!(
            serde_json::to_string(&reason).expect("serializable"),
            "\"new_reason\""
        );
    }

    #[test]
    fn unknown_when_is_rejected() {
        assert!(serde_json::from_str::<When>("\"sometimes\"").is_err());
    }

    #[test]
    fn failure_reason_maps_to_what_the_server_supports() {
        assert_eq!(
            FailureReason::JobCanceled.for_server(&[]),
            FailureReason::UnknownFailure
        );
        assert_eq!(
            FailureReason::ImagePullFailure.for_server(&[]),
            FailureReason::RunnerSystemFailure
        );
        assert_eq!(
            FailureReason::ImagePullFailure.for_server(&[FailureReason::ImagePullFailure]),
            FailureReason::ImagePullFailure
        );
    }

    #[test]
    fn cache_policy_pull_and_push() {
        assert!(CachePolicy::Pull.pulls() && !CachePolicy::Pull.pushes());
        assert!(CachePolicy::Push.pushes() && !CachePolicy::Push.pulls());
        assert!(CachePolicy::PullPush.pulls() && CachePolicy::PullPush.pushes());
    }
}
