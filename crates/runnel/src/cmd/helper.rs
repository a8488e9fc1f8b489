//! `runnel helper`: the commands the helper container of a Kubernetes job pod runs (see
//! `runnel_kube::helper`). Not meant to be typed by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use runnel_kube::transfer::Owner;

#[derive(Debug, Args)]
pub(crate) struct HelperArgs {
    #[command(subcommand)]
    command: HelperCommand,
}

#[derive(Debug, Subcommand)]
enum HelperCommand {
    /// Wait until SIGTERM (the helper container's main process).
    Sleep,
    /// Extract a tar archive from standard input into DIR, replacing its top-level directories.
    Unpack {
        /// The directory to extract into.
        dir: PathBuf,
        /// Give what is extracted to UID[:GID].
        #[arg(long)]
        owner: Option<Owner>,
    },
    /// Write a tar archive of DIR/NAME… to standard output.
    Pack {
        /// The directory holding the names.
        dir: PathBuf,
        /// The directories to archive.
        names: Vec<String>,
    },
    /// Wait until every PORT on 127.0.0.1 (the pod's services) accepts a TCP connection.
    HealthCheck {
        /// A port to wait for (repeatable).
        #[arg(long = "port", required = true)]
        ports: Vec<u16>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

pub(crate) fn run(args: HelperArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        HelperCommand::Sleep => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(runnel_kube::helper::sleep())?;
        }
        HelperCommand::Unpack { dir, owner } => runnel_kube::helper::unpack(&dir, owner)
            .map_err(|err| anyhow::anyhow!("failed to unpack into `{}`: {err}", dir.display()))?,
        HelperCommand::Pack { dir, names } => runnel_kube::helper::pack(&dir, &names)
            .map_err(|err| anyhow::anyhow!("failed to pack `{}`: {err}", dir.display()))?,
        HelperCommand::HealthCheck { ports, timeout } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let timeout = std::time::Duration::from_secs(timeout);
            runtime
                .block_on(runnel_kube::helper::health_check(&ports, timeout))
                .map_err(|err| anyhow::anyhow!("{err}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
