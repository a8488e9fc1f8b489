//! Runs planned jobs with runnel-exec's shell executor: sources copied from the working tree,
//! builds, caches and artifacts under `.runnel/`.

use std::path::Path;
use std::sync::Arc;

use runnel_api::JobPayload;
use runnel_exec::{
    JobContext, JobEvent, JobStatus, LocalArtifactStore, LocalCacheStore, Sources, WorkingTree,
};
use runnel_pipeline::schedule::JobResult;
use tokio::sync::mpsc;

use crate::exec::driver::{JobEnd, JobRun, JobRunner};
use crate::report::trace::TraceLine;

/// The shell executor on this machine.
pub(crate) struct ShellRunner {
    base: JobContext,
    /// Runs the jobs in containers instead (`--executor docker`).
    docker: Option<runnel_exec::docker::DockerConfig>,
}

impl ShellRunner {
    /// Jobs of the repository at `project_dir`, keeping their state in `state_dir`.
    pub(crate) fn new(project_dir: &Path, state_dir: &Path) -> Self {
        let tree = WorkingTree::new(project_dir);
        let mut base = JobContext::local(project_dir, tree.clone());
        base.builds_dir = state_dir.join("builds");
        base.cache_dir = state_dir.join("cache");
        base.sources = Sources::WorkingTree(tree);
        base.artifacts = Arc::new(LocalArtifactStore::new(state_dir.join("artifacts")));
        base.cache = Arc::new(LocalCacheStore::new(state_dir.join("cache")));
        ShellRunner { base, docker: None }
    }

    /// Runs the jobs with the Docker executor when `docker` is set.
    pub(crate) fn with_docker(mut self, docker: Option<runnel_exec::docker::DockerConfig>) -> Self {
        self.docker = docker;
        self
    }
}

impl JobRunner for ShellRunner {
    fn run(
        &self,
        payload: JobPayload,
        run: JobRun,
        trace: mpsc::UnboundedSender<TraceLine>,
    ) -> impl Future<Output = JobEnd> + Send {
        let mut ctx = self.base.clone();
        ctx.builds_dir = ctx.builds_dir.join(run.slot.to_string());
        ctx.trace_log = run.log;
        ctx.abort = run.abort;
        ctx.cancel = run.cancel;
        let docker = self.docker.clone();
        async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<JobEvent>();
            let forward = async {
                while let Some(event) = rx.recv().await {
                    let line = match event {
                        JobEvent::SectionStart { name, header, .. } => {
                            TraceLine::SectionStart { name, header }
                        }
                        JobEvent::SectionEnd { name, duration, .. } => {
                            TraceLine::SectionEnd { name, duration }
                        }
                        JobEvent::Output { line, .. } => TraceLine::from_text(&line),
                        JobEvent::Finished { .. } => continue,
                    };
                    let _ = trace.send(line);
                }
            };
            let job = async move {
                match docker {
                    Some(mut config) => {
                        config.stop_timeout = ctx.kill_grace;
                        let mut executor = runnel_exec::docker::DockerExecutor::new(config);
                        runnel_exec::run_job_with(&mut executor, payload, ctx, tx).await
                    }
                    None => runnel_exec::run_job(payload, ctx, tx).await,
                }
            };
            let (result, ()) = tokio::join!(job, forward);
            match result {
                Ok(outcome) => JobEnd {
                    result: match outcome.status {
                        JobStatus::Success => JobResult::Success,
                        JobStatus::Canceled => JobResult::Canceled,
                        JobStatus::Failed => JobResult::Failed {
                            failure_reason: outcome
                                .failure_reason
                                .as_ref()
                                .map_or("script_failure", |r| r.as_str())
                                .to_owned(),
                            exit_code: outcome.exit_code,
                        },
                    },
                    exit_code: outcome.exit_code,
                    dotenv: outcome.dotenv,
                    has_artifacts: outcome.artifacts.is_some(),
                    artifacts: outcome
                        .artifacts
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                    junit: outcome
                        .junit
                        .map(|j| [j.total, j.failed, j.errored, j.skipped]),
                },
                Err(err) => {
                    let _ = trace.send(TraceLine::Output(format!(
                        "ERROR: Job failed (system failure): {err}"
                    )));
                    JobEnd {
                        result: JobResult::Failed {
                            failure_reason: "runner_system_failure".to_owned(),
                            exit_code: None,
                        },
                        exit_code: None,
                        dotenv: Vec::new(),
                        has_artifacts: false,
                        artifacts: Vec::new(),
                        junit: None,
                    }
                }
            }
        }
    }
}
