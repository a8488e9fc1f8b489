//! `runnel exec`.

use std::process::ExitCode;

/// Arguments of `runnel exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {}

pub(crate) fn run(_args: ExecArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`runnel exec` is not implemented yet")
}
