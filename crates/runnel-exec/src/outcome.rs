//! How a job ended. A failed job is a result, not an error.

use std::path::PathBuf;
use std::time::Duration;

use runnel_api::FailureReason;

use crate::reports::JunitSummary;

/// The final status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Every step succeeded.
    Success,
    /// A step failed, timed out, or runnel broke.
    Failed,
    /// The job was canceled.
    Canceled,
}

impl JobStatus {
    /// GitLab's spelling: `success`, `failed`, `canceled` (also `CI_JOB_STATUS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
}

/// What running a job produced.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// Success, failed or canceled.
    pub status: JobStatus,
    /// Why it failed, with GitLab's reason strings.
    pub failure_reason: Option<FailureReason>,
    /// The exit code of the failed script, as gitlab-runner reports it.
    pub exit_code: Option<i32>,
    /// Wall time of the whole job.
    pub duration: Duration,
    /// Variables from `artifacts:reports:dotenv`, for later jobs.
    pub dotenv: Vec<(String, String)>,
    /// The stored `archive` artifacts, when the job uploaded some.
    pub artifacts: Option<PathBuf>,
    /// The `artifacts:reports:junit` summary.
    pub junit: Option<JunitSummary>,
    /// Line coverage in percent from `artifacts:reports:coverage_report` (Cobertura `line-rate`).
    pub coverage_report: Option<f64>,
    /// The size of the trace in bytes (after masking and the output limit).
    pub trace_bytes: u64,
}

impl JobOutcome {
    pub(crate) fn new(status: JobStatus) -> Self {
        Self {
            status,
            failure_reason: None,
            exit_code: None,
            duration: Duration::ZERO,
            dotenv: Vec::new(),
            artifacts: None,
            junit: None,
            coverage_report: None,
            trace_bytes: 0,
        }
    }
}
