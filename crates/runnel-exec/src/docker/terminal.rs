//! The Docker executor's web terminal: `docker exec` of the build shell with a TTY into the
//! running job container.
//!
//! GitLab: gitlab-runner `executors/docker/terminal.go` waits (15 s) for the build container to
//! run, then execs `BuildShell.DockerCommand` in it with a TTY; the terminal ends when that
//! container exits. runnel does the same, and also starts the shell in the project directory
//! with the job's variables (gitlab-runner's container has them in its environment).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptionsBuilder;
use futures_util::TryStreamExt;
use tokio::time::Instant;
use tokio_util::io::StreamReader;

use super::container::DETECT_SHELL_SCRIPT;
use super::error::DockerError;
use crate::error::ExecError;
use crate::store::BoxFuture;
use crate::terminal::{TerminalIo, TerminalOpener};

/// How long a terminal waits for the job container to run (gitlab-runner's
/// `waitForContainerTimeout`).
const CONTAINER_WAIT: Duration = Duration::from_secs(15);

/// The id of the job container, shared between the executor (which creates it) and its
/// terminal.
pub(crate) type SharedContainer = Arc<Mutex<Option<String>>>;

/// Opens shells in a job's container.
#[derive(Debug)]
pub(crate) struct DockerTerminal {
    pub(crate) docker: Docker,
    pub(crate) container: SharedContainer,
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: String,
}

impl DockerTerminal {
    /// The job container once it runs, for at most [`CONTAINER_WAIT`].
    async fn running_container(&self) -> Result<String, DockerError> {
        let deadline = Instant::now() + CONTAINER_WAIT;
        loop {
            let id = self.container.lock().ok().and_then(|id| id.clone());
            if let Some(id) = id {
                let inspected = self
                    .docker
                    .inspect_container(&id, None)
                    .await
                    .map_err(DockerError::api("inspect the job container"))?;
                if inspected.state.and_then(|s| s.running) == Some(true) {
                    return Ok(id);
                }
            }
            if Instant::now() >= deadline {
                return Err(DockerError::Job {
                    reason: runnel_api::FailureReason::RunnerSystemFailure,
                    message: "timeout for waiting for build container".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn exec(&self) -> Result<TerminalIo, DockerError> {
        let id = self.running_container().await?;
        let options = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            env: Some(self.env.clone()),
            working_dir: Some(self.working_dir.clone()),
            cmd: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                DETECT_SHELL_SCRIPT.to_owned(),
            ]),
            ..CreateExecOptions::default()
        };
        let exec = self
            .docker
            .create_exec(&id, options)
            .await
            .map_err(DockerError::api("create the terminal exec"))?;
        let start = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&exec.id, Some(start))
            .await
            .map_err(DockerError::api("start the terminal exec"))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::NotPrepared);
        };
        let size = ResizeExecOptionsBuilder::new().h(24).w(80).build();
        let _ = self.docker.resize_exec(&exec.id, size).await;
        let output = output
            .map_ok(bollard::container::LogOutput::into_bytes)
            .map_err(std::io::Error::other);
        Ok(TerminalIo {
            output: Box::pin(StreamReader::new(output)),
            input,
            // Closing the attach connection hangs the exec'd shell up; the container goes at
            // the job's cleanup.
            guard: Box::new(()),
        })
    }
}

impl TerminalOpener for DockerTerminal {
    fn open(&self) -> BoxFuture<'_, Result<TerminalIo, ExecError>> {
        Box::pin(async move { self.exec().await.map_err(ExecError::from) })
    }
}
