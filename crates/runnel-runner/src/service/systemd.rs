//! Managing the unit with systemd, as kardianos/service does for gitlab-runner
//! (`service_systemd_linux.go`): `install` writes the unit (refusing to overwrite one) and runs
//! `systemctl enable` and `daemon-reload`; `uninstall` disables and removes it; `start`, `stop`
//! and `restart` are `systemctl`'s; `status` is `systemctl is-active`.
//!
//! Where systemd is not PID 1 (a container, a chroot), the unit is still written and removed, the
//! commands that need systemd say so, and `status` answers from the unit file and the processes
//! running its command.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::unit::{UnitSpec, parse_exec_start};

/// Overrides the directory units are written to (default `/etc/systemd/system`), e.g. to stage a
/// unit into a package or an image root.
pub const UNIT_DIR_ENV: &str = "RUNNEL_SYSTEMD_UNIT_DIR";

/// Why a service command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `install` found a unit already there (kardianos: "Init already exists").
    #[error("the service `{name}` is already installed: `{}` exists (run `runnel uninstall --service {name}` first)", path.display())]
    AlreadyInstalled {
        /// The service name.
        name: String,
        /// The unit file.
        path: PathBuf,
    },
    /// There is no unit for the service.
    #[error("the service `{name}` is not installed: no `{}`", path.display())]
    NotInstalled {
        /// The service name.
        name: String,
        /// The unit file looked for.
        path: PathBuf,
    },
    /// `uninstall` of a unit a package installed.
    #[error("`{}` belongs to a package: remove the package instead (`apt remove runnel`)", path.display())]
    Packaged {
        /// The unit file.
        path: PathBuf,
    },
    /// The command needs a running systemd.
    #[error(
        "systemd is not running on this machine (PID 1 is `{pid1}`, as in a container), so `{action}` cannot work here; run `{command}` in the foreground or under this system's supervisor instead"
    )]
    NoSystemd {
        /// What PID 1 is.
        pid1: String,
        /// The action asked for.
        action: String,
        /// The unit's command line.
        command: String,
    },
    /// The unit file could not be written.
    #[error("failed to write the unit file `{}`", path.display())]
    Write {
        /// The unit file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The unit file could not be read or removed.
    #[error("failed to {action} the unit file `{}`", path.display())]
    UnitFile {
        /// `read` or `remove`.
        action: &'static str,
        /// The unit file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `systemctl` failed.
    #[error("`systemctl {args}` failed: {output}")]
    Systemctl {
        /// Its arguments.
        args: String,
        /// What it printed (or why it could not run).
        output: String,
    },
}

/// The state `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Running (under systemd, or a process of the unit's command without it).
    Running {
        /// The process ids, when found without systemd.
        pids: Vec<u32>,
    },
    /// Installed, not running.
    Stopped,
    /// systemd answered something else (`activating`, `failed`, …).
    Other(String),
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The unit file.
    pub unit_path: PathBuf,
    /// Its `ExecStart` command line.
    pub command: Vec<String>,
    /// The state.
    pub state: ServiceState,
    /// Whether systemd was asked (else the state comes from `/proc`).
    pub systemd: bool,
}

/// The system's service manager as far as runnel uses it.
#[derive(Debug, Clone)]
pub struct Systemd {
    unit_dir: PathBuf,
    /// Where else units are looked for: packages install theirs under `/lib/systemd/system`.
    vendor_dirs: Vec<PathBuf>,
    running: bool,
}

impl Systemd {
    /// This machine: units in `/etc/systemd/system` (or `$RUNNEL_SYSTEMD_UNIT_DIR`); systemd is
    /// running when `/run/systemd/system` exists (`sd_booted()`).
    pub fn detect() -> Self {
        let custom = std::env::var_os(UNIT_DIR_ENV).filter(|dir| !dir.is_empty());
        let vendor_dirs = if custom.is_some() {
            Vec::new()
        } else {
            vec![
                PathBuf::from("/lib/systemd/system"),
                PathBuf::from("/usr/lib/systemd/system"),
            ]
        };
        Self {
            unit_dir: custom.map_or_else(|| PathBuf::from("/etc/systemd/system"), PathBuf::from),
            vendor_dirs,
            running: Path::new("/run/systemd/system").is_dir(),
        }
    }

    /// Whether systemd manages this machine.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The unit file of service `name`.
    pub fn unit_path(&self, name: &str) -> PathBuf {
        self.unit_dir.join(format!("{name}.service"))
    }

    /// Writes the unit (mode 0644), then enables it when systemd runs. Returns the unit file.
    pub fn install(&self, spec: &UnitSpec) -> Result<PathBuf, ServiceError> {
        let path = self.unit_path(&spec.name);
        if path.exists() {
            return Err(ServiceError::AlreadyInstalled {
                name: spec.name.clone(),
                path,
            });
        }
        write_unit(&path, &spec.render()).map_err(|source| ServiceError::Write {
            path: path.clone(),
            source,
        })?;
        if self.running {
            let unit = format!("{}.service", spec.name);
            systemctl(&["enable", &unit])?;
            systemctl(&["daemon-reload"])?;
        }
        Ok(path)
    }

    /// Disables (when systemd runs) and removes the unit.
    pub fn uninstall(&self, name: &str) -> Result<PathBuf, ServiceError> {
        let path = self.existing_unit(name)?;
        if !path.starts_with(&self.unit_dir) {
            return Err(ServiceError::Packaged { path });
        }
        if self.running {
            systemctl(&["disable", &format!("{name}.service")])?;
        }
        std::fs::remove_file(&path).map_err(|source| ServiceError::UnitFile {
            action: "remove",
            path: path.clone(),
            source,
        })?;
        if self.running {
            systemctl(&["daemon-reload"])?;
        }
        Ok(path)
    }

    /// `systemctl start|stop|restart <name>.service`.
    pub fn control(&self, name: &str, action: &str) -> Result<(), ServiceError> {
        let path = self.existing_unit(name)?;
        if !self.running {
            return Err(ServiceError::NoSystemd {
                pid1: pid1(),
                action: action.to_owned(),
                command: self.command_line(&path).join(" "),
            });
        }
        systemctl(&[action, &format!("{name}.service")])
    }

    /// The service's state: systemd's answer, else the processes running the unit's command.
    pub fn status(&self, name: &str) -> Result<StatusReport, ServiceError> {
        let path = self.existing_unit(name)?;
        let command = self.command_line(&path);
        let state = if self.running {
            let output = Command::new("systemctl")
                .args(["is-active", &format!("{name}.service")])
                .output()
                .map_err(|err| ServiceError::Systemctl {
                    args: "is-active".into(),
                    output: err.to_string(),
                })?;
            match String::from_utf8_lossy(&output.stdout).trim() {
                "active" | "reloading" => ServiceState::Running { pids: Vec::new() },
                "inactive" => ServiceState::Stopped,
                other => ServiceState::Other(other.to_owned()),
            }
        } else {
            let pids = processes_running(name);
            if pids.is_empty() {
                ServiceState::Stopped
            } else {
                ServiceState::Running { pids }
            }
        };
        Ok(StatusReport {
            unit_path: path,
            command,
            state,
            systemd: self.running,
        })
    }

    /// The unit of `name`: the one `install` writes, else a package's (systemd's order).
    fn existing_unit(&self, name: &str) -> Result<PathBuf, ServiceError> {
        let path = self.unit_path(name);
        let file = format!("{name}.service");
        std::iter::once(path.clone())
            .chain(self.vendor_dirs.iter().map(|dir| dir.join(&file)))
            .find(|candidate| candidate.is_file())
            .ok_or(ServiceError::NotInstalled {
                name: name.to_owned(),
                path,
            })
    }

    fn command_line(&self, path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|unit| parse_exec_start(&unit))
            .unwrap_or_default()
    }
}

fn write_unit(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

fn systemctl(args: &[&str]) -> Result<(), ServiceError> {
    let output = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|err| ServiceError::Systemctl {
            args: args.join(" "),
            output: err.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(ServiceError::Systemctl {
        args: args.join(" "),
        output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// The command name of PID 1.
fn pid1() -> String {
    std::fs::read_to_string("/proc/1/comm")
        .map(|comm| comm.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Processes whose command line is `… run … --service <name> …`: the service started by hand or
/// by another supervisor.
fn processes_running(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.iter().any(|a| *a == b"run")
                && args
                    .windows(2)
                    .any(|w| w[0] == b"--service" && w[1] == name.as_bytes())
        })
        .collect();
    pids.sort_unstable();
    pids
}
