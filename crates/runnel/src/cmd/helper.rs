//! `runnel helper`: the commands the helper container of a Kubernetes job pod runs (see
//! `runnel_kube::helper`), and the build stages a custom executor's driver runs in its own
//! environment (`stage`, see `runnel_exec::HelperSpec`). Not meant to be typed by hand.

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
    /// Run one helper build stage (sources, caches, artifacts) here; its spec comes as JSON on
    /// standard input, the trace goes to standard output.
    Stage,
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
        HelperCommand::Stage => return stage(),
    }
    Ok(ExitCode::SUCCESS)
}

/// `runnel helper stage`: reads the spec, runs the stage with artifacts over the coordinator's
/// API, exits 1 when the job fails by it.
fn stage() -> anyhow::Result<ExitCode> {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;

    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|err| anyhow::anyhow!("failed to read the stage spec from stdin: {err}"))?;
    let spec: runnel_exec::HelperSpec = serde_json::from_slice(&input)
        .map_err(|err| anyhow::anyhow!("failed to parse the stage spec: {err}"))?;
    let http = runnel_runner::client::http_client()?;
    // Artifacts go with the job's tokens; the runner's own token is not needed here.
    let coordinator = runnel_runner::client::Coordinator::new(
        http,
        &spec.coordinator_url,
        runnel_api::RunnerToken::new(String::new()),
        String::new(),
    )?;
    let artifacts = Arc::new(runnel_runner::exec_adapter::HttpArtifactStore::new(
        coordinator,
    ));
    let out = runnel_exec::TraceSink(Arc::new(|bytes: &[u8]| {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(bytes);
        let _ = stdout.flush();
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(runnel_exec::run_helper_stage(spec, artifacts, out))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
