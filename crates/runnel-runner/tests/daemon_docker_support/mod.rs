//! What the daemon's Docker test files share: a daemon with one docker runner.

use std::sync::Arc;

use runnel_runner::daemon::{Control, RunOptions, Shutdown, run_controlled};
use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::test_support::FakeGitLab;
use tokio::sync::mpsc;

/// Runs a daemon with one docker runner until `jobs` reach a final state, then stops it.
pub(crate) async fn run_docker_jobs(fake: &FakeGitLab, docker_section: &str, jobs: &[u64]) {
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    let config = format!(
        "concurrent = 2\ncheck_interval = 1\n[[runners]]\n  name = \"docker-runner\"\n  url = \"{}\"\n  token = \"{token}\"\n  executor = \"docker\"\n  builds_dir = \"{}\"\n  cache_dir = \"{}\"\n  [runners.docker]\n{docker_section}\n",
        fake.url(),
        dir.path().join("builds").display(),
        dir.path().join("cache").display(),
    );
    std::fs::write(&config_path, config).expect("write config");
    let (control, rx) = mpsc::channel(4);
    let options = RunOptions {
        config_path,
        listen_address: None,
    };
    let handle = tokio::spawn(async move {
        run_controlled(options, Arc::new(RunnerExecutors::new()), rx)
            .await
            .expect("the daemon runs")
    });
    for id in jobs {
        fake.wait_for_final(*id).await;
    }
    let _ = control.send(Control::Graceful).await;
    assert_eq!(handle.await.expect("the daemon task"), Shutdown::Graceful);
}
