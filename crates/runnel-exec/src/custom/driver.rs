//! Calling one driver program (`config_exec`, `prepare_exec`, `run_exec`, `cleanup_exec`): its
//! environment, its process group, graceful then forced termination, and what its exit code
//! means.
//!
//! GitLab: gitlab-runner `executors/custom/command/command.go` — the environment is the
//! runner's own plus `TMPDIR` (the job's temporary directory), `BUILD_FAILURE_EXIT_CODE=1`,
//! `SYSTEM_FAILURE_EXIT_CODE=2`, then `job_env`, then every job variable as `CUSTOM_ENV_<key>`
//! (and `CUSTOM_ENV_CI_JOB_SERVICES`), then `JOB_RESPONSE_FILE`; exit code 0 is success,
//! `BUILD_FAILURE_EXIT_CODE` a build failure, `SYSTEM_FAILURE_EXIT_CODE` a system failure, any
//! other code an "unknown Custom executor executable exit code" (a system failure too). On a
//! timeout or cancel the program's process group gets SIGTERM, then SIGKILL after
//! `graceful_kill_timeout`, and is given up `force_kill_timeout` later.

use std::path::Path;

use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{CustomConfig, Program};
use crate::error::ExecError;
use crate::process::{KillPolicy, ScriptEnd, run_program};
use crate::trace::Trace;

/// `BUILD_FAILURE_EXIT_CODE`.
pub const BUILD_FAILURE_EXIT_CODE: i32 = 1;
/// `SYSTEM_FAILURE_EXIT_CODE`.
pub const SYSTEM_FAILURE_EXIT_CODE: i32 = 2;

/// The variable that marks every process of a job's driver calls with the job's temporary
/// directory, so the start-up sweep finds what a killed runner left running.
pub(crate) const MARKER: &str = "RUNNEL_CUSTOM_EXECUTOR_DIR";

/// How a driver call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriverEnd {
    /// Exit code 0.
    Success,
    /// `BUILD_FAILURE_EXIT_CODE`.
    BuildFailure,
    /// `SYSTEM_FAILURE_EXIT_CODE`.
    SystemFailure,
    /// Any other exit code (128 + n for a signal).
    Unknown(i32),
    /// Its timeout or the job's deadline passed; it was terminated.
    TimedOut,
    /// The job was canceled; it was terminated.
    Canceled,
}

impl DriverEnd {
    fn from(end: ScriptEnd) -> Self {
        match end {
            ScriptEnd::Exited(0) => Self::Success,
            ScriptEnd::Exited(BUILD_FAILURE_EXIT_CODE) => Self::BuildFailure,
            ScriptEnd::Exited(SYSTEM_FAILURE_EXIT_CODE) => Self::SystemFailure,
            ScriptEnd::Exited(code) => Self::Unknown(code),
            ScriptEnd::TimedOut => Self::TimedOut,
            ScriptEnd::Canceled => Self::Canceled,
        }
    }

    /// gitlab-runner's words for a failed call (`exec.ExitError` and `UnknownFailureError`).
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Success => "exit status 0".to_owned(),
            Self::BuildFailure => format!("exit status {BUILD_FAILURE_EXIT_CODE}"),
            Self::SystemFailure => format!("exit status {SYSTEM_FAILURE_EXIT_CODE}"),
            Self::Unknown(code) => format!(
                "unknown Custom executor executable exit code {code}; executable execution \
                 terminated with: exit status {code}"
            ),
            Self::TimedOut => "the executable timed out and was terminated".to_owned(),
            Self::Canceled => "the job was canceled and the executable terminated".to_owned(),
        }
    }
}

/// One call of a driver program.
pub(crate) struct Call<'a> {
    /// The program and its configured arguments.
    pub(crate) program: &'a Program,
    /// Arguments after the configured ones (`run_exec`'s script and stage).
    pub(crate) extra_args: &'a [String],
    /// The variables runnel adds to its own environment, in order (a later one wins).
    pub(crate) env: &'a [(String, String)],
    /// The working directory and `TMPDIR`: the job's temporary directory.
    pub(crate) dir: &'a Path,
    /// Where stdout goes instead of the trace (`config_exec`'s JSON, `cleanup_exec`'s log).
    pub(crate) stdout: Option<std::fs::File>,
    /// Cancels the call.
    pub(crate) cancel: &'a CancellationToken,
    /// When the call is terminated.
    pub(crate) deadline: Instant,
}

/// Runs `call` to its end; stderr (and stdout unless redirected) goes to `trace`. When this
/// returns, the program's process group is gone or was given up after `force_kill_timeout`.
pub(crate) async fn call(
    config: &CustomConfig,
    call: Call<'_>,
    trace: &mut Trace,
) -> Result<DriverEnd, ExecError> {
    let mut cmd = Command::new(&call.program.exec);
    cmd.args(&call.program.args)
        .args(call.extra_args)
        .current_dir(call.dir)
        .env("TMPDIR", call.dir)
        .env(
            "BUILD_FAILURE_EXIT_CODE",
            BUILD_FAILURE_EXIT_CODE.to_string(),
        )
        .env(
            "SYSTEM_FAILURE_EXIT_CODE",
            SYSTEM_FAILURE_EXIT_CODE.to_string(),
        )
        .env(MARKER, call.dir);
    for (key, value) in call.env {
        if !key.is_empty() && !key.contains('=') && !key.contains('\0') && !value.contains('\0') {
            cmd.env(key, value);
        }
    }
    let policy = KillPolicy {
        grace: config.graceful_kill_timeout,
        abandon: config.force_kill_timeout,
    };
    let end = run_program(
        cmd,
        None,
        call.stdout,
        trace,
        call.cancel,
        call.deadline,
        policy,
    )
    .await
    .map_err(|err| match err {
        ExecError::Spawn(source) => ExecError::Prepare {
            executor: "custom",
            source: Box::new(SpawnError {
                exec: call.program.exec.clone(),
                source,
            }),
        },
        other => other,
    })?;
    Ok(DriverEnd::from(end))
}

/// A driver program that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("failed to start `{exec}`")]
pub(crate) struct SpawnError {
    exec: String,
    #[source]
    source: std::io::Error,
}
