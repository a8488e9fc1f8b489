//! The SSH executor (GitLab: gitlab-runner `executors/ssh`, `helpers/ssh`): each build-stage
//! script runs in `bash` on a remote host, under the remote builds directory, over an SSH
//! connection made with russh (no `ssh` program is needed on this host).
//!
//! Where the work happens. The scripts run on the remote host in the remote `builds_dir`
//! (`~/builds` by default, laid out as on this host: `<builds_dir>/<short token>/<concurrent
//! id>/<namespace>/<project>`); `CI_PROJECT_DIR`, `CI_BUILDS_DIR`, `RUNNER_TEMP_PROJECT_DIR`,
//! file variables and `GITLAB_ENV` name the remote paths.
//!
//! - Sources, under the daemon (a job from GitLab): as gitlab-runner does, the remote host
//!   clones or fetches the project itself, with `git` and the job token's URL, into its own
//!   project directory, which stays there between jobs (`GIT_STRATEGY` `fetch` reuses it,
//!   `none` leaves it as the last job left it): `get_sources` runs there as a git script
//!   (`git_script`), and nothing of this host's copy is sent before it.
//! - Sources, under `runnel exec` (a local pipeline, no Git remote to fetch from): runnel copies
//!   the working tree into its copy of the project directory on this host, which is then sent
//!   to the remote host, as gitlab-ci-local does with its local runs.
//! - Caches and artifacts: runnel restores and archives caches and downloads and uploads
//!   artifacts on this host, in its own copy of the project directory, as for every executor.
//!   The two copies are kept in step over the same connection (`sync`): before a stage the
//!   project and temporary directories go to the remote host if runnel changed them, after a
//!   stage they come back. So the remote host needs `bash`, `tar`, `gzip` (and `git` for
//!   jobs from GitLab), but no gitlab-runner binary and no cache credentials, and artifacts and
//!   caches reach the coordinator from the runner as with the other executors. (gitlab-runner
//!   uploads artifacts from the remote host, which needs `gitlab-runner` installed there, and
//!   does not support caches over SSH.)
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
