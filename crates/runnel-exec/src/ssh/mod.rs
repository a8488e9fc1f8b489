//! The SSH executor (GitLab: gitlab-runner `executors/ssh`, `helpers/ssh`): each build-stage
//! script runs in `bash` on a remote host, under the remote builds directory, over an SSH
//! connection made with russh (no `ssh` program is needed on this host).
//!
//! Where the work happens. runnel does the helper stages on this host, as for every
//! executor: it fetches the sources, restores caches and downloads artifacts into its own
//! copy of the project directory, and archives caches and uploads artifacts from it. The
//! scripts run on the remote host in a copy of that directory under the remote `builds_dir`
//! (`~/builds` by default, laid out as on this host: `<builds_dir>/<short token>/<concurrent
//! id>/<namespace>/<project>`); `CI_PROJECT_DIR`, `CI_BUILDS_DIR`, `RUNNER_TEMP_PROJECT_DIR`,
//! file variables and `GITLAB_ENV` name the remote paths. The two copies are kept in step
//! over the same connection (`sync`): before a stage the project and temporary directories
//! go to the remote host if runnel changed them, after a stage they come back. So the remote
//! host needs `bash`, `tar` and `gzip`, but no git, no credentials and no gitlab-runner
//! binary, and artifacts and caches reach the coordinator from the runner as with the other
//! executors. (gitlab-runner instead clones and uploads from the remote host, which needs
//! `gitlab-runner` installed there, and does not support caches over SSH.)
//!
//! How a script is stopped: see `stage` — cancel, timeout and a lost connection all end the
//! remote process group. A connection that drops while a stage runs is a
//! `runner_system_failure` naming the host and the stage.

mod client;
mod config;
mod error;
mod executor;
mod probe;
mod stage;
mod sync;

pub use config::{SshConfig, parse_port};
pub use error::SshError;
pub use executor::SshExecutor;
pub(crate) use executor::verify;
pub use probe::TestSshd;
