//! The `Executor` trait: where a job's scripts run. Build-stage scripts are generated once by
//! `runnel-exec`; an executor only decides where they run (this host, a container, a pod).

use std::path::PathBuf;

use runnel_api::JobPayload;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ExecError;
use crate::process::ScriptEnd;
use crate::store::BoxFuture;
use crate::trace::Trace;
use crate::variables::JobVariables;

/// A job ready to run: the payload and what the runner derived from it.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// The payload as received.
    pub payload: JobPayload,
    /// `CI_BUILDS_DIR`.
    pub builds_dir: PathBuf,
    /// `CI_PROJECT_DIR`: where the sources are and the scripts start.
    pub project_dir: PathBuf,
    /// `RUNNER_TEMP_PROJECT_DIR` (`<project dir>.tmp`): file variables, `GITLAB_ENV`, archives.
    pub tmp_dir: PathBuf,
    /// The final, expanded variables.
    pub variables: JobVariables,
}

/// What an executor's configuration step (the custom executor's `config_exec`) changes about a
/// job before its directories and variables are derived again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOverrides {
    /// The builds directory root.
    pub builds_dir: Option<PathBuf>,
    /// The local cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Whether concurrent jobs share the builds directory.
    pub builds_dir_is_shared: Option<bool>,
    /// The host name the job reports running on.
    pub hostname: Option<String>,
}

/// One script-running build stage handed to an executor.
#[derive(Debug, Clone)]
pub struct StageRun {
    /// The build stage (`step_script`, `after_script`, …).
    pub name: String,
    /// The complete bash script; an executor feeds it to the shell on stdin or as a file.
    pub script: String,
    /// Cancels this stage: the executor kills what it started and returns [`ScriptEnd::Canceled`].
    pub cancel: CancellationToken,
    /// When the stage must end: the executor kills what it started and returns
    /// [`ScriptEnd::TimedOut`].
    pub deadline: Instant,
}

/// Runs the scripts of one job.
///
/// Contract:
/// - `prepare` is called once, first; then `run` once per build stage that has a script, one at
///   a time, in order; then `cleanup`.
/// - `cleanup` is always called, also after a failed `prepare`, a cancel or a timeout, and must be
///   idempotent. It does not run under the job's cancellation token.
/// - When `run` returns, nothing it started is still running, whatever the outcome (no orphans:
///   the whole process tree or container is gone).
/// - `run` writes all script output to the trace, stdout and stderr in order.
/// - `Err` means the executor broke (a `runner_system_failure`), never that the script failed.
/// - The project directory (`PreparedJob::project_dir`) is prepared by runnel on this host
///   before `run` (sources, caches, artifacts) and read after it; an executor that runs scripts
///   elsewhere makes that directory visible there at the same path (e.g. a bind mount).
///
/// One executor value serves one job; jobs run concurrently on different values.
pub trait Executor: Send {
    /// The executor's name in the trace and in `info.executor`: `shell`, `docker`, …
    fn name(&self) -> &'static str;

    /// Whether runnel's own stages without user commands (`prepare_script`,
    /// `cleanup_file_variables`) are handed to `run` too, as scripts (the custom executor's
    /// driver runs every stage). Default: no.
    fn runs_every_stage(&self) -> bool {
        false
    }

    /// Runs before `prepare`, with the job as the runner's configuration derives it; what it
    /// returns overrides the builds directory (and the rest of [`JobOverrides`]) before the job
    /// is derived again. Default: nothing changes.
    fn configure<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<JobOverrides, ExecError>> {
        let _ = (job, trace);
        Box::pin(std::future::ready(Ok(JobOverrides::default())))
    }

    /// Prepares the environment of the job (shell detection, images, services, …).
    fn prepare<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>>;

    /// Runs one build-stage script until it exits, is cancelled, or passes its deadline.
    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>>;

    /// Releases whatever `prepare` and `run` created. Always called; idempotent.
    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()>;
}
