//! Runs payloads with `runnel-exec`'s custom executor (`executor = "custom"`): the
//! `[runners.custom]` section turned into its settings, and the start-up sweep of jobs a killed
//! runner left behind.
//!
//! GitLab: gitlab-runner `common/config.go` `CustomConfig` (every key of the section is
//! implemented: `config_exec`, `config_args`, `config_exec_timeout`, `prepare_exec`,
//! `prepare_args`, `prepare_exec_timeout`, `run_exec`, `run_args`, `cleanup_exec`,
//! `cleanup_args`, `cleanup_exec_timeout`, `graceful_kill_timeout`, `force_kill_timeout`) and
//! `executors/custom/custom.go` `prepareConfig` (a missing section or `run_exec` fails the job).

use std::path::PathBuf;

use runnel_api::{FailureReason, FeaturesInfo, JobPayload};
use runnel_exec::RemoteHelper;
use runnel_exec::custom::{
    CustomConfig as ExecCustomConfig, CustomExecutor, DEFAULT_EXEC_TIMEOUT,
    DEFAULT_FORCE_KILL_TIMEOUT, DEFAULT_GRACEFUL_KILL_TIMEOUT, Program,
};

use crate::config::RunnerConfig;
use crate::exec_adapter::{ShellJobExecutor, exec_outcome};
use crate::executor::{ExecFuture, ExecOutcome, ExecStatus, JobContext, JobExecutor, StartUp};

/// A `[runners.custom]` section the executor cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomSettingsError {
    /// No `[runners.custom]` section.
    #[error("custom executor not configured: the runner has no `[runners.custom]` section")]
    NotConfigured,
    /// No `run_exec`.
    #[error("custom executor is missing RunExec: `runners.custom.run_exec` is not set")]
    MissingRunExec,
}

/// The directory under the runner's builds directory where each job of a custom runner keeps
/// its temporary directory (scripts, `JOB_RESPONSE_FILE`, the record the start-up sweep reads).
pub fn state_dir(runner: &RunnerConfig, dirs: &ShellJobExecutor) -> PathBuf {
    let builds = runner
        .builds_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or("builds");
    dirs.resolve(builds)
        .join(".runnel-custom")
        .join(runner.short_token())
}

/// The `runnel-exec` settings of a `[[runners]]` entry with `executor = "custom"`.
pub fn custom_settings(
    runner: &RunnerConfig,
    dirs: &ShellJobExecutor,
) -> Result<ExecCustomConfig, CustomSettingsError> {
    let custom = runner
        .custom
        .as_ref()
        .ok_or(CustomSettingsError::NotConfigured)?;
    let program = |exec: &Option<String>, args: &Vec<String>| {
        exec.as_ref()
            .filter(|e| !e.trim().is_empty())
            .map(|exec| Program {
                exec: exec.clone(),
                args: args.clone(),
            })
    };
    let run =
        program(&custom.run_exec, &custom.run_args).ok_or(CustomSettingsError::MissingRunExec)?;
    let mut settings = ExecCustomConfig::new(run.exec, state_dir(runner, dirs));
    settings.run.args = run.args;
    settings.config = program(&custom.config_exec, &custom.config_args);
    settings.prepare = program(&custom.prepare_exec, &custom.prepare_args);
    settings.cleanup = program(&custom.cleanup_exec, &custom.cleanup_args);
    settings.config_exec_timeout =
        ExecCustomConfig::seconds(custom.config_exec_timeout, DEFAULT_EXEC_TIMEOUT);
    settings.prepare_exec_timeout =
        ExecCustomConfig::seconds(custom.prepare_exec_timeout, DEFAULT_EXEC_TIMEOUT);
    settings.cleanup_exec_timeout =
        ExecCustomConfig::seconds(custom.cleanup_exec_timeout, DEFAULT_EXEC_TIMEOUT);
    settings.graceful_kill_timeout =
        ExecCustomConfig::seconds(custom.graceful_kill_timeout, DEFAULT_GRACEFUL_KILL_TIMEOUT);
    settings.force_kill_timeout =
        ExecCustomConfig::seconds(custom.force_kill_timeout, DEFAULT_FORCE_KILL_TIMEOUT);
    Ok(settings)
}

/// As gitlab-runner's custom executor, the driver runs the sources, cache and artifact stages
/// itself: their scripts call this binary (`runnel helper stage`), which talks to the
/// coordinator at `url`, and to the distributed cache through URLs this runner signs.
fn remote_helper(url: &str) -> RemoteHelper {
    RemoteHelper {
        runnel: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("runnel")),
        coordinator_url: url.to_owned(),
    }
}

/// The custom executor behind the daemon. Directories are the shell executor's.
#[derive(Debug, Clone, Default)]
pub struct CustomJobExecutor {
    /// Resolves `builds_dir`/`cache_dir` and builds the job context.
    pub dirs: ShellJobExecutor,
}

impl CustomJobExecutor {
    /// An executor resolving relative directories against the current directory.
    pub fn new() -> Self {
        Self::default()
    }
}

impl JobExecutor for CustomJobExecutor {
    fn supports(&self, name: &str) -> bool {
        name == "custom"
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        // gitlab-runner's custom executor adds nothing to the shell set (`Variables`, `Shared`).
        self.dirs.features(runner)
    }

    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        Box::pin(async move {
            for runner in runners.iter().filter(|r| self.supports(&r.executor)) {
                let settings = match custom_settings(runner, &self.dirs) {
                    Ok(settings) => settings,
                    Err(err) => {
                        tracing::error!(name = %runner.name, "{err}");
                        continue;
                    }
                };
                match runnel_exec::custom::sweep_leftovers(&settings).await {
                    Ok(0) => {}
                    Ok(swept) => tracing::info!(
                        name = %runner.name,
                        swept,
                        "cleaned up custom executor jobs left by an earlier runnel"
                    ),
                    Err(err) => tracing::warn!(
                        name = %runner.name,
                        error = %err,
                        "cannot clean up custom executor jobs left by an earlier runnel"
                    ),
                }
            }
        })
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        let settings = custom_settings(&ctx.runner, &self.dirs);
        let mut exec_ctx = self.dirs.exec_context(&ctx);
        // With `[runners.cache]`, the driver's cache stages get URLs signed here.
        exec_ctx.cache =
            crate::cache::job_cache_store(&ctx.runner, exec_ctx.cache_dir.clone(), &payload);
        let trace = ctx.trace.clone();
        let abort = ctx.cancel.abort.clone();
        let deadline = tokio::time::Instant::from_std(ctx.deadline);
        let url = ctx.runner.url.clone();
        Box::pin(async move {
            let settings = match settings {
                Ok(settings) => settings,
                Err(err) => {
                    trace.write(format!("\x1b[31;1mERROR: {err}\x1b[0;m\n").as_bytes());
                    return ExecOutcome {
                        status: ExecStatus::Failed,
                        failure_reason: Some(FailureReason::RunnerSystemFailure),
                        exit_code: None,
                    };
                }
            };
            let mut settings = settings;
            settings.helper = Some(remote_helper(&url));
            let mut executor =
                CustomExecutor::new(settings).with_job_control(abort, Some(deadline));
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            exec_outcome(runnel_exec::run_job_with(&mut executor, payload, exec_ctx, events).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::{CustomSettingsError, custom_settings, state_dir};
    use crate::config::RunnerConfig;
    use crate::exec_adapter::ShellJobExecutor;

    fn runner(custom: &str) -> RunnerConfig {
        let text = format!(
            "[[runners]]\nname = \"r\"\nurl = \"http://x\"\ntoken = \"glrt-abcdefghijkl\"\nexecutor = \"custom\"\nbuilds_dir = \"/builds\"\n{custom}\n"
        );
        let config: crate::config::Config = toml::from_str(&text).expect("config");
        config.runners.into_iter().next().expect("a runner")
    }

    fn dirs() -> ShellJobExecutor {
        ShellJobExecutor {
            working_dir: PathBuf::from("/srv/runner"),
            user: None,
        }
    }

    #[test]
    fn every_key_of_the_custom_section_reaches_the_settings() {
        let runner = runner(
            r#"[runners.custom]
config_exec = "/d/config"
config_args = ["c1", "c2"]
config_exec_timeout = 11
prepare_exec = "/d/prepare"
prepare_args = ["p"]
prepare_exec_timeout = 12
run_exec = "/d/run"
run_args = ["r"]
cleanup_exec = "/d/cleanup"
cleanup_args = ["x"]
cleanup_exec_timeout = 13
graceful_kill_timeout = 14
force_kill_timeout = 15"#,
        );
        let settings = custom_settings(&runner, &dirs()).expect("valid");
        let program = |p: &Option<runnel_exec::custom::Program>| {
            p.as_ref().map(|p| (p.exec.clone(), p.args.clone()))
        };
        assert_eq!(
            program(&settings.config),
            Some(("/d/config".into(), vec!["c1".into(), "c2".into()]))
        );
        assert_eq!(
            program(&settings.prepare),
            Some(("/d/prepare".into(), vec!["p".into()]))
        );
        assert_eq!(
            (settings.run.exec.as_str(), settings.run.args.as_slice()),
            ("/d/run", ["r".to_owned()].as_slice())
        );
        assert_eq!(
            program(&settings.cleanup),
            Some(("/d/cleanup".into(), vec!["x".into()]))
        );
        assert_eq!(settings.config_exec_timeout, Duration::from_secs(11));
        assert_eq!(settings.prepare_exec_timeout, Duration::from_secs(12));
        assert_eq!(settings.cleanup_exec_timeout, Duration::from_secs(13));
        assert_eq!(settings.graceful_kill_timeout, Duration::from_secs(14));
        assert_eq!(settings.force_kill_timeout, Duration::from_secs(15));
        assert_eq!(
            settings.state_dir,
            PathBuf::from("/builds/.runnel-custom/abcdefghi")
        );
        assert_eq!(state_dir(&runner, &dirs()), settings.state_dir);
    }

    #[test]
    fn defaults_are_gitlab_runners_and_run_exec_is_required() {
        let settings = custom_settings(
            &runner("[runners.custom]\nrun_exec = \"/d/run\"\nconfig_exec_timeout = 0"),
            &dirs(),
        )
        .expect("valid");
        assert_eq!(settings.config_exec_timeout, Duration::from_secs(3600));
        assert_eq!(settings.graceful_kill_timeout, Duration::from_secs(600));
        assert_eq!(settings.force_kill_timeout, Duration::from_secs(10));
        assert!(settings.config.is_none() && settings.prepare.is_none());
        assert_eq!(
            custom_settings(&runner("[runners.custom]\nprepare_exec = \"/p\""), &dirs()),
            Err(CustomSettingsError::MissingRunExec)
        );
        assert_eq!(
            custom_settings(&runner(""), &dirs()),
            Err(CustomSettingsError::NotConfigured)
        );
    }
}
