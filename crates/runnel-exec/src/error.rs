//! Operational failures of `runnel-exec`. A failed *job* is a [`crate::JobOutcome`]; these
//! errors mean runnel itself broke, and the job reports `runner_system_failure`.

use std::io;
use std::path::PathBuf;

use crate::archive::ArchiveError;

/// Why runnel could not run a job.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The shell could not be started.
    #[error("failed to start the shell")]
    Spawn(#[source] io::Error),
    /// Waiting for the shell failed.
    #[error("failed to wait for the shell")]
    Wait(#[source] io::Error),
    /// A file system operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done ("create the builds directory").
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A `git` command failed while getting the sources.
    #[error("failed to run `git {command}` in `{}` (exit code {code})", dir.display())]
    Git {
        /// The git subcommand and arguments, credentials removed.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit code.
        code: i32,
    },
    /// An archive could not be made or read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The executor could not prepare the environment.
    #[error("failed to prepare the `{executor}` executor")]
    Prepare {
        /// The executor name.
        executor: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The executor lost its environment while a stage ran (an SSH connection that dropped).
    #[error("the `{executor}` executor failed")]
    Executor {
        /// The executor name.
        executor: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The job cannot run in the environment it asks for (an image that cannot be pulled or is
    /// not allowed): the job fails with `reason`; runnel itself did not break.
    #[error("{message}")]
    JobFailed {
        /// GitLab's failure reason (`image_pull_failure`, `runner_configuration_error`, …).
        reason: runnel_api::FailureReason,
        /// What the trace says after "Job failed: ".
        message: String,
    },
    /// A `*_ATTEMPTS` variable is outside 1–10 (gitlab-runner `attemptExecuteStage`'s words).
    #[error("number of attempts out of the range [1, 10] for stage: {stage}")]
    Attempts {
        /// The build stage (`get_sources`, `restore_cache`, `download_artifacts`).
        stage: &'static str,
    },
    /// A blocking task panicked or was cancelled.
    #[error("failed to finish a background task")]
    Join(#[source] tokio::task::JoinError),
}

impl ExecError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
