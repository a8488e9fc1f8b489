//! Executor conformance suite, modelled on gitlab-runner's `common/buildtest`: every executor
//! must pass every case. Add an executor to [`executors`] to run the suite against it.

mod archives;
mod https_repo;
mod jobs;
mod processes;
mod sources;

use std::path::Path;
use std::time::Duration;

use runnel_exec::test_support::MakeExecutor;
pub(crate) use runnel_exec::test_support::{project_dir, run, run_with};

/// The project directory as the scripts see it: the same path.
pub(crate) fn script_project_dir(
    project: &runnel_exec::test_support::TestProject,
) -> std::path::PathBuf {
    project_dir(project)
}
use runnel_exec::{ShellConfig, ShellExecutor};

/// The executors under test.
pub(crate) fn executors() -> Vec<(&'static str, MakeExecutor)> {
    vec![("shell", || {
        Box::new(ShellExecutor::new(ShellConfig {
            shell: None,
            kill_grace: Duration::from_secs(2),
        }))
    })]
}

/// Whether process `pid` is alive and not a zombie.
pub(crate) fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state.is_some_and(|s| s != "Z")
}

/// Reads a pid written by a job.
pub(crate) fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}
