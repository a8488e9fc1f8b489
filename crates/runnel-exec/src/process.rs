//! Running one build-stage script as a process group on this host, and making sure the whole
//! group is gone afterwards, whatever the outcome.
//!
//! GitLab: gitlab-runner `helpers/process/killer_unix.go` (SIGTERM to the group, SIGKILL after a
//! grace period) and `executors/shell/executor_shell.go`.

use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ExecError;
use crate::trace::Trace;

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptEnd {
    /// The shell exited with this code (128 + n when a signal killed it).
    Exited(i32),
    /// The deadline passed; the group was killed.
    TimedOut,
    /// The cancellation token fired; the group was killed.
    Canceled,
}

/// Limits for ending a process group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KillPolicy {
    /// Time between SIGTERM and SIGKILL.
    pub(crate) grace: Duration,
    /// How long to wait after SIGKILL before the group is abandoned.
    pub(crate) abandon: Duration,
}

impl KillPolicy {
    /// SIGKILL after `grace`; abandoned [`ABANDON_AFTER`] later.
    pub(crate) fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            abandon: ABANDON_AFTER,
        }
    }
}

/// Output that keeps arriving after SIGKILL comes from processes that left the group (`setsid`);
/// the pipe is abandoned after this long.
const ABANDON_AFTER: Duration = Duration::from_secs(2);

/// Runs `cmd` (with `script` on its stdin, when given) until it exits, is cancelled, or passes its deadline.
/// When this returns, the whole process group is gone (or was sent SIGKILL), whatever the outcome.
///
/// stdout and stderr share one pipe, so the trace keeps their order.
pub(crate) async fn run_script(
    cmd: Command,
    script: Option<&[u8]>,
    trace: &mut Trace,
    cancel: &CancellationToken,
    deadline: Instant,
    policy: KillPolicy,
) -> Result<ScriptEnd, ExecError> {
    run_program(cmd, script, None, trace, cancel, deadline, policy).await
}

/// [`run_script`], with stdout going to `stdout` instead of the trace when given (stderr still
/// goes to the trace).
pub(crate) async fn run_program(
    mut cmd: Command,
    script: Option<&[u8]>,
    stdout: Option<std::fs::File>,
    trace: &mut Trace,
    cancel: &CancellationToken,
    deadline: Instant,
    policy: KillPolicy,
) -> Result<ScriptEnd, ExecError> {
    let (reader, writer) = std::io::pipe().map_err(ExecError::Spawn)?;
    let stderr = writer.try_clone().map_err(ExecError::Spawn)?;
    let stdout = match stdout {
        Some(file) => {
            // Only stderr writes to the pipe; our copy of its write end must not keep it open.
            drop(writer);
            Stdio::from(file)
        }
        None => Stdio::from(OwnedFd::from(writer)),
    };
    cmd.process_group(0)
        .kill_on_drop(true)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(Stdio::from(OwnedFd::from(stderr)));
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
    // The command owns our copies of the write end; dropping it closes them, so EOF comes when
    // the last process of the job closes the pipe.
    drop(cmd);
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    // If this future is dropped mid-way, the guard still kills the whole group.
    let mut guard = GroupGuard(pgid);
    let mut output =
        pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(ExecError::Spawn)?;
    let mut stdin = child.stdin.take();

    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    let end = {
        let mut written = stdin.is_none();
        let write_script = async {
            if let (Some(stdin), Some(script)) = (stdin.as_mut(), script) {
                // A shell that exits early closes stdin; its exit code tells what happened.
                let _ = stdin.write_all(script).await;
                let _ = stdin.shutdown().await;
            }
        };
        tokio::pin!(write_script);
        loop {
            // Cancel and deadline come first, so a script that never stops printing cannot
            // starve them; output left in the pipe is drained by `terminate_group`.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break ScriptEnd::Canceled,
                () = tokio::time::sleep_until(deadline) => break ScriptEnd::TimedOut,
                status = child.wait() => {
                    break ScriptEnd::Exited(exit_code(status.map_err(ExecError::Wait)?));
                }
                read = output.read(&mut buf), if !eof => match read {
                    Ok(0) | Err(_) => eof = true,
                    Ok(n) => trace.write(&buf[..n]),
                },
                () = &mut write_script, if !written => written = true,
            }
        }
    };
    drop(stdin);
    if let Some(pgid) = pgid {
        terminate_group(pgid, &mut output, &mut buf, eof, trace, policy).await;
    }
    guard.0 = None;
    let _ = child.start_kill();
    let _ = child.wait().await;
    trace.flush();
    Ok(end)
}

/// Sends SIGKILL to the process group when dropped while still armed.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Ends every process left in the group: SIGTERM, drain output until the pipe closes or the
/// grace period ends, then SIGKILL if anything is left.
async fn terminate_group(
    pgid: Pid,
    output: &mut pipe::Receiver,
    buf: &mut [u8],
    mut eof: bool,
    trace: &mut Trace,
    policy: KillPolicy,
) {
    if group_alive(pgid) {
        let _ = killpg(pgid, Signal::SIGTERM);
        let _ = killpg(pgid, Signal::SIGCONT);
    }
    let grace_end = Instant::now() + policy.grace;
    while !eof {
        match tokio::time::timeout_at(grace_end, output.read(buf)).await {
            Ok(Ok(0) | Err(_)) => eof = true,
            Ok(Ok(n)) => trace.write(&buf[..n]),
            Err(_) => break,
        }
    }
    // Processes that closed their output but ignore SIGTERM: give them the rest of the grace
    // period (checked on a coarse timer, the only polling here and only in this rare case).
    while group_has_live_members(pgid) && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if group_has_live_members(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let abandon = Instant::now() + policy.abandon;
    while !eof {
        match tokio::time::timeout_at(abandon, output.read(buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => eof = true,
            Ok(Ok(n)) => trace.write(&buf[..n]),
        }
    }
    // SIGKILL is delivered asynchronously: wait until the kernel has really ended them, so that
    // "nothing is left" holds when this returns (again only in the rare SIGTERM-ignoring case).
    while group_has_live_members(pgid) && Instant::now() < abandon {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether any process is left in the group (zombies included until their parent reaps them).
fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok()
}

/// Whether a process of the group is alive and not a zombie. Orphaned zombies wait for PID 1
/// to reap them, which may never happen in a container without an init, so `/proc` decides.
fn group_has_live_members(pgid: Pid) -> bool {
    if !group_alive(pgid) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may contain spaces, so split after the last `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid.as_raw()) && state != Some("Z")
    })
}

/// The exit code as gitlab-runner reports it: the code, or 128 + signal for a killed shell.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}
