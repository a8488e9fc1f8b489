//! The wire types of GitLab's runner API: the job payload that `POST /api/v4/jobs/request`
//! returns, the request bodies a runner sends, and the enums they share.
//!
//! This crate is serde only: no logic and no I/O. Field names are GitLab's JSON keys
//! (gitlab-runner `common/spec/spec.go`, `common/network.go`; GitLab
//! `lib/api/entities/ci/job_request/*.rb`). Reading is lenient (unknown keys are ignored, `null`
//! lists read as empty) and writing is exact.
#![warn(missing_docs)]

mod enums;
mod ids;
mod null;
mod payload;
mod requests;

pub use enums::{CachePolicy, FailureReason, JobState, JobStatus, RefType, When};
pub use ids::{JobId, JobToken, RunnerToken};
pub use null::null_as_default;
pub use payload::{
    ArtifactSpec, ArtifactsFile, CacheSpec, Credentials, Dependency, DockerExecutorOpts,
    ExecutorOpts, Features, GitInfo, Hook, Image, JobInfo, JobPayload, JobVariable,
    KubernetesExecutorOpts, Port, RunnerInfo, Step,
};
pub use requests::{
    FeaturesInfo, JobRequest, JobTraceOutput, RegisterRunnerRequest, RunnerConfigInfo,
    RunnerCredentialsResponse, SessionInfo, UnregisterRequest, UpdateJobRequest,
    VerifyRunnerRequest, VersionInfo,
};
