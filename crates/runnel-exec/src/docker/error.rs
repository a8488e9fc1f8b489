//! Failures of the Docker executor: the engine's errors with what runnel was doing, and job
//! failures (an image that cannot be pulled or is not allowed) with GitLab's failure reason.

use runnel_api::FailureReason;

use crate::error::ExecError;

/// Why the Docker executor could not do something.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    /// A call to the engine failed.
    #[error("failed to {action}")]
    Api {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A stage was run before `prepare` succeeded (a bug in the caller).
    #[error("failed to run a stage: the executor was not prepared")]
    NotPrepared,
    /// The job cannot run as it asks (a job failure, not a runnel one).
    #[error("{message}")]
    Job {
        reason: FailureReason,
        message: String,
    },
}

impl DockerError {
    /// Wraps an engine error with what was being done ("create the job container").
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| Self::Api { action, source }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Job {
            reason: FailureReason::RunnerConfigurationError,
            message: message.into(),
        }
    }
}

impl From<DockerError> for ExecError {
    fn from(err: DockerError) -> Self {
        match err {
            DockerError::Job { reason, message } => ExecError::JobFailed { reason, message },
            other => ExecError::Prepare {
                executor: "docker",
                source: Box::new(other),
            },
        }
    }
}

/// Whether the engine answered 404 (no such image, container or network).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
