//! `runnel list`: the runners in the config file. Tokens are shortened, never printed whole.

use std::process::ExitCode;

use super::config_file::ConfigFileArg;

/// Arguments of `runnel list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    config: ConfigFileArg,
}

pub(crate) fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.config.path();
    let loaded = runnel_runner::config::load(&config_path)?;
    for key in &loaded.unknown_keys {
        tracing::warn!("{key}");
    }
    // gitlab-runner `commands/list.go`: through the logger (stderr, `--log-format` applies), one
    // info line per runner with its name as the message. The token is shortened here.
    tracing::info!(ConfigFile = %config_path.display(), "Listing configured runners");
    for runner in &loaded.config.runners {
        tracing::info!(
            Executor = %runner.executor,
            Token = %runner.short_token(),
            URL = %runner.url,
            "{}",
            runner.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
