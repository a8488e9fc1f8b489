//! `runnel verify`: checks that GitLab still knows the configured runners.

use std::process::ExitCode;

use runnel_runner::register::{RegisterError, Verified, verify};

use super::config_file::{ConfigFileArg, runtime};

/// Arguments of `runnel verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Only the runner with this name.
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Only runners of this GitLab URL.
    #[arg(short = 'u', long, env = "CI_SERVER_URL")]
    url: Option<String>,
    /// Only the runner with this token.
    #[arg(short = 't', long, env = "CI_SERVER_TOKEN")]
    token: Option<String>,
    /// Remove runners GitLab no longer knows from the config file.
    #[arg(long)]
    delete: bool,
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.config.path();
    let runtime = runtime()?;
    let select = |runner: &runnel_runner::config::RunnerConfig| {
        args.name.as_ref().is_none_or(|n| &runner.name == n)
            && args
                .url
                .as_ref()
                .is_none_or(|u| runner.url.trim_end_matches('/') == u.trim_end_matches('/'))
            && args.token.as_ref().is_none_or(|t| &runner.token == t)
    };
    let results = runtime.block_on(verify(&config_path, select, args.delete))?;
    // gitlab-runner `commands/verify.go` `selectRunners`: a filter that matches no runner is an
    // error ("No runner matches the filtering parameters"), not a silent success.
    let filters: Vec<String> = [
        ("--name", args.name.clone()),
        ("--url", args.url.clone()),
        (
            "--token",
            args.token
                .as_deref()
                .map(runnel_runner::config::short_token),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, value)| value.map(|value| format!("`{flag} {value}`")))
    .collect();
    if results.is_empty() && !filters.is_empty() {
        return Err(RegisterError::NoMatch {
            path: config_path.display().to_string(),
            selection: filters.join(" and "),
        }
        .into());
    }
    // Each runner's outcome was logged by `verify` as gitlab-runner's `VerifyRunner` does.
    let removed = results
        .iter()
        .any(|(_, _, result)| *result == Verified::Removed);
    let failed = results.iter().any(|(_, _, result)| match result {
        Verified::Valid => false,
        Verified::Removed => !args.delete,
        Verified::Error(_) => true,
    });
    // gitlab-runner `commands/verify.go`: "Failed to verify runners" (fatal), or with `--delete`
    // the config without them and "Updated <file>".
    if failed {
        tracing::error!("Failed to verify runners");
    } else if removed {
        tracing::info!("Updated {}", config_path.display());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
