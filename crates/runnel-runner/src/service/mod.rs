//! `runnel install`/`uninstall`/`start`/`stop`/`restart`/`status`: the runner as a system
//! service, as gitlab-runner manages itself (`commands/service.go`, `commands/service_linux.go`
//! and the systemd template of `github.com/kardianos/service`). On Linux that is a systemd unit.

mod systemd;
mod unit;

pub use systemd::{ServiceError, ServiceState, StatusReport, Systemd, UNIT_DIR_ENV};
pub use unit::{UnitSpec, parse_exec_start};
