//! Request and response bodies a runner exchanges with the coordinator (gitlab-runner
//! `common/network.go`, `network/gitlab.go`; GitLab `lib/api/ci/runner.rb`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::enums::{FailureReason, JobState};
use crate::ids::{JobToken, RunnerToken};

fn is_empty(value: &str) -> bool {
    value.is_empty()
}

/// `info` of job requests, verify and job updates: who the runner is and what it supports.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionInfo {
    /// `gitlab-runner` (runnel reports its own name here).
    #[serde(skip_serializing_if = "is_empty")]
    pub name: String,
    /// The version.
    #[serde(skip_serializing_if = "is_empty")]
    pub version: String,
    /// The revision.
    #[serde(skip_serializing_if = "is_empty")]
    pub revision: String,
    /// Go's OS name: `linux`, `darwin`, `windows`.
    #[serde(skip_serializing_if = "is_empty")]
    pub platform: String,
    /// Go's architecture name: `amd64`, `arm64`.
    #[serde(skip_serializing_if = "is_empty")]
    pub architecture: String,
    /// The executor: `shell`, `docker`, …
    #[serde(skip_serializing_if = "is_empty")]
    pub executor: String,
    /// The shell: `bash`, `sh`, `pwsh`.
    #[serde(skip_serializing_if = "is_empty")]
    pub shell: String,
    /// Supported features; every flag is always sent.
    pub features: FeaturesInfo,
    /// Executor configuration the server shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<RunnerConfigInfo>,
    /// Custom labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `info.config`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunnerConfigInfo {
    /// Docker `gpus` setting.
    pub gpus: String,
}

/// `info.features`: the features a runner advertises. Advertise only what is implemented:
/// `cancel_gracefully` changes the server's cancel semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the wire format is a map of booleans"
)]
pub struct FeaturesInfo {
    /// Job variables.
    pub variables: bool,
    /// `image:`.
    pub image: bool,
    /// `services:`.
    pub services: bool,
    /// Artifacts.
    pub artifacts: bool,
    /// Cache.
    pub cache: bool,
    /// Cache `fallback_keys`.
    pub fallback_cache_keys: bool,
    /// A shared builds directory.
    pub shared: bool,
    /// Several artifact archives per job (needed for reports).
    pub upload_multiple_artifacts: bool,
    /// `raw` artifact format.
    pub upload_raw_artifacts: bool,
    /// Session server.
    pub session: bool,
    /// Web terminal.
    pub terminal: bool,
    /// `git_info.refspecs`.
    pub refspecs: bool,
    /// Masked variables.
    pub masking: bool,
    /// Service proxy.
    pub proxy: bool,
    /// `raw` variables.
    pub raw_variables: bool,
    /// `artifacts:exclude`.
    pub artifacts_exclude: bool,
    /// Steps other than `script`.
    pub multi_build_steps: bool,
    /// Trace reset on 416.
    pub trace_reset: bool,
    /// Trace checksum in the final update.
    pub trace_checksum: bool,
    /// Trace size in the final update.
    pub trace_size: bool,
    /// `secrets:` from Vault.
    pub vault_secrets: bool,
    /// The job can be canceled.
    pub cancelable: bool,
    /// `exit_code` in the final update.
    pub return_exit_code: bool,
    /// Service variables.
    pub service_variables: bool,
    /// Several aliases per service.
    pub service_multiple_aliases: bool,
    /// `image:docker:` options.
    pub image_executor_opts: bool,
    /// Service executor options.
    pub service_executor_opts: bool,
    /// `canceling` runs `after_script`.
    pub cancel_gracefully: bool,
    /// Step-runner steps.
    pub native_steps_integration: bool,
    /// The job waits for the runner's `running` acknowledgement.
    pub two_phase_job_commit: bool,
    /// Job inputs.
    pub job_inputs: bool,
}

/// `session` of a job request: where GitLab reaches the runner's session server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionInfo {
    /// `https://host:8093/session/<id>`.
    pub url: String,
    /// The session server's PEM certificate.
    pub certificate: String,
    /// The token GitLab must present.
    pub authorization: String,
}

/// The body of `POST /api/v4/jobs/request`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobRequest {
    /// The runner authentication token.
    pub token: RunnerToken,
    /// The runner manager's system id (`s_…`/`r_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    /// The last `X-GitLab-Last-Update` header value seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    /// Who the runner is and what it supports.
    #[serde(default)]
    pub info: VersionInfo,
    /// The session server, when one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
}

/// `output` of a job update: checksum and size of the trace that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobTraceOutput {
    /// `crc32:` + 8 lowercase hex digits of the IEEE CRC-32 over every trace byte.
    #[serde(skip_serializing_if = "is_empty")]
    pub checksum: String,
    /// The number of trace bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub bytesize: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The body of `PUT /api/v4/jobs/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateJobRequest {
    /// The job token.
    pub token: JobToken,
    /// The state to report.
    pub state: JobState,
    /// Why the job failed, with `state: failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    /// The script's exit code; gitlab-runner omits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Deprecated duplicate of `output.checksum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Checksum and size of the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobTraceOutput>,
    /// Who the runner is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<VersionInfo>,
}

/// The body of `POST /api/v4/runners` (legacy registration with a registration token).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegisterRunnerRequest {
    /// The registration token.
    pub token: RunnerToken,
    /// The runner description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A note for maintainers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub maintenance_note: String,
    /// Comma-separated tags.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag_list: String,
    /// Pick jobs without tags.
    #[serde(default)]
    pub run_untagged: bool,
    /// Lock the runner to its project.
    #[serde(default)]
    pub locked: bool,
    /// `not_protected` or `ref_protected`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_level: String,
    /// Maximum job timeout in seconds (0 = none).
    #[serde(default)]
    pub maximum_timeout: u64,
    /// Register paused.
    #[serde(default)]
    pub paused: bool,
    /// Who the runner is.
    #[serde(default)]
    pub info: VersionInfo,
}

/// The body of `POST /api/v4/runners/verify`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VerifyRunnerRequest {
    /// The runner authentication token.
    pub token: RunnerToken,
    /// The runner manager's system id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    /// Who the runner is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<VersionInfo>,
}

/// The body of `DELETE /api/v4/runners` and `DELETE /api/v4/runners/managers`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UnregisterRequest {
    /// The runner authentication token.
    pub token: RunnerToken,
    /// The manager to remove (only for `/runners/managers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
}

/// The answer of register, verify and reset-token: the runner's id and token.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunnerCredentialsResponse {
    /// The runner id (absent in reset-token answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The authentication token.
    pub token: RunnerToken,
    /// When the token expires (RFC 3339), `None` when it does not.
    #[serde(default)]
    pub token_expires_at: Option<String>,
}
