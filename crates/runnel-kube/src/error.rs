//! Operational failures of the Kubernetes executor. A job that cannot run as it asks (an image
//! that cannot be pulled, a forbidden overwrite) is [`KubeError::Job`]; everything else means
//! the job fails as `runner_system_failure`, with the cause chain in its trace.

use runnel_api::FailureReason;
use runnel_exec::ExecError;

use crate::connect::ConnectError;

/// Why the Kubernetes executor could not run a job.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The job fails with `reason` (gitlab-runner's `BuildError`).
    #[error("{message}")]
    Job {
        /// GitLab's failure reason.
        reason: FailureReason,
        /// What the trace says after "Job failed: ".
        message: String,
    },
    /// An image of the pod could not be pulled with its current pull policy (the job fails
    /// with `image_pull_failure` unless another policy is left; see
    /// [`crate::policy::PullManager`]).
    #[error(
        "prepare environment: waiting for pod running: pulling image of container {container:?}: {reason}: {message}"
    )]
    ImagePull {
        /// The container.
        container: String,
        /// Its image.
        image: String,
        /// The waiting reason (`ErrImagePull`, `ImagePullBackOff`, …).
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// No client could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An API request failed.
    #[error("failed to {action} (Kubernetes API at {host})")]
    Api {
        /// What was asked ("create pod `x` in namespace `ci`").
        action: String,
        /// The API server.
        host: String,
        /// The cause (kube's error; a `Status` from the server names the reason).
        #[source]
        source: kube::Error,
    },
    /// The pod went away or failed while the job ran.
    #[error("{0}")]
    Pod(String),
    /// A stream to a container broke.
    #[error("failed to {action} in container `{container}` of pod `{pod}`")]
    Stream {
        /// What was being done.
        action: &'static str,
        /// The container.
        container: String,
        /// The pod.
        pod: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The executor was used before `prepare` succeeded.
    #[error("the Kubernetes executor has no pod (prepare did not succeed)")]
    NotPrepared,
}

impl From<KubeError> for ExecError {
    fn from(err: KubeError) -> Self {
        match err {
            KubeError::Job { reason, message } => ExecError::JobFailed { reason, message },
            pull @ KubeError::ImagePull { .. } => ExecError::JobFailed {
                reason: FailureReason::ImagePullFailure,
                message: pull.to_string(),
            },
            other => ExecError::Prepare {
                executor: "kubernetes",
                source: Box::new(other),
            },
        }
    }
}

/// Whether the API answered 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}
