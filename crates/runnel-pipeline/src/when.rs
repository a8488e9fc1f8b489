//! When a job runs, and whether its failure is allowed: the small enums shared by the model,
//! `rules:` and the scheduler.

use std::time::Duration;

/// The `when:` keyword. GitLab: lib/gitlab/ci/config/entry/job.rb (`ALLOWED_WHEN`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Run when every job of earlier stages (or every need) succeeded. The default.
    OnSuccess,
    /// Run only when a job of an earlier stage (or a need) failed.
    OnFailure,
    /// Run whatever happened before.
    Always,
    /// Wait for a person to start it.
    Manual,
    /// Run after `start_in`.
    Delayed {
        /// The `start_in:` text as written, such as `30 minutes`.
        start_in: String,
        /// `start_in` parsed.
        #[serde(skip)]
        duration: Duration,
    },
    /// Never run (only meaningful in `rules:`).
    Never,
}

impl When {
    /// The keyword as written in YAML.
    pub fn as_str(&self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed { .. } => "delayed",
            When::Never => "never",
        }
    }
}

/// `allow_failure:`: `true`/`false`, or `exit_codes:` that are allowed to fail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum AllowFailure {
    /// `allow_failure: true` or `false`.
    Bool(bool),
    /// `allow_failure: { exit_codes: [..] }`: only these exit codes are allowed.
    ExitCodes {
        /// The allowed exit codes.
        exit_codes: Vec<i32>,
    },
}

impl AllowFailure {
    /// Whether a failure with this exit code (None: not a script exit) is allowed.
    pub fn allows(&self, exit_code: Option<i32>) -> bool {
        match self {
            AllowFailure::Bool(b) => *b,
            AllowFailure::ExitCodes { exit_codes } => {
                exit_code.is_some_and(|code| exit_codes.contains(&code))
            }
        }
    }
}
