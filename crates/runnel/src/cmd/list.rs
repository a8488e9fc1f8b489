//! `runnel list`: the runners in the config file. Tokens are shortened, never printed whole.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `runnel list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// The config file.
    #[arg(short = 'c', long = "config", env = "CONFIG_FILE")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .unwrap_or_else(runnel_runner::config::default_config_path);
    let loaded = runnel_runner::config::load(&config_path)?;
    for key in &loaded.unknown_keys {
        eprintln!("warning: {key}");
    }
    println!(
        "Listing configured runners                          ConfigFile={}",
        config_path.display()
    );
    for runner in &loaded.config.runners {
        println!(
            "{:<40} Executor={} Token={} URL={}",
            runner.name,
            runner.executor,
            runner.short_token(),
            runner.url
        );
    }
    Ok(ExitCode::SUCCESS)
}
