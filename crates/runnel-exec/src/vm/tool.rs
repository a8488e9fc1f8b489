//! Running a hypervisor's command-line tool (`vboxmanage`, `prlctl`) and reporting its failures
//! with its error output, as gitlab-runner's `VBoxManageOutput` and `PrlctlOutput` do.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How long one call of the tool may take (cloning a VM can be slow).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// A hypervisor tool.
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    pub(crate) program: PathBuf,
}

/// Why a call of the tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started.
    #[error("failed to run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("`{command}` failed: {message}")]
    Failed {
        /// The program and its arguments.
        command: String,
        /// Its exit status and error output.
        message: String,
    },
    /// Its output did not have the expected form.
    #[error("`{command}` printed no {expected}")]
    Output {
        /// The program and its arguments.
        command: String,
        /// What was looked for.
        expected: &'static str,
    },
}

impl Tool {
    /// Runs the tool with `args` and returns its standard output.
    pub(crate) async fn output(&self, args: &[&str]) -> Result<String, ToolError> {
        let command = self.describe(args);
        tracing::debug!(%command, "running");
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| ToolError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        let output = match tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(source)) => {
                return Err(ToolError::Spawn {
                    program: self.program.display().to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(ToolError::Failed {
                    command,
                    message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
                });
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
        Err(ToolError::Failed {
            command,
            message: if stderr.is_empty() {
                status
            } else {
                format!("{status}: {stderr}")
            },
        })
    }

    /// Runs the tool, keeping only whether it succeeded.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<(), ToolError> {
        self.output(args).await.map(drop)
    }

    pub(crate) fn describe(&self, args: &[&str]) -> String {
        let mut text = self.program.display().to_string();
        for arg in args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }
}
