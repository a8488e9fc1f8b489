//! What the daemon's Docker test files share: a daemon with one docker runner.

use std::sync::Arc;

use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::test_support::{FakeGitLab, TestDaemon};

/// Runs a daemon with one docker runner until `jobs` reach a final state, then stops it.
pub(crate) async fn run_docker_jobs(fake: &FakeGitLab, docker_section: &str, jobs: &[u64]) {
    let token = fake.create_runner();
    let daemon = TestDaemon::with_one_runner(
        fake,
        &token,
        ("docker", Arc::new(RunnerExecutors::new())),
        "docker-runner",
        "concurrent = 2\ncheck_interval = 1",
        &format!("  [runners.docker]\n{docker_section}"),
    );
    for id in jobs {
        fake.wait_for_final(*id).await;
    }
    daemon.stop().await;
}
