//! Preparing a job before its stages: its directories and variables (again after the executor's
//! configuration step or a remote builds directory), the temporary directory and the file
//! variables in it.
//!
//! GitLab: gitlab-runner `common/build.go` (`ProjectUniqueDir`, `GetAllVariables`) and
//! `shells/abstract.go` `writePrepareScript`.

use std::path::{Path, PathBuf};

use runnel_api::JobPayload;

use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::{Executor, JobDirs, JobOverrides, PreparedJob};
use crate::script::Exports;
use crate::trace::Trace;
use crate::variables::{JobVariables, RunnerSide};

/// The project directory: the payload's `CI_PROJECT_DIR`, else `<builds>/<project full path>`
/// (gitlab-runner `common/build.go` `ProjectUniqueDir` without the shared-dir token parts).
/// `overrides` (the custom executor's `config_exec`) win over the runner's directories.
pub(crate) fn prepare_job(
    payload: JobPayload,
    ctx: &JobContext,
    executor: &'static str,
    overrides: &JobOverrides,
) -> PreparedJob {
    let builds_dir = match &overrides.builds_dir {
        Some(dir) => dir.clone(),
        None => payload
            .variable("CI_BUILDS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| ctx.builds_dir.clone()),
    };
    let project_dir = payload
        .variable("CI_PROJECT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let path = &payload.job_info.project_full_path;
            if path.is_empty() {
                builds_dir.join(format!("project-{}", payload.job_info.project_id))
            } else {
                builds_dir.join(path)
            }
        });
    let tmp_dir = tmp_dir_of(&project_dir);
    let dirs = JobDirs {
        builds_dir: builds_dir.clone(),
        project_dir: project_dir.clone(),
        tmp_dir: tmp_dir.clone(),
    };
    let shared = overrides
        .builds_dir_is_shared
        .unwrap_or_else(|| shared_builds_dir(executor));
    let variables = job_variables(&payload, &dirs, ctx, shared);
    PreparedJob {
        payload,
        builds_dir,
        project_dir,
        tmp_dir,
        script_dirs: dirs,
        variables,
    }
}

/// `<project dir>.tmp`, gitlab-runner's `RUNNER_TEMP_PROJECT_DIR`.
fn tmp_dir_of(project_dir: &Path) -> PathBuf {
    let mut tmp_name = project_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    project_dir.with_file_name(tmp_name)
}

/// GitLab: `SharedBuildsDir` is true for the shell, SSH and custom executors.
fn shared_builds_dir(executor: &str) -> bool {
    matches!(executor, "shell" | "ssh" | "custom")
}

fn job_variables(
    payload: &JobPayload,
    dirs: &JobDirs,
    ctx: &JobContext,
    shared: bool,
) -> JobVariables {
    let runner = RunnerSide {
        builds_dir: &dirs.builds_dir,
        project_dir: &dirs.project_dir,
        tmp_dir: &dirs.tmp_dir,
        runner_name: &ctx.runner_name,
        runner_short_token: &ctx.runner_short_token,
        concurrency: ctx.concurrency,
        shared,
    };
    JobVariables::build(payload, &runner)
}

/// Points the scripts' directories (and so `CI_BUILDS_DIR`, `CI_PROJECT_DIR`,
/// `RUNNER_TEMP_PROJECT_DIR` and the file variables' paths) at `remote_builds`, keeping the
/// project directory's place below the builds directory.
pub(super) fn relocate(
    job: &mut PreparedJob,
    remote_builds: &Path,
    ctx: &JobContext,
    executor: &'static str,
) {
    let relative = match job.project_dir.strip_prefix(&job.builds_dir) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative.to_path_buf(),
        // A `CI_PROJECT_DIR` outside the builds directory keeps its last component.
        _ => job
            .project_dir
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("project")),
    };
    let project_dir = remote_builds.join(relative);
    let dirs = JobDirs {
        builds_dir: remote_builds.to_path_buf(),
        tmp_dir: tmp_dir_of(&project_dir),
        project_dir,
    };
    job.variables = job_variables(&job.payload, &dirs, ctx, shared_builds_dir(executor));
    job.script_dirs = dirs;
}

/// Runs the executor's configuration step and derives the job again with what it changed.
/// Returns the host name the job reports.
pub(super) async fn configure(
    executor: &mut dyn Executor,
    job: &mut PreparedJob,
    ctx: &mut JobContext,
    trace: &mut Trace,
) -> Result<Option<String>, ExecError> {
    let overrides = executor.configure(job, trace).await?;
    let hostname = overrides.hostname.clone().filter(|h| !h.is_empty());
    if overrides == JobOverrides::default() {
        return Ok(hostname);
    }
    // gitlab-runner's `cache_dir` is the local cache; a distributed one stays.
    if let Some(dir) = &overrides.cache_dir
        && ctx.cache.is_local()
    {
        ctx.cache_dir = dir.clone();
        ctx.cache = std::sync::Arc::new(crate::store::LocalCacheStore::new(dir.clone()));
    }
    let payload = job.payload.clone();
    *job = prepare_job(payload, ctx, executor.name(), &overrides);
    Ok(hostname)
}

pub(super) fn prepare_dirs(job: &PreparedJob) -> Result<(), ExecError> {
    // GitLab: gitlab-runner `shells/abstract.go` `writePrepareScript` removes stale env and file
    // variables from an earlier job first.
    let _ = std::fs::remove_dir_all(&job.tmp_dir);
    std::fs::create_dir_all(&job.tmp_dir)
        .map_err(ExecError::io("create the directory", &job.tmp_dir))?;
    if let Some(parent) = job.project_dir.parent() {
        std::fs::create_dir_all(parent).map_err(ExecError::io("create the directory", parent))?;
    }
    Ok(())
}

/// Writes file variables into the temporary directory (mode 0600) and returns the exports.
pub(super) fn file_exports(job: &PreparedJob) -> Result<Exports, ExecError> {
    use std::os::unix::fs::OpenOptionsExt;
    let (vars, files) = job.variables.exports();
    for (script_path, content) in files {
        // The exported path is the scripts' (`script_dirs.tmp_dir`); the file is written into
        // this host's temporary directory under the same name.
        let path = match script_path.file_name() {
            Some(name) => job.tmp_dir.join(name),
            None => script_path,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(ExecError::io("write the file variable", &path))?;
        std::io::Write::write_all(&mut file, content.as_bytes())
            .map_err(ExecError::io("write the file variable", &path))?;
    }
    Ok(Exports { vars })
}

/// `GITLAB_ENV` as the scripts see it.
pub(crate) fn env_file(job: &PreparedJob) -> PathBuf {
    job.script_dirs.tmp_dir.join("gitlab_runner_env")
}
