//! The seam between the daemon and whatever executes a payload. The daemon owns the
//! coordinator side (acknowledge, trace, final status); an executor only sees the payload, a
//! trace sink, cancellation and a deadline. The `runnel` binary plugs `runnel-exec` in here.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use runnel_api::{FailureReason, JobPayload};
use tokio_util::sync::CancellationToken;

use crate::client::Coordinator;
use crate::config::RunnerConfig;
use crate::trace_patch::TraceBuffer;

/// Why a job is being stopped. Ordered: a later reason wins over an earlier one when both
/// happen (`Timeout < Canceled < Shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopReason {
    /// The job passed `runner_info.timeout`.
    Timeout,
    /// The coordinator canceled the job.
    Canceled,
    /// The runner is shutting down (SIGTERM/SIGINT).
    Shutdown,
}

/// Cancellation of one job. `script` is cancelled for a graceful cancel (`Job-Status:
/// canceling`: the user script stops, `after_script` still runs); `abort` stops everything.
/// Aborting also cancels `script`.
#[derive(Debug, Clone, Default)]
pub struct JobCancel {
    /// Graceful: stop the user script.
    pub script: CancellationToken,
    /// Stop everything now.
    pub abort: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl JobCancel {
    /// A fresh, not cancelled pair of tokens.
    pub fn new() -> Self {
        let abort = CancellationToken::new();
        Self {
            script: abort.child_token(),
            abort,
            reason: Arc::default(),
        }
    }

    fn record(&self, reason: StopReason) {
        if let Ok(mut current) = self.reason.lock() {
            *current = Some(current.map_or(reason, |c| c.max(reason)));
        }
    }

    /// Stops the user script; `after_script` still runs.
    pub fn cancel_gracefully(&self) {
        self.record(StopReason::Canceled);
        self.script.cancel();
    }

    /// Stops the whole job.
    pub fn abort(&self, reason: StopReason) {
        self.record(reason);
        self.abort.cancel();
    }

    /// The strongest reason recorded so far.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

/// Everything an executor gets besides the payload.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The `[[runners]]` entry as it was when the job was requested.
    pub runner: RunnerConfig,
    /// Where the (masked, limited) trace goes.
    pub trace: TraceBuffer,
    /// Cancellation.
    pub cancel: JobCancel,
    /// When the job times out (`runner_info.timeout`).
    pub deadline: Instant,
    /// The coordinator, for artifacts upload and download with the job token.
    pub coordinator: Coordinator,
    /// `CI_CONCURRENT_ID` and `CI_CONCURRENT_PROJECT_ID`: the job's slots among this entry's
    /// running jobs (all of them, and those of the same project).
    pub concurrency: runnel_exec::Concurrency,
    /// The system id, for the trace header.
    pub system_id: String,
    /// Told each build stage as it starts (`gitlab_runner_jobs{stage}`).
    pub stage_sink: Option<runnel_exec::StageSink>,
    /// The job's web-terminal session, when `[session_server]` runs.
    pub session: Option<Arc<crate::session::JobSession>>,
}

/// How the executor says the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStatus {
    /// Success.
    Success,
    /// Failed (script failure, timeout, system failure).
    Failed,
    /// Canceled (gracefully or aborted).
    Canceled,
}

/// The result of executing one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// How it ended.
    pub status: ExecStatus,
    /// GitLab's failure reason, with `Failed`.
    pub failure_reason: Option<FailureReason>,
    /// The failing script's exit code.
    pub exit_code: Option<i32>,
}

/// A boxed executor future.
pub type ExecFuture = Pin<Box<dyn Future<Output = ExecOutcome> + Send>>;

/// Executes payloads. `execute` must return once the job's processes are gone, whatever the
/// outcome, and must honour `ctx.cancel` and `ctx.deadline`.
pub trait JobExecutor: Send + Sync + 'static {
    /// Whether this executor can run jobs of a `[[runners]]` entry with `executor = name`.
    fn supports(&self, name: &str) -> bool;

    /// The `info.executor` and `info.shell` advertised for `runner`, and its features.
    fn features(&self, runner: &RunnerConfig) -> runnel_api::FeaturesInfo;

    /// Runs one job.
    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture;

    /// Called once when the daemon starts, before any job, with the configured entries (e.g.
    /// to remove containers a killed runner left behind). Does nothing by default.
    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        let _ = runners;
        Box::pin(std::future::ready(()))
    }
}

/// The future of [`JobExecutor::start_up`].
pub type StartUp<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// `base` (the shell set) with what an executor running jobs in containers adds: `image`,
/// `services` with their variables and several aliases, as gitlab-runner's Docker
/// (`executors/docker/docker.go` `GetFeatures`) and Kubernetes executors advertise.
pub(crate) fn container_features(base: runnel_api::FeaturesInfo) -> runnel_api::FeaturesInfo {
    runnel_api::FeaturesInfo {
        image: true,
        services: true,
        service_variables: true,
        service_multiple_aliases: true,
        ..base
    }
}
