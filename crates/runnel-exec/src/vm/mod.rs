//! The VirtualBox and Parallels executors: a VM per job slot (or per job), driven through the
//! hypervisor's command-line tool (`vboxmanage`, `prlctl`) exactly as gitlab-runner drives it,
//! with the job's scripts run in the VM by the SSH executor.

mod image;
mod lifecycle;
mod parallels;
mod prlctl;
#[cfg(feature = "test-support")]
mod standin;
mod tool;
mod vboxmanage;
mod virtualbox;

pub use image::VmOwner;
pub use parallels::{ParallelsConfig, ParallelsExecutor, sweep_parallels};
pub use prlctl::{DHCP_LEASES, DHCP_LEASES_ENV};
#[cfg(feature = "test-support")]
pub use standin::StandIn;
pub use tool::ToolError;
pub use virtualbox::{VirtualBoxConfig, VirtualBoxExecutor, sweep_virtualbox};
