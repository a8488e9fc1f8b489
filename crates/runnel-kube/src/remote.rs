//! Running commands in the pod's containers over `pods/exec` and `pods/attach` (WebSocket,
//! `v4`/`v5.channel.k8s.io`): the stage scripts with their output into the trace, the
//! directory copies, and the cancellation script.
//!
//! GitLab: gitlab-runner `executors/kubernetes/exec.go` (`ExecOptions`, `AttachOptions`) and
//! `kubernetes.go` (`runWithAttach`, `runWithExecLegacy`, `stageCancellationScript`).

use std::time::Duration;

use futures_util::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::KubeError;

/// The pod the commands go to.
#[derive(Clone)]
pub(crate) struct PodRef {
    pub(crate) api: Api<Pod>,
    pub(crate) name: String,
    /// The pod's namespace (for messages: `ns/name`, as gitlab-runner prints it).
    pub(crate) namespace: String,
    pub(crate) host: String,
}

impl std::fmt::Debug for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRef").field("name", &self.name).finish()
    }
}

impl PodRef {
    fn api_error(&self, action: String, source: kube::Error) -> KubeError {
        KubeError::Api {
            action,
            host: self.host.clone(),
            source,
        }
    }

    fn stream_error(
        &self,
        action: &'static str,
        container: &str,
        source: std::io::Error,
    ) -> KubeError {
        KubeError::Stream {
            action,
            container: container.to_owned(),
            pod: self.name.clone(),
            source,
        }
    }

    /// Starts `command` in `container` with standard input, output and error attached.
    pub(crate) async fn exec(
        &self,
        container: &str,
        command: Vec<String>,
    ) -> Result<AttachedProcess, KubeError> {
        let params = AttachParams::default()
            .container(container)
            .stdin(true)
            .stdout(true)
            .stderr(true);
        self.api
            .exec(&self.name, command, &params)
            .await
            .map_err(|err| {
                self.api_error(
                    format!("exec in container `{container}` of pod `{}`", self.name),
                    err,
                )
            })
    }

    /// Starts `command` in `container` on a TTY, with its standard input and output attached
    /// (the TTY merges standard error into the output).
    pub(crate) async fn exec_tty(
        &self,
        container: &str,
        command: Vec<String>,
    ) -> Result<AttachedProcess, KubeError> {
        let params = AttachParams::interactive_tty().container(container);
        self.api
            .exec(&self.name, command, &params)
            .await
            .map_err(|err| {
                self.api_error(
                    format!(
                        "exec a terminal in container `{container}` of pod `{}`",
                        self.name
                    ),
                    err,
                )
            })
    }

    /// Attaches to the main process of `container`.
    pub(crate) async fn attach(&self, container: &str) -> Result<AttachedProcess, KubeError> {
        let params = AttachParams::default()
            .container(container)
            .stdin(true)
            .stdout(true)
            .stderr(true);
        self.api.attach(&self.name, &params).await.map_err(|err| {
            self.api_error(
                format!("attach to container `{container}` of pod `{}`", self.name),
                err,
            )
        })
    }

    /// Stops the process whose pid `pid_file` in `container` records, and everything it
    /// started (found through `/proc`): `signal` first, SIGKILL after `grace`; then removes the
    /// file. Kubernetes has no API to stop an exec'd process, so this is another exec.
    pub(crate) async fn kill_recorded(
        &self,
        container: &str,
        pid_file: &str,
        signal: &str,
        grace: Duration,
    ) -> Result<(), KubeError> {
        let script = format!(
            "pid=$(cat {pid} 2>/dev/null) || exit 0
tree() {{ echo \"$1\"; for s in /proc/[0-9]*/stat; do read -r p c st pp rest < \"$s\" 2>/dev/null || continue; [ \"$pp\" = \"$1\" ] && tree \"$p\"; done; }}
pids=$(tree \"$pid\")
kill -{signal} $pids 2>/dev/null
i=0
while [ $i -lt {grace} ] && kill -0 \"$pid\" 2>/dev/null; do sleep 1; i=$((i+1)); done
kill -KILL $(tree \"$pid\") $pids 2>/dev/null
rm -f {pid}
exit 0
",
            pid = quote(pid_file),
            grace = grace.as_secs().max(1),
        );
        let command = vec!["sh".to_owned(), "-c".to_owned(), script];
        let limit = grace + Duration::from_secs(30);
        let mut sink = tokio::io::sink();
        let kill = self.run_collect(container, command, None, &mut sink);
        match tokio::time::timeout(limit, kill).await {
            Ok(done) => done.map(|_| ()),
            Err(_) => Err(KubeError::Pod(format!(
                "stopping the processes of `{pid_file}` did not finish"
            ))),
        }
    }

    /// Runs `command` in `container` with `input` on its standard input and returns its exit
    /// code and its output (standard output, then standard error).
    pub(crate) async fn run_collect(
        &self,
        container: &str,
        command: Vec<String>,
        input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        stdout_to: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<(i32, Vec<u8>), KubeError> {
        let mut process = self.exec(container, command).await?;
        let status = process.take_status();
        let mut stdin = process.stdin();
        let stdout = process.stdout();
        let stderr = process.stderr();
        let write = async {
            if let (Some(input), Some(stdin)) = (input, stdin.as_mut()) {
                tokio::io::copy(input, stdin).await?;
                stdin.shutdown().await?;
            }
            drop(stdin);
            Ok::<(), std::io::Error>(())
        };
        let read_out = async {
            if let Some(mut stdout) = stdout {
                tokio::io::copy(&mut stdout, stdout_to).await?;
            }
            stdout_to.flush().await
        };
        let read_err = async {
            let mut text = Vec::new();
            if let Some(mut stderr) = stderr {
                stderr.read_to_end(&mut text).await?;
            }
            Ok::<_, std::io::Error>(text)
        };
        let (written, out, err) = tokio::join!(write, read_out, read_err);
        written.map_err(|e| self.stream_error("write standard input", container, e))?;
        out.map_err(|e| self.stream_error("read standard output", container, e))?;
        let err = err.map_err(|e| self.stream_error("read standard error", container, e))?;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().now_or_never();
        Ok((exit_code(status.as_ref())?, err))
    }
}

/// Single-quotes `text` for `sh`.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The exit code a finished exec reports on its error channel: `Success` is 0, a
/// `NonZeroExitCode` failure carries the code in its `ExitCode` cause.
pub(crate) fn exit_code(status: Option<&Status>) -> Result<i32, KubeError> {
    let Some(status) = status else {
        return Err(KubeError::Pod(
            "the container's stream ended without an exit status (was the pod deleted?)".to_owned(),
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse::<i32>().ok());
    match (status.reason.as_deref(), code) {
        (Some("NonZeroExitCode"), Some(code)) | (_, Some(code)) => Ok(code),
        _ => Err(KubeError::Pod(format!(
            "the command failed: {}",
            status.message.clone().unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        let success = Status {
            status: Some("Success".to_owned()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&success)).ok(), Some(0));
        let failed = Status {
            status: Some("Failure".to_owned()),
            reason: Some("NonZeroExitCode".to_owned()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".to_owned()),
                    message: Some("42".to_owned()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&failed)).ok(), Some(42));
        assert!(exit_code(None).is_err());
    }
}
