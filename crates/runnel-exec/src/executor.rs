//! The `Executor` trait: where a job's scripts run. Build-stage scripts are generated once by
//! `runnel-exec`; an executor only decides where they run (this host, a container, a pod).

use std::path::PathBuf;
use std::sync::Arc;

use runnel_api::JobPayload;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ExecError;
use crate::process::ScriptEnd;
use crate::store::BoxFuture;
use crate::terminal::TerminalOpener;
use crate::trace::Trace;
use crate::variables::JobVariables;

/// A job ready to run: the payload and what the runner derived from it.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// The payload as received.
    pub payload: JobPayload,
    /// The builds directory on this host.
    pub builds_dir: PathBuf,
    /// The project directory on this host: where runnel puts the sources, caches and
    /// artifacts, and reads them back.
    pub project_dir: PathBuf,
    /// `<project dir>.tmp` on this host: file variables, `GITLAB_ENV`, archives.
    pub tmp_dir: PathBuf,
    /// The directories as the scripts see them: `CI_BUILDS_DIR`, `CI_PROJECT_DIR`,
    /// `RUNNER_TEMP_PROJECT_DIR`. The same paths as above, except for an executor that runs
    /// the scripts on another host with a copy of the project directory (see
    /// [`Executor::remote_builds_dir`]).
    pub script_dirs: JobDirs,
    /// The final, expanded variables.
    pub variables: JobVariables,
}

impl PreparedJob {
    /// Expands `value` (an `artifacts:paths` or `cache:paths` entry) and turns a path under the
    /// scripts' project directory (`$CI_PROJECT_DIR/dist`) into the same path under this
    /// host's, where runnel reads the files.
    pub(crate) fn expand_host_path(&self, value: &str) -> String {
        let expanded = self.variables.expand(value);
        if self.script_dirs.project_dir == self.project_dir {
            return expanded;
        }
        let script_dir = self.script_dirs.project_dir.to_string_lossy();
        match expanded.strip_prefix(script_dir.as_ref()) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", self.project_dir.to_string_lossy())
            }
            _ => expanded,
        }
    }
}

/// A job's three directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDirs {
    /// `CI_BUILDS_DIR`.
    pub builds_dir: PathBuf,
    /// `CI_PROJECT_DIR`: where the sources are and the scripts start.
    pub project_dir: PathBuf,
    /// `RUNNER_TEMP_PROJECT_DIR` (`<project dir>.tmp`).
    pub tmp_dir: PathBuf,
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
///   elsewhere makes that directory visible there at the same path (e.g. a bind mount), or
///   names its own builds directory with [`Executor::remote_builds_dir`] and keeps a copy of
///   the project and temporary directories there in step with this host's (the SSH executor).
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

    /// The builds directory as the scripts see it when they run on another host that keeps its
    /// own copy of the project directory (the SSH executor's remote `builds_dir`). Read once,
    /// after a successful `prepare`: the job's variables and scripts then name
    /// [`PreparedJob::script_dirs`] under it, while runnel keeps preparing and reading the
    /// directories on this host. `None` (the default): the scripts see this host's paths.
    fn remote_builds_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Offered once after a successful `prepare` when runnel gets the sources from the job's
    /// Git remote (under the daemon) and does the other helper stages on this host. `true`
    /// accepts: `get_sources` then runs through `run` as a git script that clones or fetches
    /// into the project directory of [`PreparedJob::script_dirs`] in the executor's own
    /// environment, as gitlab-runner's `get_sources` script does on an SSH executor's remote
    /// host, and that directory, kept there between jobs, is the one the sources are fetched
    /// into. Default: no; runnel fetches on this host.
    fn fetch_sources_remotely(&mut self) -> bool {
        false
    }

    /// How the executor's environment runs the helper stages (`get_sources`, `restore_cache`,
    /// `download_artifacts`, `archive_cache*`, `upload_artifacts_*`) itself, through the
    /// `runnel` binary, when it does not see this host's file system (the custom executor of the
    /// daemon). Read after `prepare`. `None` (the default): runnel does them on this host.
    fn remote_helper(&self) -> Option<crate::helper_stage::RemoteHelper> {
        None
    }

    /// The host name the job's scripts see when it is not this host's (a container's or a
    /// pod's), asked after a successful `prepare`: the trace then says `Running on <it> via
    /// <this host>...`, as gitlab-runner's `prepare_script` prints it in the job's environment.
    /// `None` (the default): the scripts run on this host.
    fn environment_host(&self, job: &PreparedJob) -> Option<String> {
        let _ = job;
        None
    }

    /// How to open an interactive shell in the job's environment (GitLab's web terminal), asked
    /// once after a successful `prepare`. `None` (the default): this executor has no terminal.
    fn terminal(&self, job: &PreparedJob) -> Option<Arc<dyn TerminalOpener>> {
        let _ = job;
        None
    }

    /// Releases whatever `prepare` and `run` created. Always called; idempotent.
    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()>;
}
