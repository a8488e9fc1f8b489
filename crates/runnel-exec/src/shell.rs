//! The shell executor: scripts run in `bash` (or `sh`) on this host, each in its own process
//! group (GitLab: gitlab-runner `executors/shell`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::process::{KillPolicy, ScriptEnd, run_script};
use crate::run_as::RunAs;
use crate::store::BoxFuture;
use crate::terminal::{PtyTerminal, TerminalOpener};
use crate::trace::Trace;

/// Settings of the shell executor.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The shell to use; `None` finds `bash`, then `sh`, on `PATH`.
    pub shell: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL when a script is stopped.
    pub kill_grace: Duration,
}

impl Default for ShellConfig {
    fn default() -> Self {
        Self {
            shell: None,
            kill_grace: Duration::from_secs(10),
        }
    }
}

/// Runs build-stage scripts on this host.
#[derive(Debug, Default)]
pub struct ShellExecutor {
    config: ShellConfig,
    shell: Option<PathBuf>,
    run_as: Option<RunAs>,
}

impl ShellExecutor {
    /// A shell executor with `config`.
    pub fn new(config: ShellConfig) -> Self {
        Self {
            config,
            shell: None,
            run_as: None,
        }
    }

    /// Runs the scripts as `user` through `su`, in a login shell (gitlab-runner's `run --user`).
    pub fn run_as(mut self, user: Option<RunAs>) -> Self {
        self.run_as = user;
        self
    }
}

/// The first of `names` found on `PATH` (no process is spawned).
fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Executor for ShellExecutor {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn prepare<'a>(
        &'a mut self,
        _job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let shell = match &self.config.shell {
                Some(shell) if is_executable(shell) => Some(shell.clone()),
                Some(shell) => {
                    return Err(ExecError::Prepare {
                        executor: "shell",
                        source: format!(
                            "the shell `{}` is not an executable file",
                            shell.display()
                        )
                        .into(),
                    });
                }
                None => find_on_path(&["bash", "sh"]),
            };
            let Some(shell) = shell else {
                return Err(ExecError::Prepare {
                    executor: "shell",
                    source: "no `bash` or `sh` found on PATH".into(),
                });
            };
            let name = shell
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            trace.println(&format!("Using Shell ({name}) executor..."));
            if let Some(user) = &self.run_as {
                trace.println(&format!("Running as user `{}`", user.name));
            }
            self.shell = Some(shell);
            Ok(())
        })
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        Box::pin(async move {
            let shell = self.shell.clone().ok_or_else(|| ExecError::Prepare {
                executor: "shell",
                source: "`run` called before `prepare`".into(),
            })?;
            // The script goes to a file: bash reads a pipe one byte at a time (so that commands
            // reading stdin get the rest), which costs a system call per byte of exports.
            let path = job.tmp_dir.join(format!("script-{}.sh", stage.name));
            std::fs::write(&path, stage.script.as_bytes())
                .map_err(ExecError::io("write the stage script", &path))?;
            let mut cmd = match &self.run_as {
                Some(user) => {
                    // What runnel made for the job since the last script (checkout, caches,
                    // artifacts, file variables, this script) becomes the user's.
                    for dir in [&job.project_dir, &job.tmp_dir] {
                        user.chown_tree(dir)
                            .map_err(ExecError::io("give the job user", dir))?;
                    }
                    user.command(&shell, &path)
                }
                None => {
                    let mut cmd = Command::new(&shell);
                    if shell.file_name().is_some_and(|n| n == "bash") {
                        cmd.args(["--noprofile", "--norc"]);
                    }
                    cmd.arg(&path);
                    cmd
                }
            };
            if job.project_dir.is_dir() {
                cmd.current_dir(&job.project_dir);
            }
            let policy = KillPolicy::with_grace(self.config.kill_grace);
            let end = run_script(cmd, None, trace, &stage.cancel, stage.deadline, policy).await;
            let _ = std::fs::remove_file(&path);
            end
        })
    }

    fn terminal(&self, job: &PreparedJob) -> Option<Arc<dyn TerminalOpener>> {
        // gitlab-runner `executors/shell/shell_terminal.go`: the build shell as a login shell
        // on a pty (as the job user through `su` with `run --user`). Unlike gitlab-runner, the
        // shell starts in the project directory with the job's variables.
        let shell = self.shell.as_ref()?.to_string_lossy().into_owned();
        let command = match &self.run_as {
            Some(user) => vec![
                "su".to_owned(),
                "-s".to_owned(),
                shell.clone(),
                user.name.clone(),
                "-c".to_owned(),
                format!("{} -l", crate::script::shell_quote(&shell)),
            ],
            None => vec![shell, "-l".to_owned()],
        };
        Some(Arc::new(PtyTerminal {
            command,
            dir: job.project_dir.clone(),
            env: job.variables.exports().0,
        }))
    }

    fn cleanup<'a>(&'a mut self, _job: &'a PreparedJob) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
