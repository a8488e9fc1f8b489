//! The executor conformance suite (`tests/conformance/`) run against the SSH executor, logging
//! in as root to the test sshd on 127.0.0.1 (`scripts/start-sshd.sh`). The remote host is this
//! machine; the remote builds directory is another directory than runnel's own copy, so every
//! case goes through the copying both ways. The process cases (timeout and cancel with remote
//! pids) are in `tests/ssh.rs`: the shared ones give a job one second, which includes the
//! connection.
//!
//! The cases live in `ssh::…` so their names contain `ssh`.

use std::path::PathBuf;

use runnel_exec::ssh::{SshExecutor, TestSshd};
use runnel_exec::test_support::{MakeExecutor, TestProject};
pub(crate) use runnel_exec::test_support::{project_dir, run, run_with};

#[path = "conformance/https_repo.rs"]
mod https_repo;

#[path = "conformance"]
mod ssh {
    mod archives;
    mod jobs;
    mod sources;
}

/// The remote builds directory of the executors made on this thread (a test's).
fn remote_builds() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    std::env::temp_dir()
        .join("runnel-ssh-tests")
        .join(format!("{}-{thread}", std::process::id()))
}

/// The SSH executor, when the test sshd answers.
pub(crate) fn executors() -> Vec<(&'static str, MakeExecutor)> {
    if TestSshd::find().is_none() {
        return Vec::new();
    }
    vec![("ssh", || {
        let sshd = TestSshd::find().expect("the sshd answered a moment ago");
        let scratch = remote_builds();
        let mut config = sshd.root_config(&scratch);
        config.builds_dir = scratch.join("builds");
        Box::new(SshExecutor::new(config))
    })]
}

/// The project directory as the scripts see it: under the remote builds directory.
pub(crate) fn script_project_dir(_project: &TestProject) -> PathBuf {
    remote_builds().join("builds/acme/app")
}
