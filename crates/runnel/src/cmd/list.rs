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
