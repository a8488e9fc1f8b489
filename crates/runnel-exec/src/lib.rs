//! Executes one job payload: the build stages (`get_sources`, `restore_cache`,
//! `download_artifacts`, `step_script`, `after_script`, `archive_cache`, `upload_artifacts_*`),
//! bash script generation, the executors (shell, docker, ssh, virtualbox, parallels), the trace (sections, masking, size
//! limit), and artifact and cache archives.
//!
//! This crate knows nothing of where a payload came from: `runnel exec` plans it from YAML, the
//! daemon receives it over HTTP; both call [`run_job`] (or [`run_job_with`] for another
//! executor) and consume the [`JobEvent`]s.
#![warn(missing_docs)]

mod archive;
mod artifact_stage;
mod build;
mod cache_stage;
mod context;
mod coverage;
pub mod custom;
pub mod dir_tar;
#[cfg(feature = "docker")]
pub mod docker;
mod error;
mod event;
mod executor;
mod expand;
mod extract;
mod git_fetch;
mod git_script;
mod git_tls;
mod helper_stage;
mod mask;
mod outcome;
mod process;
pub mod registry_auth;
mod remote_cache;
mod reports;
mod retry;
mod run_as;
mod script;
mod settings;
mod shell;
mod sources;
#[cfg(feature = "ssh")]
pub mod ssh;
mod steps;
mod store;
mod tarzstd;
mod terminal;
mod timestamp;
mod trace;
mod variables;
#[cfg(feature = "ssh")]
pub mod vm;
mod zip_write;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use archive::ArchiveError;
pub use build::{run_job, run_job_with};
pub use context::{Concurrency, JobContext};
pub use coverage::extract_coverage;
pub use error::ExecError;
pub use event::JobEvent;
pub use executor::{Executor, JobDirs, JobOverrides, PreparedJob, StageRun};
pub use expand::expand_value;
pub use helper_stage::{HelperSpec, HelperStage, RemoteHelper, run_helper_stage};
pub use outcome::{JobOutcome, JobStatus};
pub use process::ScriptEnd;
pub use remote_cache::{
    CacheMethod, CacheUrlSigner, Downloaded, PresignedRequest, RemoteCacheStore, SignedKey,
    TransferError, clean_url, download as download_cache, http_client as cache_http_client,
    upload as upload_cache,
};
pub use reports::{
    DOTENV_MAX_BYTES, DOTENV_MAX_VARIABLES, DotenvError, JunitSummary, XmlReportError,
    cobertura_line_rate, parse_dotenv, summarize_junit,
};
pub use run_as::{RunAs, RunAsError};
pub use settings::{ArchiveFormat, BuildSettings, CompressionLevel};
pub use shell::{ShellConfig, ShellExecutor};
pub use sources::{Sources, WorkingTree};
pub use steps::parse_go_duration;
pub use terminal::{TerminalIo, TerminalOpener, TerminalSession};

/// The job's timeout as Go prints a duration (`1h0m0s`), as gitlab-runner writes it into the
/// `job.runner.gitlab.com/timeout` pod annotation.
pub fn job_timeout_text(payload: &runnel_api::JobPayload) -> String {
    steps::go_duration(variables::job_timeout(payload))
}
pub use store::{
    ArtifactStore, BoxFuture, CacheStore, LocalArtifactStore, LocalCacheStore, StoreError,
    sanitize_cache_key,
};
pub use trace::{DEFAULT_OUTPUT_LIMIT, StageSink, Trace, TraceSink, TraceSinkFn};
pub use variables::{JobVariables, RUNNER_VERSION};
