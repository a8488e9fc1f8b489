//! What the runner subcommands share: the `--config` flag (gitlab-runner's `-c`/`CONFIG_FILE`)
//! and the runtime their GitLab requests run on.

use std::path::PathBuf;

/// The `--config` flag of a runner subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigFileArg {
    /// The config file.
    #[arg(short = 'c', long = "config", env = "CONFIG_FILE")]
    config: Option<PathBuf>,
}

impl ConfigFileArg {
    /// The named config file, else gitlab-runner's default path.
    pub(crate) fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(runnel_runner::config::default_config_path)
    }
}

/// A single-threaded runtime for a subcommand's requests to GitLab.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
