//! `runnel run`: the runner daemon (gitlab-runner `run`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use runnel_runner::daemon::{Preloaded, ReloadHook, RunOptions, Shutdown, run as run_daemon};
use runnel_runner::docker_adapter::RunnerExecutors;

use super::config_file::ConfigFileArg;
use crate::log::Logging;
use crate::user_error::ResultExt as _;

/// Arguments of `runnel run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// `host:port` for /metrics, overriding `listen_address`.
    #[arg(long, env = "LISTEN_ADDRESS")]
    listen_address: Option<String>,
    /// Change to this directory first (relative `builds_dir`/`cache_dir` resolve against it).
    #[arg(short = 'd', long, env = "WORKING_DIRECTORY")]
    working_directory: Option<PathBuf>,
    /// Run shell-executor jobs as this user (through `su`, in a login shell); overrides `user` in
    /// config.toml. runnel itself must run as root for this.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// The service name this daemon runs as (set by `runnel install`; shown by `runnel status`).
    #[arg(short = 'n', long)]
    service: Option<String>,
    /// Log to syslog (accepted for gitlab-runner compatibility: runnel logs to stderr, which the
    /// journal collects under systemd).
    #[arg(long, env = "LOG_SYSLOG")]
    syslog: bool,
}

/// Runs the daemon; `logging` already has the command line's level and format, and gets
/// `log_level`/`log_format` from the config file here.
pub(crate) fn run(args: RunArgs, logging: Logging) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.working_directory {
        std::env::set_current_dir(dir)
            .with_context(|| format!("`--working-directory {}`", dir.display()))
            .user_error()?;
    }
    let config_path = args.config.path();
    // Read once: the daemon starts from this config.
    let start = Preloaded::read(&config_path)?;
    logging.count_errors_in(start.metrics());
    // gitlab-runner fails to start on an invalid `log_level` or `log_format`, and applies them
    // again on every reload (`commands/multi.go`, `loadConfig`).
    logging
        .apply_config(
            start.config().log_level.as_deref(),
            start.config().log_format.as_deref(),
        )
        .with_context(|| format!("config file `{}`", config_path.display()))?;
    let on_reload: ReloadHook = Box::new(move |config| {
        if let Err(err) =
            logging.apply_config(config.log_level.as_deref(), config.log_format.as_deref())
        {
            tracing::error!("keeping the current log settings: {err}");
        }
    });
    if args.syslog {
        tracing::warn!(
            "--syslog is not supported: logging to stderr (under systemd the journal keeps it)"
        );
    }
    if let Some(service) = &args.service {
        tracing::info!(service = %service, "running as a service");
    }
    // gitlab-runner's `run --user` sets the config's `user`, which the shell executor runs its
    // scripts as (`commands/multi.go`, `executors/shell`).
    let user = args
        .user
        .clone()
        .or_else(|| start.config().user.clone())
        .filter(|u| !u.is_empty());
    let run_as = user
        .map(|name| runnel_exec::RunAs::lookup(&name))
        .transpose()?;
    if let Some(user) = &run_as {
        tracing::info!(user = %user.name, home = %user.home.display(), "shell-executor jobs run as this user");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = RunOptions {
        config_path,
        listen_address: args.listen_address.clone(),
    };
    let mut executors = RunnerExecutors::new();
    executors.shell.user = run_as;
    let executors = Arc::new(executors);
    let shutdown = runtime.block_on(run_daemon(options, start, on_reload, executors))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(match shutdown {
        Shutdown::Graceful | Shutdown::Forceful => ExitCode::SUCCESS,
        Shutdown::Immediate => ExitCode::FAILURE,
    })
}
