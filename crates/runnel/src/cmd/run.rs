//! `runnel run`: the runner daemon (gitlab-runner `run`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use runnel_runner::daemon::{RunOptions, Shutdown, run as run_daemon};
use runnel_runner::docker_adapter::RunnerExecutors;

use super::config_file::ConfigFileArg;

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
    /// `debug`, `info`, `warn`, `error`; overrides `log_level`.
    #[arg(long, env = "LOG_LEVEL")]
    log_level: Option<String>,
    /// Same as `--log-level debug`.
    #[arg(long)]
    debug: bool,
    /// `runner`, `text` or `json`; overrides `log_format` (accepted; logs are text for now).
    #[arg(long, env = "LOG_FORMAT")]
    log_format: Option<String>,
}

/// Operator logs on stderr. `log_format = "json"` is accepted but written as text for now.
fn init_logging(level: &str) {
    let level = match level {
        "warning" => "warn",
        "fatal" | "panic" => "error",
        other => other,
    };
    // A plain level filter: `EnvFilter` would compile regexes and touch pages an idle daemon
    // never needs again.
    let max = level
        .parse::<tracing::Level>()
        .unwrap_or(tracing::Level::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_writer(std::io::stderr);
    let _ = builder.try_init();
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.working_directory {
        std::env::set_current_dir(dir)?;
    }
    let config_path = args.config.path();
    let loaded = runnel_runner::config::load(&config_path)?;
    let level = if args.debug {
        "debug".to_owned()
    } else {
        args.log_level
            .clone()
            .or(loaded.config.log_level.clone())
            .unwrap_or_else(|| "info".into())
    };
    init_logging(&level);
    for key in &loaded.unknown_keys {
        tracing::warn!("{key}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = RunOptions {
        config_path,
        listen_address: args.listen_address.clone(),
    };
    let shutdown = runtime.block_on(run_daemon(options, Arc::new(RunnerExecutors::new())))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(match shutdown {
        Shutdown::Graceful | Shutdown::Forceful => ExitCode::SUCCESS,
        Shutdown::Immediate => ExitCode::FAILURE,
    })
}
