//! What the daemon's shell-executor test files share: a daemon with one shell runner.

use std::sync::Arc;

use runnel_runner::daemon::{Control, RunOptions, Shutdown, run_controlled};
use runnel_runner::exec_adapter::ShellJobExecutor;
use runnel_runner::test_support::FakeGitLab;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running daemon with one shell runner; its directory lives as long as it.
pub(crate) struct Daemon {
    control: mpsc::Sender<Control>,
    handle: JoinHandle<Shutdown>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon for runner `token` of `fake`; `global` and `runner` are extra TOML lines
    /// of the global section and of the `[[runners]]` entry.
    pub(crate) fn start(fake: &FakeGitLab, token: &str, global: &str, runner: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        let config = format!(
            "concurrent = 4\n{global}\n[[runners]]\n  name = \"shell-runner\"\n  url = \"{}\"\n  token = \"{token}\"\n  executor = \"shell\"\n  builds_dir = \"{}\"\n  cache_dir = \"{}\"\n{runner}\n",
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
            run_controlled(options, Arc::new(ShellJobExecutor::new()), rx)
                .await
                .expect("the daemon runs")
        });
        Self {
            control,
            handle,
            _dir: dir,
        }
    }

    /// Stops the daemon gracefully and checks that it stopped so.
    pub(crate) async fn stop(self) {
        let _ = self.control.send(Control::Graceful).await;
        assert_eq!(
            self.handle.await.expect("the daemon task"),
            Shutdown::Graceful
        );
    }
}
