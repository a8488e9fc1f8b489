//! What the daemon's shell-executor test files share: a daemon with one shell runner.

use std::sync::Arc;

use runnel_runner::exec_adapter::ShellJobExecutor;
use runnel_runner::test_support::{FakeGitLab, TestDaemon};

/// Starts a daemon for runner `token` of `fake`; `global` and `runner` are extra TOML lines
/// of the global section and of the `[[runners]]` entry.
pub(crate) fn start_shell_daemon(
    fake: &FakeGitLab,
    token: &str,
    global: &str,
    runner: &str,
) -> TestDaemon {
    TestDaemon::with_one_runner(
        fake,
        token,
        ("shell", Arc::new(ShellJobExecutor::new())),
        "shell-runner",
        &format!("concurrent = 4\n{global}"),
        runner,
    )
}
