//! The custom executor: gitlab-runner's door to any environment (VMs, LXD, HPC schedulers)
//! through four driver programs (GitLab: gitlab-runner `executors/custom`,
//! `docs/executors/custom.md`).
//!
//! The protocol, call by call:
//! - `config_exec` (optional) prints JSON on stdout (`builds_dir`, `cache_dir`,
//!   `builds_dir_is_shared`, `hostname`, `driver{name,version}`, `job_env`, `shell`; other keys
//!   ignored; empty output is no configuration; anything else fails the preparation with the
//!   parse error). Its stderr goes to the trace. The job is derived again with its directories.
//! - `prepare_exec` (optional): stdout and stderr to the trace.
//! - `run_exec <run_args…> <script> <stage>` once per build stage, with gitlab-runner's stage
//!   names (`step_script` is handed over as `build_script`, as gitlab-runner still does).
//! - `cleanup_exec` (optional) always, also after a failed preparation; its output goes to the
//!   runner's log, its result never changes the job's.
//!
//! Every call gets runnel's environment plus `TMPDIR` (the job's private temporary
//! directory), `BUILD_FAILURE_EXIT_CODE`, `SYSTEM_FAILURE_EXIT_CODE`, `job_env`, every job
//! variable as `CUSTOM_ENV_<key>`, `CUSTOM_ENV_CI_JOB_SERVICES` and `JOB_RESPONSE_FILE` (the
//! payload as JSON). Exit code 0 succeeds; `BUILD_FAILURE_EXIT_CODE` (1) is a script failure;
//! `SYSTEM_FAILURE_EXIT_CODE` (2) and every other code are a system failure (of `config_exec`
//! and `prepare_exec`: retried twice, 3 s apart, `cleanup_exec` between tries; of `after_script`
//! and `cleanup_file_variables`: only a warning). A timeout or cancel sends SIGTERM to the
//! program's process group, SIGKILL after `graceful_kill_timeout`, and gives it up after
//! `force_kill_timeout`. When a program exits, whatever it left in its process group is ended
//! too (runnel's no-orphans rule, stricter than gitlab-runner): a driver that keeps something
//! running between calls starts it outside its group (a daemon, a VM manager, a Slurm job) and
//! removes it in `cleanup_exec`.
//!
//! Which stage does what, and where. The driver runs every stage, as in gitlab-runner:
//! `prepare_script` (prints the host it runs on), `get_sources` (the
//! `pre_get_sources_script`/`post_get_sources_script` hooks), `step_script` and the other
//! `step_*`, `after_script` and `cleanup_file_variables` (removes the file variables and the
//! temporary project directory). Each script is the same bash that the shell executor runs,
//! self-contained (exports, `cd`, `errexit`), so it works wherever the driver runs it.
//!
//! The work gitlab-runner's scripts do by calling its own binary (cloning the sources,
//! restoring and archiving caches, downloading and uploading artifacts) is done in one of two
//! places, chosen by [`CustomConfig::helper`]:
//! - the daemon (`runnel run`) sets it: `get_sources` (the clone itself), `restore_cache`,
//!   `download_artifacts`, `archive_cache*` and `upload_artifacts_*` are `run_exec` calls too,
//!   whose scripts run `runnel helper stage` in the driver's environment (see
//!   `crate::helper_stage`): git against the job's `repo_url`, caches in `cache_dir` there,
//!   artifacts over the coordinator's API. `prepare_script` also writes the file variables there.
//!   The driver's environment needs `runnel` (the runner's path or on `PATH`), `git`, and
//!   network access to GitLab — not the runner's file system. A distributed cache
//!   (`[runners.cache]` S3/GCS/Azure) is not reached from there yet: the helper keeps caches
//!   in the local `cache_dir` of the driver's environment;
//! - `runnel exec` (no coordinator: sources from the working tree, artifacts and caches in
//!   `.runnel/`) leaves it unset: runnel does that work in-process, on this host, in the builds
//!   directory `config_exec` names, which the driver's environment must see at the same path
//!   (the same machine, a shared file system as on every Slurm cluster, a bind mount). Those
//!   stages are then trace sections without a `run_exec` call, and `get_sources` calls the
//!   driver only for its hooks.
mod config;
mod driver;
mod executor;
mod sweep;

pub use config::{
    ConfigOutput, CustomConfig, DEFAULT_EXEC_TIMEOUT, DEFAULT_FORCE_KILL_TIMEOUT,
    DEFAULT_GRACEFUL_KILL_TIMEOUT, DriverInfo, PREPARATION_RETRY_INTERVAL, Program,
};
pub use driver::{BUILD_FAILURE_EXIT_CODE, SYSTEM_FAILURE_EXIT_CODE};
pub use executor::CustomExecutor;
pub use sweep::sweep_leftovers;
