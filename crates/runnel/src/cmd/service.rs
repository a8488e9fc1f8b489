//! `runnel install`, `uninstall`, `start`, `stop`, `restart` and `status`: gitlab-runner's service
//! commands (`commands/service.go`), with its flags and messages.

use std::path::PathBuf;
use std::process::ExitCode;

use runnel_runner::service::{ServiceState, Systemd, UnitSpec};

/// The default service name (gitlab-runner's is `gitlab-runner`).
const DEFAULT_SERVICE: &str = "runnel";

/// The flags every service command has.
#[derive(Debug, clap::Args)]
pub(crate) struct ServiceArgs {
    /// The service name.
    #[arg(short = 'n', long = "service", default_value = DEFAULT_SERVICE)]
    service: String,
}

/// The flags of `runnel install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// The root directory where builds and caches are stored (default: the current directory).
    #[arg(short = 'd', long)]
    working_directory: Option<PathBuf>,
    /// The config file (default: /etc/gitlab-runner/config.toml as root, else
    /// ~/.gitlab-runner/config.toml).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Log to syslog instead of stderr.
    #[arg(long)]
    syslog: bool,
    /// The user shell-executor jobs run as (the service itself runs as root).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// The user the service itself runs as (systemd's `User=`); jobs then run as that user too.
    #[arg(short = 'i', long, conflicts_with = "user")]
    init_user: Option<String>,
}

/// Which control command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    Uninstall,
    Start,
    Stop,
    Restart,
    Status,
}

/// `runnel install`. Failures exit 1 with the message, as gitlab-runner's `logrus.Fatal`.
pub(crate) fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    Ok(fatal_on_error(install_service(args)))
}

/// The other service commands.
pub(crate) fn control(control: Control, args: ServiceArgs) -> anyhow::Result<ExitCode> {
    Ok(fatal_on_error(control_service(control, args)))
}

fn fatal_on_error(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

fn install_service(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let root = nix::unistd::geteuid().is_root();
    if root && args.user.is_none() && args.init_user.is_none() {
        anyhow::bail!("please specify the user that will run runnel's jobs (`--user`)");
    }
    let config = args
        .config
        .unwrap_or_else(runnel_runner::config::default_config_path);
    let config = absolute(config)?;
    // As gitlab-runner: an invalid config fails the install; a missing one is created (0600).
    runnel_runner::config::load(&config)?;
    if !config.exists() {
        runnel_runner::config::ConfigEditor::open(&config)?.save()?;
    }
    let working_directory = match args.working_directory {
        Some(dir) => absolute(dir)?,
        None => std::env::current_dir()?,
    };
    let spec = UnitSpec {
        name: args.service.service,
        executable: std::env::current_exe()?,
        config,
        working_directory: Some(working_directory),
        user: args.user,
        init_user: args.init_user,
        syslog: args.syslog,
    };
    let systemd = Systemd::detect();
    let path = systemd.install(&spec)?;
    if systemd.is_running() {
        eprintln!(
            "Installed and enabled the `{}` service: {}",
            spec.name,
            path.display()
        );
    } else {
        eprintln!(
            "Installed the `{}` service: {}\n\
             systemd is not running on this machine (a container?): the unit is not enabled. \
             On a systemd host run `systemctl enable --now {}.service`.",
            spec.name,
            path.display(),
            spec.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn control_service(control: Control, args: ServiceArgs) -> anyhow::Result<ExitCode> {
    let systemd = Systemd::detect();
    let name = args.service;
    match control {
        Control::Uninstall => {
            let path = systemd.uninstall(&name)?;
            eprintln!(
                "Uninstalled the `{name}` service: removed {}",
                path.display()
            );
        }
        Control::Start => systemd.control(&name, "start")?,
        Control::Stop => systemd.control(&name, "stop")?,
        Control::Restart => systemd.control(&name, "restart")?,
        Control::Status => return status(&systemd, &name),
    }
    Ok(ExitCode::SUCCESS)
}

/// gitlab-runner's `runServiceStatus`: `<name>: Service is running` on stdout and exit 0, any
/// other state on stderr and exit 1.
fn status(systemd: &Systemd, name: &str) -> anyhow::Result<ExitCode> {
    let report = match systemd.status(name) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("{name}: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let (running, description) = match &report.state {
        ServiceState::Running { pids } if report.systemd || pids.is_empty() => {
            (true, "Service is running".to_owned())
        }
        ServiceState::Running { pids } => (
            true,
            format!(
                "Service is running (pid {}, not supervised: systemd is not running here)",
                join(pids)
            ),
        ),
        ServiceState::Stopped if report.systemd => (false, "Service has stopped".to_owned()),
        ServiceState::Stopped => (
            false,
            "Service is not running (systemd is not running here: no process runs the unit's command)"
                .to_owned(),
        ),
        ServiceState::Other(state) => (false, format!("Service status unknown ({state})")),
    };
    let details = format!(
        "  unit: {}\n  command: {}",
        report.unit_path.display(),
        report.command.join(" ")
    );
    if running {
        println!("{name}: {description}\n{details}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{name}: {description}\n{details}");
        Ok(ExitCode::FAILURE)
    }
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn absolute(path: PathBuf) -> std::io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}
