//! Test helpers for crates that run jobs: a payload builder and a context in a temporary
//! directory. Behind the `test-support` feature.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_api::{
    ArtifactSpec, CachePolicy, CacheSpec, Dependency, Features, JobId, JobInfo, JobPayload,
    JobToken, JobVariable, RunnerInfo, Step, When,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::build::run_job_with;
use crate::context::JobContext;
use crate::event::JobEvent;
use crate::executor::Executor;
use crate::outcome::{JobOutcome, JobStatus};
use crate::sources::{Sources, WorkingTree};
use crate::store::{LocalArtifactStore, LocalCacheStore};

/// Builds a [`JobPayload`] by hand.
#[derive(Debug, Clone)]
pub struct PayloadBuilder {
    payload: JobPayload,
}

impl PayloadBuilder {
    /// A job `name` with id `id` in pipeline 1, `trace_sections` on, a one-hour timeout.
    pub fn new(id: u64, name: &str) -> Self {
        let payload = JobPayload {
            id: JobId(id),
            token: JobToken::new(format!("glcbt-test-token-{id}")),
            allow_git_fetch: true,
            job_info: JobInfo {
                name: name.to_owned(),
                stage: "test".to_owned(),
                pipeline_id: 1,
                project_id: 1,
                project_name: "app".to_owned(),
                project_full_path: "acme/app".to_owned(),
                ..JobInfo::default()
            },
            git_info: Default::default(),
            runner_info: RunnerInfo {
                timeout: 3600,
                ..RunnerInfo::default()
            },
            variables: Vec::new(),
            steps: Vec::new(),
            image: None,
            services: Vec::new(),
            artifacts: Vec::new(),
            cache: Vec::new(),
            credentials: Vec::new(),
            dependencies: Vec::new(),
            features: Features {
                trace_sections: true,
                ..Features::default()
            },
            secrets: Default::default(),
            hooks: Vec::new(),
            inputs: None,
            run: None,
            policy_options: None,
            suspend_options: None,
        };
        Self { payload }
    }

    /// Sets the `script` step.
    pub fn script(mut self, commands: &[&str]) -> Self {
        self.payload.steps.retain(|s| s.name != "script");
        self.payload
            .steps
            .insert(0, step("script", commands, When::OnSuccess));
        self
    }

    /// Sets the `after_script` step.
    pub fn after_script(mut self, commands: &[&str]) -> Self {
        self.payload.steps.retain(|s| s.name != "after_script");
        self.payload
            .steps
            .push(step("after_script", commands, When::Always));
        self
    }

    /// Adds a public variable.
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.payload.variables.push(JobVariable::new(key, value));
        self
    }

    /// Adds a masked variable.
    pub fn masked_var(mut self, key: &str, value: &str) -> Self {
        self.payload.variables.push(JobVariable {
            masked: true,
            public: false,
            ..JobVariable::new(key, value)
        });
        self
    }

    /// Adds a file variable.
    pub fn file_var(mut self, key: &str, value: &str) -> Self {
        self.payload.variables.push(JobVariable {
            file: true,
            ..JobVariable::new(key, value)
        });
        self
    }

    /// Adds a hook (`pre_get_sources_script`, `post_get_sources_script`).
    pub fn hook(mut self, name: &str, commands: &[&str]) -> Self {
        self.payload.hooks.push(runnel_api::Hook {
            name: name.to_owned(),
            script: commands.iter().map(|c| (*c).to_owned()).collect(),
        });
        self
    }

    /// Sets the job timeout in seconds.
    pub fn timeout(mut self, seconds: u64) -> Self {
        self.payload.runner_info.timeout = seconds;
        self
    }

    /// Adds an `archive` artifact.
    pub fn artifacts(
        mut self,
        paths: &[&str],
        exclude: &[&str],
        untracked: bool,
        when: When,
    ) -> Self {
        self.payload.artifacts.push(ArtifactSpec {
            name: "artifacts".to_owned(),
            untracked,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            exclude: exclude.iter().map(|p| (*p).to_owned()).collect(),
            when,
            expire_in: None,
            artifact_type: "archive".to_owned(),
            artifact_format: "zip".to_owned(),
        });
        self
    }

    /// Adds a report artifact (`dotenv`, `junit`, `cobertura`).
    pub fn report(mut self, artifact_type: &str, paths: &[&str]) -> Self {
        self.payload.artifacts.push(ArtifactSpec {
            name: artifact_type.to_owned(),
            untracked: false,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            exclude: Vec::new(),
            when: When::Always,
            expire_in: None,
            artifact_type: artifact_type.to_owned(),
            artifact_format: "gzip".to_owned(),
        });
        self
    }

    /// Adds a cache.
    pub fn cache(mut self, key: &str, paths: &[&str], policy: CachePolicy, when: When) -> Self {
        self.payload.cache.push(CacheSpec {
            key: key.to_owned(),
            untracked: false,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            policy,
            when,
            fallback_keys: Vec::new(),
        });
        self
    }

    /// Adds a dependency on job `id`.
    pub fn dependency(mut self, id: u64, name: &str) -> Self {
        self.payload.dependencies.push(Dependency {
            id: JobId(id),
            token: JobToken::new("glcbt-dep"),
            name: name.to_owned(),
            artifacts_file: None,
        });
        self
    }

    /// The payload.
    pub fn build(self) -> JobPayload {
        self.payload
    }
}

impl From<JobPayload> for PayloadBuilder {
    fn from(payload: JobPayload) -> Self {
        Self { payload }
    }
}

fn step(name: &str, commands: &[&str], when: When) -> Step {
    Step {
        name: name.to_owned(),
        script: commands.iter().map(|c| (*c).to_owned()).collect(),
        timeout: 3600,
        when,
        allow_failure: false,
    }
}

/// A temporary project with a working tree, stores under `.runnel/`, and a context for it.
#[derive(Debug)]
pub struct TestProject {
    dir: tempfile::TempDir,
    tree: Arc<WorkingTree>,
}

impl TestProject {
    /// An empty git repository in a temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        let status = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir.path())
            .status()
            .expect("git can run");
        assert!(status.success(), "git init failed");
        let tree = WorkingTree::new(dir.path());
        Self { dir, tree }
    }

    /// The project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file of the working tree.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the directory can be created");
        }
        std::fs::write(&path, content).expect("the file can be written");
        path
    }

    /// Commits every file of the working tree.
    pub fn commit_all(&self, message: &str) {
        for args in [
            &["add", "-A"][..],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-q",
                "-m",
                message,
            ][..],
        ] {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(self.dir.path())
                .status()
                .expect("git can run");
            assert!(status.success(), "git {args:?} failed");
        }
    }

    /// Runs `git` in the working tree and returns its trimmed output.
    pub fn git(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("git can run");
        assert!(output.status.success(), "git {args:?} failed");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A context like `runnel exec`'s, with the trace log at `.runnel/logs/<name>.log` and a
    /// short kill grace period.
    pub fn context(&self, log_name: &str) -> JobContext {
        let mut ctx = JobContext::local(self.dir.path(), Arc::clone(&self.tree));
        ctx.trace_log = Some(
            self.dir
                .path()
                .join(".runnel/logs")
                .join(format!("{log_name}.log")),
        );
        ctx.kill_grace = std::time::Duration::from_secs(2);
        ctx.sources = Sources::WorkingTree(Arc::clone(&self.tree));
        ctx.artifacts = Arc::new(LocalArtifactStore::new(
            self.dir.path().join(".runnel/artifacts"),
        ));
        ctx.cache = Arc::new(LocalCacheStore::new(self.dir.path().join(".runnel/cache")));
        ctx
    }
}

/// Context helpers for tests.
pub trait ContextExt {
    /// The context with `sources` instead.
    fn with_sources(self, sources: Sources) -> Self;
}

impl ContextExt for JobContext {
    fn with_sources(mut self, sources: Sources) -> Self {
        self.sources = sources;
        self
    }
}

impl Default for TestProject {
    fn default() -> Self {
        Self::new()
    }
}

/// Collects every event of a channel until `Finished`.
pub async fn collect_events(mut rx: mpsc::UnboundedReceiver<JobEvent>) -> Vec<JobEvent> {
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        let done = matches!(event, JobEvent::Finished { .. });
        events.push(event);
        if done {
            break;
        }
    }
    events
}

/// The output lines of `events`, joined with newlines.
pub fn output_text(events: &[JobEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            JobEvent::Output { line, .. } => Some(line.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes a fresh executor for one job (the executor conformance suite's executors).
pub type MakeExecutor = fn() -> Box<dyn Executor>;

/// What one job run produced.
#[derive(Debug)]
pub struct Ran {
    /// What [`run_job_with`] returned.
    pub outcome: JobOutcome,
    /// Every event up to `Finished`.
    pub events: Vec<JobEvent>,
    /// The output lines of the events.
    pub output: String,
    /// The full trace as written to the log file.
    pub trace: String,
}

impl Ran {
    /// Asserts that the job ended with `status`, showing the output otherwise; `case` names the
    /// case (the executor) in the message.
    #[track_caller]
    pub fn assert_status(&self, status: JobStatus, case: &str) {
        assert_eq!(self.outcome.status, status, "{case}: {}", self.output);
    }

    /// Asserts that the output contains `text`, showing the output otherwise.
    #[track_caller]
    pub fn assert_output_contains(&self, text: &str, case: &str) {
        assert!(self.output.contains(text), "{case}: {}", self.output);
    }
}

/// Runs `payload` in `ctx` (a [`TestProject::context`]) with `executor` and collects its events
/// and trace log.
pub async fn run_to_end(executor: &mut dyn Executor, payload: JobPayload, ctx: JobContext) -> Ran {
    let log = ctx
        .trace_log
        .clone()
        .expect("test contexts have a trace log");
    let (tx, rx) = mpsc::unbounded_channel();
    let outcome = run_job_with(executor, payload, ctx, tx)
        .await
        .expect("runnel does not break");
    let events = collect_events(rx).await;
    let trace = String::from_utf8_lossy(&std::fs::read(&log).expect("the trace log is written"))
        .into_owned();
    Ran {
        outcome,
        output: output_text(&events),
        events,
        trace,
    }
}

/// Runs `payload` in `ctx` with `executor` and cancels `stop` (the context's `cancel` or
/// `abort`) once the job prints the line `started`. Returns the outcome and the output lines.
pub async fn run_stopped_once_started(
    executor: &mut dyn Executor,
    payload: JobPayload,
    ctx: JobContext,
    stop: CancellationToken,
) -> (JobOutcome, Vec<String>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = run_job_with(executor, payload, ctx, tx);
    let watch = async {
        let mut lines = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                JobEvent::Output { line, .. } => {
                    if line == "started" {
                        stop.cancel();
                    }
                    lines.push(line);
                }
                JobEvent::Finished { .. } => break,
                _ => {}
            }
        }
        lines
    };
    let (outcome, lines) = tokio::join!(job, watch);
    (outcome.expect("runnel does not break"), lines)
}

/// Runs `payload` in `ctx` with a fresh executor from `make`.
pub async fn run_with(make: MakeExecutor, payload: JobPayload, ctx: JobContext) -> Ran {
    run_to_end(make().as_mut(), payload, ctx).await
}

/// Runs `payload` in `project` (its log named by the job id) with a fresh executor from `make`.
pub async fn run(make: MakeExecutor, project: &TestProject, payload: JobPayload) -> Ran {
    let ctx = project.context(&payload.id.to_string());
    run_with(make, payload, ctx).await
}

/// The project directory of a job of `project` (`<project>/.runnel/builds/acme/app`).
pub fn project_dir(project: &TestProject) -> PathBuf {
    project.path().join(".runnel/builds/acme/app")
}

/// The job an executor sees for `payload` run with `ctx` (directories and final variables), for
/// unit tests of an executor's pure parts.
pub fn prepared_job(
    payload: runnel_api::JobPayload,
    ctx: &JobContext,
    executor: &'static str,
) -> crate::PreparedJob {
    crate::build::prepare_job(payload, ctx, executor, &crate::JobOverrides::default())
}

/// A trace without masking or sections that keeps its bytes, for unit tests of code that
/// writes into one.
pub fn trace(events: mpsc::UnboundedSender<JobEvent>) -> crate::Trace {
    crate::Trace::new(
        runnel_api::JobId(1),
        events,
        crate::mask::Masker::new([], []),
        false,
        crate::DEFAULT_OUTPUT_LIMIT,
    )
}
