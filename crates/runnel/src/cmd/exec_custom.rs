//! The settings of `runnel exec --executor custom`: gitlab-runner's `[runners.custom]` keys as
//! `--custom-*` flags (the names `gitlab-runner register` uses), or a gitlab-runner `config.toml`
//! (`--runner-config`), flags winning over the file.

use std::path::Path;

use runnel_exec::custom::CustomConfig;
use runnel_runner::config::{CustomConfig as CustomSection, RunnerConfig};
use runnel_runner::custom_adapter::custom_settings;
use runnel_runner::exec_adapter::ShellJobExecutor;

/// The `--custom-*` flags (`--runner-config` and `--runner` are the remote executors').
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Custom executor (--executor custom)")]
pub(crate) struct CustomArgs {
    /// `config_exec`: prints the job's configuration as JSON.
    #[arg(long, value_name = "PATH")]
    custom_config_exec: Option<String>,
    /// `config_args` (repeatable).
    #[arg(long, value_name = "ARG")]
    custom_config_args: Vec<String>,
    /// `config_exec_timeout` in seconds.
    #[arg(long, value_name = "SECONDS")]
    custom_config_exec_timeout: Option<i64>,
    /// `prepare_exec`: prepares the environment.
    #[arg(long, value_name = "PATH")]
    custom_prepare_exec: Option<String>,
    /// `prepare_args` (repeatable).
    #[arg(long, value_name = "ARG")]
    custom_prepare_args: Vec<String>,
    /// `prepare_exec_timeout` in seconds.
    #[arg(long, value_name = "SECONDS")]
    custom_prepare_exec_timeout: Option<i64>,
    /// `run_exec`: runs each stage's script (`<run_args…> <script> <stage>`).
    #[arg(long, value_name = "PATH")]
    custom_run_exec: Option<String>,
    /// `run_args` (repeatable).
    #[arg(long, value_name = "ARG")]
    custom_run_args: Vec<String>,
    /// `cleanup_exec`: removes the environment, always.
    #[arg(long, value_name = "PATH")]
    custom_cleanup_exec: Option<String>,
    /// `cleanup_args` (repeatable).
    #[arg(long, value_name = "ARG")]
    custom_cleanup_args: Vec<String>,
    /// `cleanup_exec_timeout` in seconds.
    #[arg(long, value_name = "SECONDS")]
    custom_cleanup_exec_timeout: Option<i64>,
    /// `graceful_kill_timeout`: seconds from SIGTERM to SIGKILL.
    #[arg(long, value_name = "SECONDS")]
    custom_graceful_kill_timeout: Option<i64>,
    /// `force_kill_timeout`: seconds from SIGKILL to giving the process up.
    #[arg(long, value_name = "SECONDS")]
    custom_force_kill_timeout: Option<i64>,
}

impl CustomArgs {
    /// Whether any `--custom-*` flag was given.
    pub(crate) fn given(&self) -> bool {
        self.section(Path::new("")) != CustomSection::default()
    }

    /// The `[runners.custom]` section the flags describe (relative paths against `cwd`).
    fn section(&self, cwd: &Path) -> CustomSection {
        let path = |p: &Option<String>| p.as_deref().map(|p| resolve(cwd, p));
        CustomSection {
            config_exec: path(&self.custom_config_exec),
            config_args: self.custom_config_args.clone(),
            config_exec_timeout: self.custom_config_exec_timeout,
            prepare_exec: path(&self.custom_prepare_exec),
            prepare_args: self.custom_prepare_args.clone(),
            prepare_exec_timeout: self.custom_prepare_exec_timeout,
            run_exec: path(&self.custom_run_exec),
            run_args: self.custom_run_args.clone(),
            cleanup_exec: path(&self.custom_cleanup_exec),
            cleanup_args: self.custom_cleanup_args.clone(),
            cleanup_exec_timeout: self.custom_cleanup_exec_timeout,
            graceful_kill_timeout: self.custom_graceful_kill_timeout,
            force_kill_timeout: self.custom_force_kill_timeout,
        }
    }

    /// The custom executor's settings: `runner`'s section (from `--runner-config`, its driver
    /// paths relative to `config_file`'s directory), then the flags over it (relative to
    /// `cwd`). Job directories go to `<state_dir>/custom`. Errors are the user's (no
    /// `run_exec`).
    pub(crate) fn settings(
        &self,
        mut runner: RunnerConfig,
        config_file: Option<&Path>,
        cwd: &Path,
        state_dir: &Path,
    ) -> anyhow::Result<CustomConfig> {
        let mut section = runner.custom.take().unwrap_or_default();
        if let Some(base) = config_file.and_then(Path::parent) {
            for exec in [
                &mut section.config_exec,
                &mut section.prepare_exec,
                &mut section.run_exec,
                &mut section.cleanup_exec,
            ] {
                if let Some(path) = exec.as_mut() {
                    *path = resolve(base, path);
                }
            }
        }
        overlay(&mut section, self.section(cwd));
        runner.custom = Some(section);
        let dirs = ShellJobExecutor {
            working_dir: cwd.to_owned(),
            user: None,
        };
        let mut settings = custom_settings(&runner, &dirs).map_err(|err| {
            anyhow::anyhow!(
                "--executor custom: {err}; give `--custom-run-exec` or `--runner-config`"
            )
        })?;
        settings.state_dir = state_dir.join("custom");
        Ok(settings)
    }
}

/// Sets every key the flags give.
fn overlay(section: &mut CustomSection, flags: CustomSection) {
    fn set<T>(to: &mut Option<T>, from: Option<T>) {
        if from.is_some() {
            *to = from;
        }
    }
    fn set_list(to: &mut Vec<String>, from: Vec<String>) {
        if !from.is_empty() {
            *to = from;
        }
    }
    set(&mut section.config_exec, flags.config_exec);
    set_list(&mut section.config_args, flags.config_args);
    set(&mut section.config_exec_timeout, flags.config_exec_timeout);
    set(&mut section.prepare_exec, flags.prepare_exec);
    set_list(&mut section.prepare_args, flags.prepare_args);
    set(
        &mut section.prepare_exec_timeout,
        flags.prepare_exec_timeout,
    );
    set(&mut section.run_exec, flags.run_exec);
    set_list(&mut section.run_args, flags.run_args);
    set(&mut section.cleanup_exec, flags.cleanup_exec);
    set_list(&mut section.cleanup_args, flags.cleanup_args);
    set(
        &mut section.cleanup_exec_timeout,
        flags.cleanup_exec_timeout,
    );
    set(
        &mut section.graceful_kill_timeout,
        flags.graceful_kill_timeout,
    );
    set(&mut section.force_kill_timeout, flags.force_kill_timeout);
}

/// A driver path: one with a `/` that is relative is taken from `base`; a bare name is looked
/// up on `PATH` when it runs.
fn resolve(base: &Path, path: &str) -> String {
    if path.contains('/') && !path.starts_with('/') && !base.as_os_str().is_empty() {
        base.join(path).to_string_lossy().into_owned()
    } else {
        path.to_owned()
    }
}
