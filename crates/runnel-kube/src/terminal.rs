//! The Kubernetes executor's web terminal: a shell on a TTY in the job pod's build container,
//! over `pods/exec`.
//!
//! GitLab: gitlab-runner `executors/kubernetes/terminal.go` proxies GitLab's WebSocket to a
//! `pods/exec` of `sh -c "bash || sh"` in container `build` with stdin, stdout, stderr and TTY;
//! the terminal ends when that stream closes. runnel bridges the exec's streams into a
//! [`TerminalIo`] instead and differs in three ways:
//!
//! - it does not ask for stderr: the kubelet drops stderr on a TTY anyway (its
//!   `remotecommand.NewOptions` "bypassing stderr"), and kube-rs refuses the combination;
//! - the shell starts in the project directory with the job's variables: the pod's environment
//!   has them, except those naming the job's directories (`CI_PROJECT_DIR`, `CI_BUILDS_DIR`, …),
//!   which the pod gets before the job moves to its builds directory and the shell exports
//!   itself; it is the first shell found, bash first, like the build container's own;
//! - closing the stream does not stop an exec'd process on every container runtime, so ending
//!   the terminal also stops the shell's process tree through another exec, as a canceled
//!   stage is stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::api::{AttachedProcess, TerminalSize};
use runnel_exec::{BoxFuture, ExecError, TerminalIo, TerminalOpener};

use crate::error::KubeError;
use crate::pod::{BUILD_CONTAINER, DETECT_SHELL_SCRIPT};
use crate::remote::{PodRef, quote};

/// The size a terminal starts with (GitLab's terminal does not send one).
const SIZE: TerminalSize = TerminalSize {
    width: 80,
    height: 24,
};

/// How long a terminal's processes get between SIGHUP and SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(1);

/// Opens shells in a job pod's build container.
#[derive(Debug)]
pub(crate) struct KubeTerminal {
    pub(crate) pod: PodRef,
    /// Where the shell starts: the project directory in the pod.
    pub(crate) project_dir: String,
    /// `export` lines of the job's variables that name its directories in the pod.
    pub(crate) exports: String,
    /// Numbers the shells, so that ending one never reads the pid of the next.
    pub(crate) opened: AtomicU64,
}

impl KubeTerminal {
    async fn exec(&self) -> Result<TerminalIo, KubeError> {
        let number = self.opened.fetch_add(1, Ordering::Relaxed);
        // Not in the job's temporary directory: that one is copied to and from the pod around
        // each stage, which could take the file away while the terminal is open.
        let pid_file = format!("/tmp/.runnel-terminal-{number}.pid");
        // `exec` keeps `$$` the shell's pid, so the recorded pid is the shell's.
        let script = format!(
            "echo $$ > {pid} 2>/dev/null\n{exports}cd {dir} 2>/dev/null\n{DETECT_SHELL_SCRIPT}",
            pid = quote(&pid_file),
            exports = self.exports,
            dir = quote(&self.project_dir),
        );
        let command = vec!["sh".to_owned(), "-c".to_owned(), script];
        let mut process = self.pod.exec_tty(BUILD_CONTAINER, command).await?;
        if let Some(mut size) = process.terminal_size() {
            // A full queue or a closed stream only costs the size.
            let _ = size.try_send(SIZE);
        }
        let (Some(input), Some(output)) = (process.stdin(), process.stdout()) else {
            return Err(KubeError::Pod(
                "the terminal's exec has no standard input or output".to_owned(),
            ));
        };
        Ok(TerminalIo {
            output: Box::pin(output),
            input: Box::pin(input),
            guard: Box::new(Shell {
                process: Some(process),
                pod: self.pod.clone(),
                pid_file,
            }),
        })
    }
}

impl TerminalOpener for KubeTerminal {
    fn open(&self) -> BoxFuture<'_, Result<TerminalIo, ExecError>> {
        Box::pin(async move { self.exec().await.map_err(ExecError::from) })
    }
}

/// A terminal's shell: dropping it closes the exec stream and stops the shell's processes.
struct Shell {
    process: Option<AttachedProcess>,
    pod: PodRef,
    pid_file: String,
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Aborts the stream's task, which closes the connection.
        drop(self.process.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pod, pid_file) = (self.pod.clone(), std::mem::take(&mut self.pid_file));
        // Nothing waits for this: the job's cleanup deletes the pod anyway, and a pod already
        // gone is fine.
        runtime.spawn(async move {
            if let Err(err) = pod
                .kill_recorded(BUILD_CONTAINER, &pid_file, "HUP", HANGUP_GRACE)
                .await
            {
                tracing::debug!(pod = %pod.name, error = %err, "cannot stop the terminal's processes");
            }
        });
    }
}
