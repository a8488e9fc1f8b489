//! [`CustomExecutor`]: gitlab-runner's custom executor protocol behind the [`Executor`] trait.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use runnel_api::{FailureReason, JobPayload};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{ConfigOutput, CustomConfig, Program};
use super::driver::{Call, DriverEnd, call};
use crate::error::ExecError;
use crate::executor::{Executor, JobOverrides, PreparedJob, StageRun};
use crate::mask::{DEFAULT_TOKEN_PREFIXES, Masker};
use crate::process::ScriptEnd;
use crate::store::BoxFuture;
use crate::trace::Trace;

/// gitlab-runner `common/build.go` `PreparationRetries`: `config_exec` and `prepare_exec` are
/// tried this often when they fail with a system failure.
const PREPARATION_ATTEMPTS: u32 = 3;

/// The file of a job's temporary directory the start-up sweep reads: the environment of its
/// driver calls, so `cleanup_exec` can run for a job a killed runner left behind.
pub(crate) const RECORD_FILE: &str = "runnel-custom-job.json";

/// Runs a job through the driver programs of `[runners.custom]`.
#[derive(Debug)]
pub struct CustomExecutor {
    config: CustomConfig,
    /// Stops `config_exec` and `prepare_exec` (the job's abort).
    cancel: CancellationToken,
    /// The job's deadline, for `config_exec` and `prepare_exec`.
    deadline: Option<Instant>,
    state: Option<JobState>,
}

/// What one job's calls share.
#[derive(Debug)]
struct JobState {
    /// The job's temporary directory: `TMPDIR`, the scripts, `JOB_RESPONSE_FILE`.
    dir: PathBuf,
    response_file: PathBuf,
    job_env: BTreeMap<String, String>,
    /// The variables of every driver call.
    env: Vec<(String, String)>,
    scripts: u32,
    /// `config_exec` or `prepare_exec` was stopped by a cancel: every stage is canceled.
    canceled: bool,
}

impl CustomExecutor {
    /// A custom executor with `config`; nothing runs before `configure`.
    pub fn new(config: CustomConfig) -> Self {
        Self {
            config,
            cancel: CancellationToken::new(),
            deadline: None,
            state: None,
        }
    }

    /// Stops `config_exec` and `prepare_exec` when `cancel` fires or `deadline` passes (the
    /// job's abort token and deadline; stages get theirs with each [`StageRun`]).
    pub fn with_job_control(
        mut self,
        cancel: CancellationToken,
        deadline: Option<Instant>,
    ) -> Self {
        self.cancel = cancel;
        self.deadline = deadline;
        self
    }

    /// The settings.
    pub fn config(&self) -> &CustomConfig {
        &self.config
    }

    fn deadline(&self, timeout: std::time::Duration) -> Instant {
        let own = Instant::now() + timeout;
        self.deadline.map_or(own, |job| job.min(own))
    }

    /// Makes the job's temporary directory (mode 0700) with `JOB_RESPONSE_FILE` in it.
    fn create_state(&mut self, job: &PreparedJob) -> Result<(), ExecError> {
        let root = &self.config.state_dir;
        std::fs::create_dir_all(root).map_err(ExecError::io("create the directory", root))?;
        let dir = unique_dir(root, job.payload.id.0)?;
        let response_file = dir.join("response.json");
        let json = serde_json::to_vec(&job.payload).map_err(|err| ExecError::Prepare {
            executor: "custom",
            source: Box::new(err),
        })?;
        write_private(&response_file, &json)?;
        self.state = Some(JobState {
            dir,
            response_file,
            job_env: BTreeMap::new(),
            env: Vec::new(),
            scripts: 0,
            canceled: false,
        });
        self.refresh_env(job)
    }

    /// Derives the environment of the driver calls from `job` and records it for the sweep.
    fn refresh_env(&mut self, job: &PreparedJob) -> Result<(), ExecError> {
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        state.env = driver_env(job, &state.job_env, &state.response_file);
        let record = serde_json::json!({ "job": job.payload.id.0, "env": state.env });
        write_private(&state.dir.join(RECORD_FILE), record.to_string().as_bytes())
    }

    async fn run_config_exec(&mut self, trace: &mut Trace) -> Result<ConfigOutput, ExecError> {
        let Some(program) = self.config.config.clone() else {
            return Ok(ConfigOutput::default());
        };
        let mut attempt = 1;
        loop {
            let result = self.config_once(&program, trace).await;
            match result {
                Err(Failure::Retry(message)) if attempt < PREPARATION_ATTEMPTS => {
                    self.retry_notice(&message, trace).await;
                    attempt += 1;
                }
                // The stages see the cancel and end at once.
                Err(Failure::Canceled) => return Ok(ConfigOutput::default()),
                Err(failure) => return Err(failure.into_error()),
                Ok(output) => return Ok(output),
            }
        }
    }

    async fn config_once(
        &mut self,
        program: &Program,
        trace: &mut Trace,
    ) -> Result<ConfigOutput, Failure> {
        let state = self.state.as_ref().ok_or(Failure::Broken(not_prepared()))?;
        let out_path = state.dir.join("config_exec.stdout");
        let stdout = std::fs::File::create(&out_path)
            .map_err(|err| Failure::Broken(ExecError::io("create", &out_path)(err)))?;
        let deadline = self.deadline(self.config.config_exec_timeout);
        let end = call(
            &self.config,
            Call {
                program,
                extra_args: &[],
                env: &state.env,
                dir: &state.dir,
                stdout: Some(stdout),
                cancel: &self.cancel,
                deadline,
            },
            trace,
        )
        .await
        .map_err(Failure::Broken)?;
        self.check(end, "config_exec")?;
        let stdout = std::fs::read(&out_path)
            .map_err(|err| Failure::Broken(ExecError::io("read", &out_path)(err)))?;
        let _ = std::fs::remove_file(&out_path);
        ConfigOutput::parse(&stdout).map_err(|err| {
            Failure::Retry(format!(
                "error while parsing JSON output of config_exec `{}`: {err}",
                program.exec
            ))
        })
    }

    /// Maps how `config_exec` or `prepare_exec` ended to a failure (`Ok` when it succeeded).
    fn check(&mut self, end: DriverEnd, what: &str) -> Result<(), Failure> {
        match end {
            DriverEnd::Success => Ok(()),
            DriverEnd::Canceled => {
                if let Some(state) = self.state.as_mut() {
                    state.canceled = true;
                }
                Err(Failure::Canceled)
            }
            DriverEnd::TimedOut if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                Err(Failure::JobTimeout)
            }
            DriverEnd::TimedOut => Err(Failure::Retry(format!(
                "{what} did not finish within its timeout and was terminated"
            ))),
            DriverEnd::BuildFailure => Err(Failure::Build(format!("{what}: {}", end.describe()))),
            DriverEnd::SystemFailure | DriverEnd::Unknown(_) => {
                Err(Failure::Retry(format!("{what}: {}", end.describe())))
            }
        }
    }

    async fn retry_notice(&mut self, message: &str, trace: &mut Trace) {
        // GitLab: gitlab-runner `common/build.go` `retryCreateExecutor`.
        trace.error(&format!("Preparation failed: {message}"));
        trace.println(&format!(
            "Will be retried in {} ...",
            crate::steps::go_duration(self.config.preparation_retry_interval)
        ));
        tokio::select! {
            () = tokio::time::sleep(self.config.preparation_retry_interval) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    async fn prepare_exec(
        &mut self,
        job: &PreparedJob,
        trace: &mut Trace,
    ) -> Result<(), ExecError> {
        let Some(program) = self.config.prepare.clone() else {
            return Ok(());
        };
        let mut attempt = 1;
        loop {
            let Some(state) = self.state.as_ref() else {
                return Err(not_prepared());
            };
            let deadline = self.deadline(self.config.prepare_exec_timeout);
            let end = call(
                &self.config,
                Call {
                    program: &program,
                    extra_args: &[],
                    env: &state.env,
                    dir: &state.dir,
                    stdout: None,
                    cancel: &self.cancel,
                    deadline,
                },
                trace,
            )
            .await?;
            match self.check(end, "prepare_exec") {
                Ok(()) => return Ok(()),
                Err(Failure::Canceled) => return Ok(()),
                Err(Failure::Retry(message)) if attempt < PREPARATION_ATTEMPTS => {
                    // gitlab-runner cleans up after every failed preparation.
                    self.cleanup_exec(job).await;
                    self.retry_notice(&message, trace).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }

    /// Runs `cleanup_exec` (its own timeout, not under the job's cancel); stdout is logged at
    /// debug level, stderr at warning level, as gitlab-runner does.
    async fn cleanup_exec(&self, job: &PreparedJob) {
        let (Some(program), Some(state)) = (&self.config.cleanup, &self.state) else {
            return;
        };
        run_cleanup(&self.config, program, &state.env, &state.dir, Some(job)).await;
    }
}

/// Why `config_exec` or `prepare_exec` did not succeed.
enum Failure {
    /// A system failure (`SYSTEM_FAILURE_EXIT_CODE`, another code, a timeout, bad JSON):
    /// retried.
    Retry(String),
    /// `BUILD_FAILURE_EXIT_CODE`: the job fails, no retry.
    Build(String),
    Canceled,
    JobTimeout,
    Broken(ExecError),
}

impl Failure {
    fn into_error(self) -> ExecError {
        let failed = |reason, message: String| ExecError::JobFailed {
            reason,
            message: format!("prepare environment: {message}"),
        };
        match self {
            Self::Retry(message) => failed(FailureReason::RunnerSystemFailure, message),
            Self::Build(message) => failed(FailureReason::ScriptFailure, message),
            Self::Canceled => ExecError::JobFailed {
                reason: FailureReason::JobCanceled,
                message: "canceled".to_owned(),
            },
            Self::JobTimeout => ExecError::JobFailed {
                reason: FailureReason::JobExecutionTimeout,
                message: "execution took longer than the job's timeout".to_owned(),
            },
            Self::Broken(err) => err,
        }
    }
}

fn not_prepared() -> ExecError {
    ExecError::Prepare {
        executor: "custom",
        source: "a driver was called before `configure`".into(),
    }
}

/// Runs `cleanup_exec` with `env`, logging its output.
pub(crate) async fn run_cleanup(
    config: &CustomConfig,
    program: &Program,
    env: &[(String, String)],
    dir: &Path,
    job: Option<&PreparedJob>,
) {
    let phrases: Vec<&str> = job
        .map(|j| j.variables.masked_phrases())
        .unwrap_or_default();
    let masker = Masker::new(phrases, DEFAULT_TOKEN_PREFIXES.iter().copied());
    let (events, _) = tokio::sync::mpsc::unbounded_channel();
    let id = job.map_or(runnel_api::JobId(0), |j| j.payload.id);
    let mut stderr = Trace::new(id, events, masker, false, 1024 * 1024);
    let out_path = dir.join("cleanup_exec.stdout");
    let stdout = std::fs::File::create(&out_path).ok();
    let never = CancellationToken::new();
    let deadline = Instant::now() + config.cleanup_exec_timeout;
    let result = call(
        config,
        Call {
            program,
            extra_args: &[],
            env,
            dir,
            stdout,
            cancel: &never,
            deadline,
        },
        &mut stderr,
    )
    .await;
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let (stderr, _) = stderr.finish();
    let job_id = id.0;
    if !stdout.is_empty() {
        tracing::debug!(
            job = job_id,
            cleanup_std = "out",
            "{}",
            String::from_utf8_lossy(&stdout).trim_end()
        );
    }
    if !stderr.is_empty() {
        tracing::warn!(
            job = job_id,
            cleanup_std = "err",
            "{}",
            String::from_utf8_lossy(&stderr).trim_end()
        );
    }
    match result {
        Ok(DriverEnd::Success) => {}
        Ok(end) => tracing::warn!(job = job_id, "Cleanup script failed: {}", end.describe()),
        Err(err) => tracing::warn!(
            job = job_id,
            "Cleanup script failed: {}",
            crate::build::error_chain(&err)
        ),
    }
}

impl Executor for CustomExecutor {
    fn name(&self) -> &'static str {
        "custom"
    }

    fn runs_every_stage(&self) -> bool {
        true
    }

    fn remote_helper(&self) -> Option<crate::helper_stage::RemoteHelper> {
        self.config.helper.clone()
    }

    fn configure<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<JobOverrides, ExecError>> {
        Box::pin(async move {
            self.create_state(job)?;
            let output = self.run_config_exec(trace).await?;
            trace.println(&output.startup_line());
            if let Some(shell) = output.shell.as_deref()
                && !matches!(shell, "bash" | "sh")
            {
                trace.warning(&format!(
                    "config_exec asks for the shell `{shell}`; runnel writes bash scripts"
                ));
            }
            if let Some(state) = self.state.as_mut() {
                state.job_env = output.job_env.clone().unwrap_or_default();
            }
            let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
            Ok(JobOverrides {
                builds_dir: nonempty(&output.builds_dir).map(PathBuf::from),
                cache_dir: nonempty(&output.cache_dir).map(PathBuf::from),
                builds_dir_is_shared: output.builds_dir_is_shared,
                hostname: output.hostname.clone(),
            })
        })
    }

    fn prepare<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            if self.state.is_none() {
                self.create_state(job)?;
            }
            // The job may have been derived again from `config_exec`'s directories.
            self.refresh_env(job)?;
            if self.state.as_ref().is_some_and(|s| s.canceled) {
                return Ok(());
            }
            self.prepare_exec(job, trace).await
        })
    }

    fn run<'a>(
        &'a mut self,
        _job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        Box::pin(async move {
            let Some(state) = self.state.as_mut() else {
                return Err(not_prepared());
            };
            if state.canceled || stage.cancel.is_cancelled() {
                return Ok(ScriptEnd::Canceled);
            }
            if Instant::now() >= stage.deadline {
                return Ok(ScriptEnd::TimedOut);
            }
            state.scripts += 1;
            let script_dir = state.dir.join(format!("script{}", state.scripts));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&script_dir)
                .map_err(ExecError::io("create the directory", &script_dir))?;
            let script = script_dir.join("script.");
            let script = script.with_extension("sh");
            write_executable(&script, stage.script.as_bytes())?;
            // GitLab: gitlab-runner `executors/custom/custom.go` `Run` still hands
            // `step_script` to the driver as `build_script`, with this warning.
            let name = if stage.name == "step_script" {
                trace.warning(
                    "Starting with version 17.0 the 'build_script' stage will be replaced with \
                     'step_script': https://gitlab.com/groups/gitlab-org/-/epics/6112",
                );
                "build_script".to_owned()
            } else {
                stage.name.clone()
            };
            let args = [script.to_string_lossy().into_owned(), name];
            let end = call(
                &self.config,
                Call {
                    program: &self.config.run,
                    extra_args: &args,
                    env: &state.env,
                    dir: &state.dir,
                    stdout: None,
                    cancel: &stage.cancel,
                    deadline: stage.deadline,
                },
                trace,
            )
            .await;
            let _ = std::fs::remove_dir_all(&script_dir);
            let end = end?;
            // Stages whose failure never changes the job's result report any code as an exit.
            let forgiving = matches!(
                stage.name.as_str(),
                "after_script" | "cleanup_file_variables"
            );
            match end {
                DriverEnd::Success => Ok(ScriptEnd::Exited(0)),
                DriverEnd::BuildFailure => Ok(ScriptEnd::Exited(super::BUILD_FAILURE_EXIT_CODE)),
                DriverEnd::TimedOut => Ok(ScriptEnd::TimedOut),
                DriverEnd::Canceled => Ok(ScriptEnd::Canceled),
                DriverEnd::SystemFailure if forgiving => {
                    Ok(ScriptEnd::Exited(super::SYSTEM_FAILURE_EXIT_CODE))
                }
                DriverEnd::Unknown(code) if forgiving => Ok(ScriptEnd::Exited(code)),
                DriverEnd::SystemFailure | DriverEnd::Unknown(_) => Err(ExecError::JobFailed {
                    reason: FailureReason::RunnerSystemFailure,
                    message: end.describe(),
                }),
            }
        })
    }

    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.state.is_none() {
                return;
            }
            self.cleanup_exec(job).await;
            if let Some(state) = self.state.take() {
                let _ = std::fs::remove_dir_all(&state.dir);
            }
        })
    }
}

/// The variables of every driver call: `job_env` first (so it cannot override a job
/// variable), every job variable as `CUSTOM_ENV_<key>`, `CUSTOM_ENV_CI_JOB_SERVICES`, then
/// `JOB_RESPONSE_FILE`.
fn driver_env(
    job: &PreparedJob,
    job_env: &BTreeMap<String, String>,
    response_file: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = job_env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for variable in job.variables.iter() {
        env.push((
            format!("CUSTOM_ENV_{}", variable.key),
            variable.value.clone(),
        ));
    }
    env.push((
        "CUSTOM_ENV_CI_JOB_SERVICES".to_owned(),
        services_json(&job.payload),
    ));
    env.push((
        "JOB_RESPONSE_FILE".to_owned(),
        response_file.to_string_lossy().into_owned(),
    ));
    env
}

/// `CI_JOB_SERVICES`: the job's services as JSON, empty without services (gitlab-runner
/// `getCIJobServicesEnv`).
fn services_json(payload: &JobPayload) -> String {
    if payload.services.is_empty() {
        return String::new();
    }
    let list: Vec<serde_json::Value> = payload
        .services
        .iter()
        .map(|service| {
            let list = |items: &Vec<String>| {
                if items.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(items)
                }
            };
            serde_json::json!({
                "name": service.name,
                "alias": service.aliases().first().copied().unwrap_or_default(),
                "entrypoint": list(&service.entrypoint),
                "command": list(&service.command),
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// A new directory `<root>/job-<id>-<n>` (mode 0700).
fn unique_dir(root: &Path, job: u64) -> Result<PathBuf, ExecError> {
    let pid = std::process::id();
    for n in 0u32.. {
        let dir = root.join(format!("job-{job}-{pid}-{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(ExecError::io("create the directory", &dir)(err)),
        }
    }
    Err(ExecError::Prepare {
        executor: "custom",
        source: "no free temporary directory name".into(),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    write_mode(path, bytes, 0o600)
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    write_mode(path, bytes, 0o700)
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ExecError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(ExecError::io("write", path))?;
    file.write_all(bytes).map_err(ExecError::io("write", path))
}
