//! The helper stages (`get_sources`, `restore_cache`, `download_artifacts`, `archive_cache*`,
//! `upload_artifacts_*`) run in the executor's own environment by the `runnel` binary, for an
//! executor whose scripts run where the runner's file system is not (the custom executor).
//!
//! GitLab: gitlab-runner `shells/abstract.go` writes these stages as scripts that call its own
//! binary (`gitlab-runner artifacts-downloader`, `cache-extractor`, `cache-archiver`,
//! `artifacts-uploader`; `RunnerCommand` is `gitlab-runner`, found on the driver's `PATH`, in
//! `executors/custom/executor.go`) and clone the sources with `git` in the script. runnel does the
//! same with one command: the stage script runs `runnel helper stage` with a [`HelperSpec`] on
//! stdin (the payload, the directories as the scripts see them, the cache directory, the
//! coordinator's URL), and that command runs the very code the runner runs in-process for the
//! other executors — git against the job's `repo_url`, caches in the local cache directory of the
//! driver's environment, artifacts over the coordinator's API with the job's tokens. Its trace
//! goes to stdout, so it reaches the job trace through the driver, section markers included.
//!
//! The script tries the runner's own binary first (the same version, for a driver on the same
//! machine or a shared file system), then `runnel` on `PATH`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use runnel_api::JobPayload;
use serde::{Deserialize, Serialize};

use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::{JobDirs, PreparedJob};
use crate::mask::{DEFAULT_TOKEN_PREFIXES, Masker};
use crate::outcome::{JobOutcome, JobStatus};
use crate::remote_cache::{CacheMethod, RemoteCacheStore, SignedKey};
use crate::script::shell_quote;
use crate::sources::{GitStrategy, Sources, WorkingTree};
use crate::store::{ArtifactStore, LocalCacheStore};
use crate::trace::{Trace, TraceSink};
use crate::variables::{JobVariables, RunnerSide};
use crate::{artifact_stage, cache_stage};

/// How an executor's environment runs the helper stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHelper {
    /// The `runnel` binary the scripts try first (the runner's own); `runnel` on `PATH`
    /// otherwise.
    pub runnel: PathBuf,
    /// The coordinator's URL: artifacts go to and come from its API.
    pub coordinator_url: String,
}

/// A helper stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperStage {
    /// Clone or fetch `git_info.repo_url` into the project directory.
    GetSources,
    /// Extract the caches whose policy pulls.
    RestoreCache,
    /// Download and extract the artifacts of the dependencies.
    DownloadArtifacts,
    /// Archive the caches whose policy pushes and whose `when` matches.
    ArchiveCache,
    /// Upload the artifacts whose `when` matches.
    UploadArtifacts,
}

/// What `runnel helper stage` reads on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperSpec {
    /// The stage to run.
    pub stage: HelperStage,
    /// The coordinator's URL.
    pub coordinator_url: String,
    /// The job.
    pub payload: JobPayload,
    /// `CI_BUILDS_DIR` as the scripts see it.
    pub builds_dir: PathBuf,
    /// `CI_PROJECT_DIR` as the scripts see it.
    pub project_dir: PathBuf,
    /// `RUNNER_TEMP_PROJECT_DIR` as the scripts see it.
    pub tmp_dir: PathBuf,
    /// The local cache directory.
    pub cache_dir: PathBuf,
    /// `CI_RUNNER_DESCRIPTION`.
    pub runner_name: String,
    /// `CI_RUNNER_SHORT_TOKEN`.
    pub runner_short_token: String,
    /// `CI_CONCURRENT_ID` and `CI_CONCURRENT_PROJECT_ID`.
    #[serde(default)]
    pub concurrency: crate::context::Concurrency,
    /// Whether the builds directory is shared between jobs.
    pub shared: bool,
    /// For `archive_cache` and `upload_artifacts`: whether the job succeeded so far.
    pub succeeded: bool,
    /// The trace size limit.
    pub output_limit: usize,
    /// For `restore_cache` and `archive_cache` with a distributed cache: a pre-signed request
    /// for each key the stage may use, signed by the runner, which keeps the credentials.
    #[serde(default)]
    pub cache_requests: Vec<SignedKey>,
    /// The distributed cache's `MaxUploadedArchiveSize` (0: no limit).
    #[serde(default)]
    pub max_uploaded_archive_size: u64,
    /// Whether the runner has a distributed cache: the stage then uses `cache_requests` only,
    /// even when none could be signed (each key says so), never the local cache directory.
    #[serde(default)]
    pub distributed_cache: bool,
}

impl HelperSpec {
    /// The spec of `stage` for `job` in `ctx`.
    pub(crate) fn new(
        stage: HelperStage,
        helper: &RemoteHelper,
        job: &PreparedJob,
        ctx: &JobContext,
        shared: bool,
        succeeded: bool,
    ) -> Self {
        Self {
            stage,
            coordinator_url: helper.coordinator_url.clone(),
            payload: job.payload.clone(),
            builds_dir: job.script_dirs.builds_dir.clone(),
            project_dir: job.script_dirs.project_dir.clone(),
            tmp_dir: job.script_dirs.tmp_dir.clone(),
            cache_dir: ctx.cache_dir.clone(),
            runner_name: ctx.runner_name.clone(),
            runner_short_token: ctx.runner_short_token.clone(),
            concurrency: ctx.concurrency,
            shared,
            succeeded,
            output_limit: ctx.output_limit,
            cache_requests: Vec::new(),
            max_uploaded_archive_size: 0,
            distributed_cache: false,
        }
    }

    /// Signs a request for each cache key of a cache stage with `ctx`'s distributed cache, as
    /// gitlab-runner writes a signed `--url` into the `cache-extractor` and `cache-archiver`
    /// commands of its scripts. Nothing for another stage or a local cache.
    pub(crate) async fn sign_cache_requests(&mut self, job: &PreparedJob, ctx: &JobContext) {
        let (restoring, method) = match self.stage {
            HelperStage::RestoreCache => (true, CacheMethod::Get),
            HelperStage::ArchiveCache => (false, CacheMethod::Put),
            _ => return,
        };
        if ctx.cache.is_local() {
            return;
        }
        self.distributed_cache = true;
        for key in cache_stage::stage_keys(job, restoring, self.succeeded) {
            match ctx.cache.presign(&key, method).await {
                Ok(Some(signed)) => self.cache_requests.push(signed),
                Ok(None) => return,
                // The helper stage then warns that the key has no request.
                Err(err) => tracing::warn!(key, error = %err, "cannot sign a cache request"),
            }
        }
        self.max_uploaded_archive_size = ctx.cache.max_uploaded_archive_size();
    }

    /// The stage's name in the trace and for `run_exec`.
    pub(crate) fn stage_name(&self) -> &'static str {
        match (self.stage, self.succeeded) {
            (HelperStage::GetSources, _) => "get_sources",
            (HelperStage::RestoreCache, _) => "restore_cache",
            (HelperStage::DownloadArtifacts, _) => "download_artifacts",
            (HelperStage::ArchiveCache, true) => "archive_cache",
            (HelperStage::ArchiveCache, false) => "archive_cache_on_failure",
            (HelperStage::UploadArtifacts, true) => "upload_artifacts_on_success",
            (HelperStage::UploadArtifacts, false) => "upload_artifacts_on_failure",
        }
    }

    /// The bash script that runs this stage with `helper`'s binary.
    pub(crate) fn script(&self, helper: &RemoteHelper) -> Result<String, ExecError> {
        let json = serde_json::to_string(self).map_err(|err| ExecError::Prepare {
            executor: "custom",
            source: Box::new(err),
        })?;
        let own = shell_quote(&helper.runnel.to_string_lossy());
        // The driver's `TMPDIR` is the runner's; the job's own temporary directory is here.
        let tmp = shell_quote(&self.tmp_dir.to_string_lossy());
        // One line of JSON: no line of it can be the heredoc's delimiter.
        Ok(format!(
            "set -eo pipefail\n\
             mkdir -p {tmp}\n\
             export TMPDIR={tmp}\n\
             runnel={own}\n\
             if [ ! -x \"$runnel\" ]; then runnel=runnel; fi\n\
             \"$runnel\" helper stage <<'RUNNEL_HELPER_SPEC'\n{json}\nRUNNEL_HELPER_SPEC\n"
        ))
    }
}

/// Runs `spec` here (`runnel helper stage`): the trace goes to `out`, artifacts to and from
/// `artifacts`, caches in `spec.cache_dir`. Returns the exit code: 0 when the stage succeeded,
/// 1 when the job fails by it (a failed clone, a refused artifact).
pub async fn run_helper_stage(
    mut spec: HelperSpec,
    artifacts: Arc<dyn ArtifactStore>,
    out: TraceSink,
) -> Result<i32, ExecError> {
    let dirs = JobDirs {
        builds_dir: spec.builds_dir.clone(),
        project_dir: spec.project_dir.clone(),
        tmp_dir: spec.tmp_dir.clone(),
    };
    let variables = JobVariables::build(
        &spec.payload,
        &RunnerSide {
            builds_dir: &dirs.builds_dir,
            project_dir: &dirs.project_dir,
            tmp_dir: &dirs.tmp_dir,
            runner_name: &spec.runner_name,
            runner_short_token: &spec.runner_short_token,
            concurrency: spec.concurrency,
            shared: spec.shared,
        },
    );
    let job = PreparedJob {
        builds_dir: dirs.builds_dir.clone(),
        project_dir: dirs.project_dir.clone(),
        tmp_dir: dirs.tmp_dir.clone(),
        script_dirs: dirs,
        variables,
        payload: spec.payload,
    };
    for dir in [&job.tmp_dir, &job.builds_dir] {
        std::fs::create_dir_all(dir).map_err(ExecError::io("create the directory", dir))?;
    }
    // Built from the local context so that fields added later keep their defaults.
    let mut ctx = JobContext::local(&job.project_dir, WorkingTree::new(&job.project_dir));
    ctx.builds_dir = job.builds_dir.clone();
    ctx.cache_dir = spec.cache_dir.clone();
    ctx.sources = Sources::Git;
    ctx.artifacts = artifacts;
    ctx.cache = if !spec.distributed_cache {
        Arc::new(LocalCacheStore::new(spec.cache_dir.clone()))
    } else {
        Arc::new(RemoteCacheStore::presigned(
            spec.cache_dir.clone(),
            std::mem::take(&mut spec.cache_requests),
            spec.max_uploaded_archive_size,
        ))
    };
    ctx.output_limit = spec.output_limit;
    ctx.runner_name = spec.runner_name;
    ctx.runner_short_token = spec.runner_short_token;
    ctx.concurrency = spec.concurrency;
    let prefixes = DEFAULT_TOKEN_PREFIXES.iter().copied().chain(
        job.payload
            .features
            .token_mask_prefixes
            .iter()
            .map(String::as_str),
    );
    let masker = Masker::new(job.variables.masked_phrases(), prefixes);
    let (events, _) = tokio::sync::mpsc::unbounded_channel();
    let sections = job.payload.features.trace_sections;
    let mut trace = Trace::new(job.payload.id, events, masker, sections, spec.output_limit);
    trace.set_sink(Some(out));
    trace.keep_bytes(false);
    let ok = match spec.stage {
        HelperStage::GetSources => {
            let strategy = GitStrategy::of(&job.payload, &job.variables);
            let code = crate::sources::fetch_git(
                &job.payload,
                &job.variables,
                &job.project_dir,
                strategy,
                &mut trace,
            )
            .await?;
            code.is_none()
        }
        HelperStage::RestoreCache => {
            cache_stage::restore(&job, &ctx, &mut trace).await?;
            true
        }
        HelperStage::DownloadArtifacts => artifact_stage::download(&job, &ctx, &mut trace).await?,
        HelperStage::ArchiveCache => {
            cache_stage::archive(&job, &ctx, &mut trace, spec.succeeded).await?;
            true
        }
        HelperStage::UploadArtifacts => {
            let mut outcome = JobOutcome::new(JobStatus::Success);
            artifact_stage::upload(&job, &ctx, &mut trace, &mut outcome, spec.succeeded).await?
        }
    };
    trace.close_sections();
    let _ = trace.finish();
    let _ = std::io::stdout().flush();
    Ok(if ok { 0 } else { 1 })
}

/// Runs `stage` of `job` through `executor` with `helper` (the runner's side). Archiving and
/// uploading run after a graceful cancel and a timeout too, with their own time budget, as the
/// in-process stages do.
pub(crate) async fn run_through(
    executor: &mut dyn crate::executor::Executor,
    helper: &RemoteHelper,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    deadline: tokio::time::Instant,
    spec: (HelperStage, bool),
) -> Result<crate::process::ScriptEnd, ExecError> {
    let (stage, succeeded) = spec;
    let shared = job
        .variables
        .get("CI_SHARED_ENVIRONMENT")
        .is_some_and(|v| v == "true");
    let mut spec = HelperSpec::new(stage, helper, job, ctx, shared, succeeded);
    spec.sign_cache_requests(job, ctx).await;
    let (cancel, deadline) = match stage {
        HelperStage::ArchiveCache | HelperStage::UploadArtifacts => (
            ctx.abort.child_token(),
            tokio::time::Instant::now() + crate::steps::CLEANUP_STAGE_TIMEOUT,
        ),
        _ => (ctx.cancel.clone(), deadline),
    };
    let run = crate::executor::StageRun {
        name: spec.stage_name().to_owned(),
        script: spec.script(helper)?,
        cancel,
        deadline,
    };
    executor.run(job, run, trace).await
}
