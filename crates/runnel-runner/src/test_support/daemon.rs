//! The daemon run in-process for tests: [`run_controlled`] on a config file, driven through its
//! control channel instead of signals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::FakeGitLab;
use crate::daemon::{Control, RunOptions, Shutdown, run_controlled};
use crate::executor::JobExecutor;

/// A running daemon. With [`TestDaemon::with_one_runner`] it also owns the directory of its
/// config, builds and cache, removed when it is dropped.
#[derive(Debug)]
pub struct TestDaemon {
    control: mpsc::Sender<Control>,
    handle: JoinHandle<Shutdown>,
    dir: Option<tempfile::TempDir>,
}

impl TestDaemon {
    /// Starts the daemon on the config file at `config_path`, serving metrics on
    /// `listen_address` when given.
    pub fn spawn(
        config_path: PathBuf,
        listen_address: Option<String>,
        executor: Arc<dyn JobExecutor>,
    ) -> Self {
        let (control, rx) = mpsc::channel(4);
        let options = RunOptions {
            config_path,
            listen_address,
        };
        let handle = tokio::spawn(async move {
            run_controlled(options, executor, rx)
                .await
                .expect("the daemon runs")
        });
        Self {
            control,
            handle,
            dir: None,
        }
    }

    /// Writes a config.toml in a new directory and starts the daemon on it: `global` is the
    /// global section, then one runner named `name` for `token` of `fake` with `executor`, its
    /// builds and cache in that directory, and the extra lines `runner` of its entry.
    pub fn with_one_runner(
        fake: &FakeGitLab,
        token: &str,
        executor: (&str, Arc<dyn JobExecutor>),
        name: &str,
        global: &str,
        runner: &str,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        let config = one_runner_config(fake, token, dir.path(), executor.0, name, global, runner);
        std::fs::write(&config_path, config).expect("write config");
        Self {
            dir: Some(dir),
            ..Self::spawn(config_path, None, executor.1)
        }
    }

    /// The directory of [`TestDaemon::with_one_runner`].
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("a daemon with its own directory")
            .path()
    }

    /// Sends `control` to the daemon, which must still be running.
    pub async fn send(&self, control: Control) {
        self.control
            .send(control)
            .await
            .expect("the daemon is running");
    }

    /// Waits until the daemon returns.
    pub async fn join(self) -> Shutdown {
        self.handle.await.expect("the daemon task")
    }

    /// Stops the daemon gracefully (SIGQUIT) and checks that it stopped so.
    pub async fn stop(self) {
        self.send(Control::Graceful).await;
        assert_eq!(self.join().await, Shutdown::Graceful);
    }
}

/// The config.toml text of [`TestDaemon::with_one_runner`].
pub fn one_runner_config(
    fake: &FakeGitLab,
    token: &str,
    dir: &Path,
    executor: &str,
    name: &str,
    global: &str,
    runner: &str,
) -> String {
    format!(
        "{global}\n[[runners]]\n  name = \"{name}\"\n  url = \"{}\"\n  token = \"{token}\"\n  executor = \"{executor}\"\n  builds_dir = \"{}\"\n  cache_dir = \"{}\"\n{runner}\n",
        fake.url(),
        dir.join("builds").display(),
        dir.join("cache").display(),
    )
}
