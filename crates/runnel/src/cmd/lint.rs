//! `runnel lint`.

use std::process::ExitCode;

/// Arguments of `runnel lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct LintArgs {}

pub(crate) fn run(_args: LintArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`runnel lint` is not implemented yet")
}
