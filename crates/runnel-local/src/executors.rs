//! The executors of `runnel exec --executor`, registered in one place: [`ExecutorKind`]. Each
//! runs planned jobs through runnel-exec with sources copied from the working tree and builds,
//! caches and artifacts under the state directory (`.runnel/`).
//!
//! To add an executor: add a variant to [`ExecutorKind`] (its doc comment is its `--help` text,
//! its name the `--executor` value), then the compiler asks for its arm in
//! [`ExecutorKind::executor`] (how a job's executor is built) and in [`ExecutorKind::notices`]
//! (keywords it ignores).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_api::JobPayload;
use runnel_exec::{
    Executor, JobContext, JobEvent, JobStatus, LocalArtifactStore, LocalCacheStore, Sources,
    WorkingTree,
};
use runnel_pipeline::job::Job;
use runnel_pipeline::schedule::JobResult;
use tokio::sync::mpsc;

use crate::driver::{JobRun, JobRunner};
use crate::local_pipeline::JobEnd;
use crate::trace::TraceLine;

/// An executor of `runnel exec --executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ExecutorKind {
    /// This machine: the scripts run in `bash` (or `sh`) here.
    #[default]
    Shell,
    /// Each job in a container of its `image:`, with its `services:`, on the local Docker
    /// engine (images are pulled only when missing).
    Docker,
    /// Each job on a remote host over SSH (`--ssh-*` flags or `[runners.ssh]` of
    /// `--runner-config`); the project is copied there and back.
    Ssh,
    /// Each job in a VirtualBox VM cloned from `[runners.virtualbox]` `base_name` of
    /// `--runner-config`, reached over SSH.
    Virtualbox,
    /// Each job in a Parallels VM made from `[runners.parallels]` `base_name` of
    /// `--runner-config`, reached over SSH.
    Parallels,
    /// Each job in a pod of its `image:`, with its `services:`, on the cluster of the current
    /// kubeconfig context (`--kube-context`, `--namespace`); the project is copied into the pod.
    #[cfg(feature = "kubernetes")]
    Kubernetes,
    /// Each build stage through the custom executor's driver programs (gitlab-runner's
    /// `config_exec`, `prepare_exec`, `run_exec`, `cleanup_exec`): `--custom-run-exec` and the
    /// other `--custom-*` flags, or `[runners.custom]` of `--runner-config`.
    Custom,
}

/// An executor of `runnel exec` with its settings: the SSH login, the VM settings, the custom
/// executor's drivers.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    /// Which executor.
    pub kind: ExecutorKind,
    /// The SSH login of `Ssh` (its `builds_dir` is the remote builds directory; each job slot
    /// gets its own directory under it).
    pub ssh: Option<runnel_exec::ssh::SshConfig>,
    /// The settings of `Virtualbox`.
    pub virtualbox: Option<runnel_exec::vm::VirtualBoxConfig>,
    /// The settings of `Parallels`.
    pub parallels: Option<runnel_exec::vm::ParallelsConfig>,
    /// The cluster of `Kubernetes` (set from [`crate::PipelineOptions::kubernetes`]).
    pub kube: crate::options::KubeTarget,
    /// The driver programs and timeouts of `Custom`. Its `state_dir` is where each job keeps
    /// its temporary directory; what a killed run left there is swept up before the first job.
    pub custom: Option<runnel_exec::custom::CustomConfig>,
}

impl From<ExecutorKind> for LocalExecutor {
    fn from(kind: ExecutorKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }
}

impl LocalExecutor {
    /// A new executor for one job (see [`ExecutorKind::executor`]); the remote directories get
    /// the job slot's name (the last component of `ctx.builds_dir`) so parallel jobs do not
    /// share one.
    fn executor(&self, project_dir: &Path, ctx: &JobContext) -> Box<dyn Executor> {
        let slot = ctx
            .builds_dir
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let ssh = |config: Option<&runnel_exec::ssh::SshConfig>| {
            let mut config = config.cloned().unwrap_or_default();
            config.builds_dir = config.builds_dir.join(&slot);
            config.kill_grace = ctx.kill_grace;
            config
        };
        match self.kind {
            ExecutorKind::Ssh => {
                Box::new(runnel_exec::ssh::SshExecutor::new(ssh(self.ssh.as_ref())))
            }
            ExecutorKind::Virtualbox => {
                let mut config = self.virtualbox.clone().unwrap_or_else(|| {
                    runnel_exec::vm::VirtualBoxConfig::new(
                        "",
                        runnel_exec::ssh::SshConfig::default(),
                    )
                });
                config.ssh = ssh(Some(&config.ssh));
                config.owner.concurrent_id = slot.to_string_lossy().parse().unwrap_or(0);
                Box::new(runnel_exec::vm::VirtualBoxExecutor::new(config))
            }
            ExecutorKind::Parallels => {
                let mut config = self.parallels.clone().unwrap_or_else(|| {
                    runnel_exec::vm::ParallelsConfig::new(
                        "",
                        runnel_exec::ssh::SshConfig::default(),
                    )
                });
                config.ssh = ssh(Some(&config.ssh));
                config.owner.concurrent_id = slot.to_string_lossy().parse().unwrap_or(0);
                Box::new(runnel_exec::vm::ParallelsExecutor::new(config))
            }
            #[cfg(feature = "kubernetes")]
            ExecutorKind::Kubernetes => Box::new(runnel_kube::KubernetesExecutor::new(
                local_kube_settings(&self.kube),
                ctx.kill_grace,
            )),
            ExecutorKind::Custom => {
                let config = self.custom.clone().unwrap_or_else(|| {
                    // Without settings every job fails with the missing `run_exec`.
                    runnel_exec::custom::CustomConfig::new("", std::env::temp_dir())
                });
                Box::new(
                    runnel_exec::custom::CustomExecutor::new(config)
                        .with_job_control(ctx.abort.clone(), ctx.deadline),
                )
            }
            kind => kind.executor(project_dir, ctx),
        }
    }

    /// Cleans up what a killed earlier run left (the custom executor's jobs).
    async fn sweep(&self) {
        if let (ExecutorKind::Custom, Some(custom)) = (self.kind, &self.custom) {
            let _ = runnel_exec::custom::sweep_leftovers(custom).await;
        }
    }
}

impl ExecutorKind {
    /// A new executor for one job; `ctx` is the job's context (its project directory is
    /// `project_dir`).
    fn executor(self, project_dir: &Path, ctx: &JobContext) -> Box<dyn Executor> {
        match self {
            ExecutorKind::Shell => {
                Box::new(runnel_exec::ShellExecutor::new(runnel_exec::ShellConfig {
                    shell: None,
                    kill_grace: ctx.kill_grace,
                }))
            }
            ExecutorKind::Docker => {
                let mut config = local_docker_config(project_dir);
                config.stop_timeout = ctx.kill_grace;
                Box::new(runnel_exec::docker::DockerExecutor::new(config))
            }
            // Built with their settings by `LocalExecutor::executor`.
            ExecutorKind::Ssh
            | ExecutorKind::Virtualbox
            | ExecutorKind::Parallels
            | ExecutorKind::Custom => LocalExecutor::from(self).executor(project_dir, ctx),
            #[cfg(feature = "kubernetes")]
            ExecutorKind::Kubernetes => LocalExecutor::from(self).executor(project_dir, ctx),
        }
    }

    /// What this executor ignores of `job`, one line each (`job: `image: x` is ignored …`).
    pub fn notices(self, job: &Job) -> Vec<String> {
        match self {
            ExecutorKind::Shell => {
                let mut notices = Vec::new();
                if let Some(image) = &job.image {
                    notices.push(format!(
                        "{}: `image: {}` is ignored by the shell executor",
                        job.name, image.name
                    ));
                }
                if !job.services.is_empty() {
                    notices.push(format!(
                        "{}: `services:` are ignored by the shell executor",
                        job.name
                    ));
                }
                notices
            }
            ExecutorKind::Docker => Vec::new(),
            #[cfg(feature = "kubernetes")]
            ExecutorKind::Kubernetes => Vec::new(),
            ExecutorKind::Custom => {
                let mut notices = Vec::new();
                if let Some(image) = &job.image {
                    notices.push(format!(
                        "{}: `image: {}` reaches the custom executor's driver only as \
                         `CUSTOM_ENV_CI_JOB_IMAGE`",
                        job.name, image.name
                    ));
                }
                if !job.services.is_empty() {
                    notices.push(format!(
                        "{}: `services:` reach the custom executor's driver only as \
                         `CUSTOM_ENV_CI_JOB_SERVICES`",
                        job.name
                    ));
                }
                notices
            }
            ExecutorKind::Ssh | ExecutorKind::Virtualbox | ExecutorKind::Parallels => {
                let mut notices = Vec::new();
                if self == ExecutorKind::Ssh
                    && let Some(image) = &job.image
                {
                    notices.push(format!(
                        "{}: `image: {}` is ignored by the ssh executor",
                        job.name, image.name
                    ));
                }
                if !job.services.is_empty() {
                    notices.push(format!(
                        "{}: `services:` are ignored by the {} executor",
                        job.name,
                        self.name()
                    ));
                }
                notices
            }
        }
    }

    /// The executor's name, as `--executor` spells it.
    fn name(self) -> &'static str {
        match self {
            ExecutorKind::Shell => "shell",
            ExecutorKind::Docker => "docker",
            ExecutorKind::Ssh => "ssh",
            ExecutorKind::Virtualbox => "virtualbox",
            ExecutorKind::Parallels => "parallels",
            ExecutorKind::Custom => "custom",
            #[cfg(feature = "kubernetes")]
            ExecutorKind::Kubernetes => "kubernetes",
        }
    }
}

/// The Docker settings of `runnel exec --executor docker`: images are pulled only when missing
/// (a job's `pull_policy` may ask for any policy); a job without `image:` fails with a
/// configuration error; files the containers write go back to the project's owner.
fn local_docker_config(project_dir: &Path) -> runnel_exec::docker::DockerConfig {
    use runnel_exec::docker::{DockerConfig, PullPolicy};
    DockerConfig {
        builds_owner: DockerConfig::owner_unless_root(project_dir),
        pull_policy: vec![PullPolicy::IfNotPresent],
        allowed_pull_policies: vec![
            PullPolicy::Always,
            PullPolicy::IfNotPresent,
            PullPolicy::Never,
        ],
        ..DockerConfig::default()
    }
}

/// The Kubernetes settings of `runnel exec --executor kubernetes`: the kubeconfig's context
/// (or `--kube-context`), images pulled only when missing.
#[cfg(feature = "kubernetes")]
fn local_kube_settings(target: &crate::options::KubeTarget) -> runnel_kube::KubeSettings {
    let mut settings = runnel_kube::KubeSettings::new();
    settings.connection.context.clone_from(&target.context);
    settings.namespace.clone_from(&target.namespace);
    settings.helper_image.clone_from(&target.helper_image);
    settings.pull_policy = vec!["if-not-present".to_owned()];
    // A pipeline's own `image:pull_policy` is what its author asked for: allow every policy.
    settings.allowed_pull_policies = ["always", "if-not-present", "never"]
        .map(str::to_owned)
        .to_vec();
    settings.runner_name = "runnel exec".to_owned();
    settings.runner_short_token = "local".to_owned();
    settings
}

/// Runs planned jobs of the repository at `project_dir` with one [`ExecutorKind`].
pub(crate) struct LocalRunner {
    kind: LocalExecutor,
    project_dir: PathBuf,
    base: JobContext,
    cache_stores: Option<crate::CacheStores>,
}

impl LocalRunner {
    /// Jobs of the repository at `project_dir`, keeping their state in `state_dir`.
    pub(crate) fn new(kind: LocalExecutor, project_dir: &Path, state_dir: &Path) -> Self {
        let tree = WorkingTree::new(project_dir);
        let mut base = JobContext::local(project_dir, tree.clone());
        base.builds_dir = state_dir.join("builds");
        base.cache_dir = state_dir.join("cache");
        base.sources = Sources::WorkingTree(tree);
        base.artifacts = Arc::new(LocalArtifactStore::new(state_dir.join("artifacts")));
        base.cache = Arc::new(LocalCacheStore::new(state_dir.join("cache")));
        LocalRunner {
            kind,
            project_dir: project_dir.to_owned(),
            base,
            cache_stores: None,
        }
    }

    /// Cleans up what a killed earlier run left (the custom executor's jobs).
    pub(crate) async fn sweep(&self) {
        self.kind.sweep().await;
    }

    /// Jobs keep their caches where `stores` says (the local cache when `None`).
    pub(crate) fn with_cache_stores(mut self, stores: Option<crate::CacheStores>) -> Self {
        self.cache_stores = stores;
        self
    }
}

impl JobRunner for LocalRunner {
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
        if let Some(stores) = &self.cache_stores {
            ctx.cache = (stores.0)(&payload, ctx.cache_dir.clone());
        }
        let mut executor = self.kind.executor(&self.project_dir, &ctx);
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
            let job = runnel_exec::run_job_with(executor.as_mut(), payload, ctx, tx);
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
