//! Runs payloads with `runnel-exec` (the shell executor for now), with artifacts going to and
//! coming from the coordinator over HTTP and the trace streamed into the daemon's buffer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runnel_api::{ArtifactSpec, Dependency, FeaturesInfo, JobPayload};
use runnel_exec::{
    ArtifactStore, BoxFuture, LocalCacheStore, RunAs, ShellConfig, ShellExecutor, Sources,
    StoreError, TraceSink,
};

use crate::client::{ArtifactUpload, Coordinator, UploadOutcome};
use crate::config::RunnerConfig;
use crate::executor::{ExecFuture, ExecOutcome, ExecStatus, JobContext, JobExecutor};

/// The `runnel-exec` shell executor behind the daemon.
#[derive(Debug, Clone)]
pub struct ShellJobExecutor {
    /// The directory relative `builds_dir`/`cache_dir` are resolved against (the daemon's
    /// working directory, as gitlab-runner's shell executor does).
    pub working_dir: PathBuf,
    /// The user scripts run as (`run --user`, or `user` in config.toml); `None` runs them as
    /// the daemon's user.
    pub user: Option<RunAs>,
}

impl ShellJobExecutor {
    /// An executor resolving relative directories against the current directory.
    pub fn new() -> Self {
        Self {
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            user: None,
        }
    }

    fn dir(&self, configured: Option<&str>, default: &str) -> PathBuf {
        let dir = PathBuf::from(configured.filter(|d| !d.is_empty()).unwrap_or(default));
        if dir.is_absolute() {
            dir
        } else {
            self.working_dir.join(dir)
        }
    }
}

impl Default for ShellJobExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl JobExecutor for ShellJobExecutor {
    fn supports(&self, name: &str) -> bool {
        name == "shell"
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        // The executors whose terminal runnel implements (the other adapters start from this
        // set too).
        let terminal = matches!(runner.executor.as_str(), "shell" | "docker" | "kubernetes");
        // What runnel-exec and this daemon implement; gitlab-runner's shell executor set
        // (`executors/shell`, `shells/abstract.go`, `network/gitlab.go`).
        FeaturesInfo {
            variables: true,
            artifacts: true,
            cache: true,
            fallback_cache_keys: true,
            shared: true,
            upload_multiple_artifacts: true,
            upload_raw_artifacts: true,
            refspecs: true,
            masking: true,
            raw_variables: true,
            artifacts_exclude: true,
            multi_build_steps: true,
            trace_reset: true,
            trace_checksum: true,
            trace_size: true,
            cancelable: true,
            return_exit_code: true,
            cancel_gracefully: true,
            two_phase_job_commit: true,
            // The web terminal (gitlab-runner `executors/shell/shell_terminal.go`,
            // `executors/docker/terminal.go`, `executors/kubernetes/terminal.go`).
            session: terminal,
            terminal,
            ..FeaturesInfo::default()
        }
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        let mut exec_ctx = self.exec_context(&ctx);
        exec_ctx.cache =
            crate::cache::job_cache_store(&ctx.runner, exec_ctx.cache_dir.clone(), &payload);
        let user = self.user.clone();
        Box::pin(async move {
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            let Some(user) = user else {
                return exec_outcome(runnel_exec::run_job(payload, exec_ctx, events).await);
            };
            // As under gitlab-runner, where the job user creates them: the builds and cache
            // directories are the job user's.
            for dir in [&exec_ctx.builds_dir, &exec_ctx.cache_dir] {
                if let Err(err) = user.own_dir(dir) {
                    tracing::error!(dir = %dir.display(), user = %user.name, "failed to give the directory to the job user: {err}");
                }
            }
            let cache_dir = exec_ctx.cache_dir.clone();
            let mut shell = ShellExecutor::new(ShellConfig {
                shell: None,
                kill_grace: exec_ctx.kill_grace,
            })
            .run_as(Some(user.clone()));
            let outcome = runnel_exec::run_job_with(&mut shell, payload, exec_ctx, events).await;
            // Cache archives are written by the daemon; they belong to the job user too.
            if let Err(err) = user.chown_tree(&cache_dir) {
                tracing::warn!(dir = %cache_dir.display(), user = %user.name, "failed to give the cache to the job user: {err}");
            }
            exec_outcome(outcome)
        })
    }
}

impl ShellJobExecutor {
    /// The `runnel-exec` context of a daemon job: the shared builds directory, the local
    /// cache, HTTP artifacts, cancellation and the trace going into the daemon's buffer.
    pub(crate) fn exec_context(&self, ctx: &JobContext) -> runnel_exec::JobContext {
        let runner = &ctx.runner;
        // gitlab-runner's shared builds directory (`ProjectUniqueDir`):
        // <builds_dir>/<short token>/<project slot>.
        let builds_dir = self
            .dir(runner.builds_dir.as_deref(), "builds")
            .join(runner.short_token())
            .join(ctx.concurrency.project_id.to_string());
        let cache_dir = self.dir(runner.cache_dir.as_deref(), "cache");
        let trace = ctx.trace.clone();
        runnel_exec::JobContext {
            builds_dir,
            cache_dir: cache_dir.clone(),
            sources: Sources::Git,
            artifacts: Arc::new(HttpArtifactStore {
                coordinator: ctx.coordinator.clone(),
            }),
            cache: Arc::new(LocalCacheStore::new(cache_dir)),
            cancel: ctx.cancel.script.clone(),
            abort: ctx.cancel.abort.clone(),
            deadline: Some(tokio::time::Instant::from_std(ctx.deadline)),
            output_limit: usize::try_from(runner.output_limit_bytes()).unwrap_or(usize::MAX),
            trace_log: None,
            runner_name: runner.name.clone(),
            runner_short_token: runner.short_token(),
            concurrency: ctx.concurrency,
            kill_grace: KILL_GRACE,
            trace_sink: Some(TraceSink(Arc::new(move |bytes: &[u8]| trace.write(bytes)))),
            stage_sink: ctx.stage_sink.clone(),
            terminal: ctx
                .session
                .clone()
                .map(|session| session as Arc<dyn runnel_exec::TerminalSession>),
        }
    }

    /// Resolves a configured directory (relative ones against `working_dir`).
    pub(crate) fn resolve(&self, configured: &str) -> PathBuf {
        self.dir(Some(configured), configured)
    }
}

/// Time between SIGTERM and SIGKILL when a job's processes are stopped.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(10);

/// The daemon's view of what `runnel-exec` returned.
pub(crate) fn exec_outcome(
    result: Result<runnel_exec::JobOutcome, runnel_exec::ExecError>,
) -> ExecOutcome {
    match result {
        Ok(outcome) => ExecOutcome {
            status: match outcome.status {
                runnel_exec::JobStatus::Success => ExecStatus::Success,
                runnel_exec::JobStatus::Failed => ExecStatus::Failed,
                runnel_exec::JobStatus::Canceled => ExecStatus::Canceled,
            },
            failure_reason: outcome.failure_reason,
            exit_code: outcome.exit_code,
        },
        Err(err) => {
            tracing::error!(error = %crate::trace_patch::error_chain(&err), "the executor failed");
            ExecOutcome {
                status: ExecStatus::Failed,
                failure_reason: Some(runnel_api::FailureReason::RunnerSystemFailure),
                exit_code: None,
            }
        }
    }
}

/// Artifacts over the coordinator's API: upload with the job token, download of dependencies
/// with their token.
#[derive(Debug, Clone)]
pub struct HttpArtifactStore {
    coordinator: Coordinator,
}

impl HttpArtifactStore {
    /// A store talking to `coordinator`.
    pub fn new(coordinator: Coordinator) -> Self {
        Self { coordinator }
    }
}

/// The multipart file name gitlab-runner sends for an artifact of `format`.
fn upload_file_name(spec: &ArtifactSpec) -> String {
    let name = if spec.name.is_empty() {
        "artifacts"
    } else {
        spec.name.as_str()
    };
    let extension = match spec.artifact_format.as_str() {
        "" | "zip" | "zipzstd" => ".zip",
        "gzip" => ".gz",
        "tarzstd" => ".tar.zst",
        _ => "",
    };
    if name.ends_with(extension) {
        name.to_owned()
    } else {
        format!("{name}{extension}")
    }
}

fn remote(action: &str, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Remote {
        action: action.to_owned(),
        source: Box::new(source),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the coordinator answered {0}")]
struct UploadRefused(String);

impl ArtifactStore for HttpArtifactStore {
    fn upload<'a>(
        &'a self,
        job: &'a JobPayload,
        spec: &'a ArtifactSpec,
        archive: &'a Path,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        Box::pin(async move {
            let upload = ArtifactUpload {
                path: archive.to_owned(),
                file_name: upload_file_name(spec),
                artifact_type: spec.artifact_type.clone(),
                artifact_format: spec.artifact_format.clone(),
                expire_in: spec.expire_in.clone(),
            };
            let outcome = self
                .coordinator
                .upload_artifacts(job.id, &job.token, &upload)
                .await
                .map_err(|err| remote("upload artifacts", err))?;
            match outcome {
                UploadOutcome::Created => Ok(archive.to_owned()),
                UploadOutcome::TooLarge => Err(remote(
                    "upload artifacts",
                    UploadRefused("413 Request Entity Too Large".into()),
                )),
                UploadOutcome::Forbidden => Err(remote(
                    "upload artifacts",
                    UploadRefused("403 Forbidden".into()),
                )),
                UploadOutcome::Failed(status) => Err(remote(
                    "upload artifacts",
                    UploadRefused(status.to_string()),
                )),
            }
        })
    }

    fn download<'a>(
        &'a self,
        _job: &'a JobPayload,
        dependency: &'a Dependency,
        scratch: &'a Path,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        Box::pin(async move {
            if dependency.artifacts_file.is_none() {
                return Ok(None);
            }
            let destination = scratch.join(format!("artifacts-{}.zip", dependency.id));
            self.coordinator
                .download_artifacts(dependency.id, &dependency.token, &destination)
                .await
                .map_err(|err| remote("download artifacts", err))?;
            Ok(Some(destination))
        })
    }
}
