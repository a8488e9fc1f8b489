//! `runnel completions <shell>` and `runnel man`: shell completions and manual pages generated
//! from the command-line definitions themselves (clap_complete, clap_mangen), so they cannot go
//! stale. The Debian package installs both.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

/// Arguments of `runnel completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `runnel man`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// Write `runnel.1` and one `runnel-<command>.1` per command into this directory instead of
    /// printing `runnel.1`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "runnel", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints `runnel.1`, or writes every page into `--out-dir`.
pub(crate) fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let command = super::Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command, &dir)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
