//! [`SshExecutor`]: the [`Executor`] that runs a job's scripts on a remote host over SSH.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::Session;
use super::config::SshConfig;
use super::error::SshError;
use super::stage::{remove_tmp_dir, run_stage};
use super::sync::{Mirror, sh};
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::store::BoxFuture;
use crate::trace::Trace;

/// How long `cleanup` may take to remove the remote temporary directory.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs build-stage scripts on a remote host, with a copy of the project directory there.
#[derive(Debug)]
pub struct SshExecutor {
    config: SshConfig,
    name: &'static str,
    session: Option<Session>,
    remote_builds: Option<PathBuf>,
    mirror: Mirror,
}

impl SshExecutor {
    /// An SSH executor with `config`. The connection is made in `prepare`.
    pub fn new(config: SshConfig) -> Self {
        Self::named(config, "ssh")
    }

    /// An SSH executor reporting as `name` (the VirtualBox and Parallels executors).
    pub(crate) fn named(config: SshConfig, name: &'static str) -> Self {
        Self {
            config,
            name,
            session: None,
            remote_builds: None,
            mirror: Mirror::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// Connects, logs in and finds the remote builds directory (prints nothing).
    pub(crate) async fn connect(&mut self) -> Result<(), SshError> {
        let session = Session::connect(&self.config).await?;
        // GitLab: the SSH executors need bash on the remote host (`Shell: "bash"`). A relative
        // `builds_dir` is under the remote user's home, gitlab-runner's `~/builds`.
        let probe = session
            .capture(
                &sh("command -v bash >/dev/null 2>&1 || { echo 'bash is not installed' >&2; exit 1; }; command -v tar >/dev/null 2>&1 || { echo 'tar is not installed' >&2; exit 1; }; printf '%s' \"$HOME\""),
                b"",
            )
            .await?;
        if probe.code != Some(0) {
            let target = session.target().to_owned();
            session.close().await;
            return Err(SshError::Remote {
                target,
                action: "check the remote host",
                message: probe.stderr_text(),
            });
        }
        let home = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());
        self.remote_builds = Some(resolve_builds_dir(&home, &self.config.builds_dir));
        self.session = Some(session);
        Ok(())
    }

    async fn run_stage(
        &mut self,
        job: &PreparedJob,
        stage: StageRun,
        trace: &mut Trace,
    ) -> Result<ScriptEnd, SshError> {
        let session = self.session.as_ref().ok_or(SshError::NotConnected)?;
        let lost = |err: SshError, session: &Session| {
            if session.is_closed() {
                SshError::ConnectionLost {
                    target: session.target().to_owned(),
                    stage: stage.name.clone(),
                }
            } else {
                err
            }
        };
        self.mirror
            .upload(session, job)
            .await
            .map_err(|err| lost(err, session))?;
        let end = run_stage(session, job, &stage, self.config.kill_grace, trace).await?;
        self.mirror
            .download(session, job)
            .await
            .map_err(|err| lost(err, session))?;
        Ok(end)
    }
}

/// Connects and runs `exit`, as gitlab-runner's `verifyMachine` does for a fresh VM.
pub(crate) async fn verify(config: &SshConfig) -> Result<(), SshError> {
    let session = Session::connect(config).await?;
    let result = session.capture("exit", b"").await;
    session.close().await;
    result.map(drop)
}

/// The remote builds directory: `builds_dir`, relative to `home` unless absolute.
fn resolve_builds_dir(home: &Path, builds_dir: &Path) -> PathBuf {
    if builds_dir.is_absolute() {
        builds_dir.to_path_buf()
    } else {
        home.join(builds_dir)
    }
}

impl Executor for SshExecutor {
    fn name(&self) -> &'static str {
        self.name
    }

    fn prepare<'a>(
        &'a mut self,
        _job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            trace.println("Using SSH executor...");
            let name = self.name;
            self.connect().await.map_err(|err| err.preparing(name))
        })
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        Box::pin(async move {
            let name = self.name;
            self.run_stage(job, stage, trace)
                .await
                .map_err(|err| err.running(name))
        })
    }

    fn remote_builds_dir(&self) -> Option<PathBuf> {
        self.remote_builds.clone()
    }

    fn fetch_sources_remotely(&mut self) -> bool {
        self.mirror.keep_remote_project();
        true
    }

    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(session) = self.session.take() else {
                return;
            };
            // The remote temporary directory holds the file variables.
            if !session.is_closed() && self.remote_builds.is_some() {
                let removed = tokio::time::timeout(
                    CLEANUP_TIMEOUT,
                    session.capture(&remove_tmp_dir(job), b""),
                )
                .await;
                if !matches!(removed, Ok(Ok(_))) {
                    tracing::warn!(
                        target = session.target(),
                        "cannot remove the remote temporary directory"
                    );
                }
            }
            session.close().await;
        })
    }
}
