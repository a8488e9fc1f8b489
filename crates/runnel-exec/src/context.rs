//! What a job run needs beyond its payload: directories, sources, stores, cancellation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sources::{Sources, WorkingTree};
use crate::store::{ArtifactStore, CacheStore, LocalArtifactStore, LocalCacheStore};
use crate::trace::DEFAULT_OUTPUT_LIMIT;

/// A job's slots among the jobs its runner runs at once. GitLab: gitlab-runner
/// `commands/builds_helper.go` `addBuild` gives each job the lowest slot that no other running
/// job of the same runner has (`RunnerID`, `CI_CONCURRENT_ID`), and the lowest that no other
/// running job of the same runner and project has (`ProjectRunnerID`,
/// `CI_CONCURRENT_PROJECT_ID`), which names the shared builds directory
/// (`<builds>/<short token>/<project slot>/…`) and the containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Concurrency {
    /// `CI_CONCURRENT_ID`.
    pub id: usize,
    /// `CI_CONCURRENT_PROJECT_ID`.
    pub project_id: usize,
}

/// The runner side of one job run.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The builds directory root (`CI_BUILDS_DIR` unless the payload sets it). The project
    /// directory is the payload's `CI_PROJECT_DIR`, else `<builds dir>/<project full path>`.
    /// Give concurrently running jobs different project directories.
    pub builds_dir: PathBuf,
    /// The runner's cache directory (informational for the local store).
    pub cache_dir: PathBuf,
    /// Where the sources come from.
    pub sources: Sources,
    /// Where artifacts go to and come from.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Where caches are kept.
    pub cache: Arc<dyn CacheStore>,
    /// Graceful cancel (GitLab's `canceling`): stops the script, then `after_script` runs with
    /// `CI_JOB_STATUS=canceled`, then caches and artifacts `on_failure`. Must be a child token of
    /// `abort` (`abort.child_token()`), so an abort stops the script too.
    pub cancel: CancellationToken,
    /// Abort: stops everything at once; no `after_script`, caches or artifacts.
    pub abort: CancellationToken,
    /// Overrides the job deadline computed from `runner_info.timeout`.
    pub deadline: Option<tokio::time::Instant>,
    /// The trace size limit in bytes (gitlab-runner `output_limit`, default 4 MiB).
    pub output_limit: usize,
    /// Where to write the full trace when the job ends (`.runnel/logs/<job>.log`).
    pub trace_log: Option<PathBuf>,
    /// `CI_RUNNER_DESCRIPTION` and the "on <name>" header.
    pub runner_name: String,
    /// `CI_RUNNER_SHORT_TOKEN`.
    pub runner_short_token: String,
    /// `CI_CONCURRENT_ID` and `CI_CONCURRENT_PROJECT_ID`: the job's slots among its runner's
    /// running jobs.
    pub concurrency: Concurrency,
    /// Time between SIGTERM and SIGKILL when a script is stopped.
    pub kill_grace: Duration,
    /// Receives every trace byte as it is appended (the runner daemon's live trace).
    pub trace_sink: Option<crate::trace::TraceSink>,
    /// Told each build stage as it starts (the daemon's per-stage job metrics).
    pub stage_sink: Option<crate::trace::StageSink>,
    /// The job's web-terminal session (the runner's `[session_server]`), if any.
    pub terminal: Option<Arc<dyn crate::terminal::TerminalSession>>,
}

impl JobContext {
    /// The context of `runnel exec` in the repository at `project`: builds, caches and
    /// artifacts under `<project>/.runnel/`, sources copied from `tree`.
    pub fn local(project: &Path, tree: Arc<WorkingTree>) -> Self {
        let runnel = project.join(".runnel");
        let abort = CancellationToken::new();
        Self {
            builds_dir: runnel.join("builds"),
            cache_dir: runnel.join("cache"),
            sources: Sources::WorkingTree(tree),
            artifacts: Arc::new(LocalArtifactStore::new(runnel.join("artifacts"))),
            cache: Arc::new(LocalCacheStore::new(runnel.join("cache"))),
            cancel: abort.child_token(),
            abort,
            deadline: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            trace_log: None,
            runner_name: "runnel".to_owned(),
            runner_short_token: "local".to_owned(),
            concurrency: Concurrency::default(),
            kill_grace: Duration::from_secs(10),
            trace_sink: None,
            stage_sink: None,
            terminal: None,
        }
    }
}
