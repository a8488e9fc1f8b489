//! `runnel unregister`: removes runners from GitLab and from the config file.

use std::process::ExitCode;

use runnel_runner::register::{Selection, unregister};

use super::config_file::{ConfigFileArg, runtime};
use crate::user_error::UserError;

/// Arguments of `runnel unregister`.
#[derive(Debug, clap::Args)]
pub(crate) struct UnregisterArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// The runner's name.
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// The runner's GitLab URL (with `--token`).
    #[arg(short = 'u', long, env = "CI_SERVER_URL")]
    url: Option<String>,
    /// The runner's token (with `--url`).
    #[arg(short = 't', long, env = "CI_SERVER_TOKEN")]
    token: Option<String>,
    /// Every runner in the config file.
    #[arg(long)]
    all_runners: bool,
}

pub(crate) fn run(args: UnregisterArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.config.path();
    let selection = if args.all_runners {
        Selection::All
    } else if let Some(name) = args.name.clone() {
        Selection::Name(name)
    } else if let (Some(url), Some(token)) = (args.url.clone(), args.token.clone()) {
        Selection::UrlToken(url, token)
    } else {
        return Err(UserError(
            "say which runner to unregister: `--name`, `--url` with `--token`, or `--all-runners`"
                .to_owned(),
        )
        .into());
    };
    let runtime = runtime()?;
    if args.all_runners {
        tracing::warn!("Unregistering all runners");
    }
    // Each runner's outcome was logged by `unregister` as gitlab-runner's `UnregisterRunner`
    // does; then `commands/unregister.go`'s summary lines.
    let results = runtime.block_on(unregister(&config_path, &selection))?;
    let mut failed = false;
    let mut updated = false;
    for (name, result) in results {
        match result {
            Ok(()) => updated = true,
            Err(_) => {
                failed = true;
                tracing::error!("Failed to unregister runner {name}");
            }
        }
    }
    if updated {
        tracing::info!("Updated {}", config_path.display());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
