//! The web terminal's executor side (GitLab's "Debug a job"). An executor that can open an
//! interactive shell in a running job's environment offers a [`TerminalOpener`]
//! ([`crate::Executor::terminal`]); the runner's session server is the [`TerminalSession`] that
//! connects it to GitLab, and the job waits for a connected terminal before its cleanup, as
//! gitlab-runner's `common/build.go` `waitForTerminal` does.
//!
//! This module must not know about HTTP or WebSockets: it deals in byte streams.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::context::JobContext;
use crate::error::ExecError;
use crate::steps::go_duration;
use crate::store::BoxFuture;
use crate::trace::Trace;

/// An open terminal: what the shell prints, where keystrokes go, and what ends the shell.
pub struct TerminalIo {
    /// The terminal's output; it ends when the shell is gone.
    pub output: Pin<Box<dyn AsyncRead + Send>>,
    /// The terminal's input.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Ends the shell (and what it started) when dropped.
    pub guard: Box<dyn Send + Sync>,
}

impl fmt::Debug for TerminalIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalIo").finish_non_exhaustive()
    }
}

/// Opens interactive shells in one job's environment.
pub trait TerminalOpener: Send + Sync + fmt::Debug {
    /// Starts a shell on a terminal (gitlab-runner's `InteractiveTerminal.Connect`).
    fn open(&self) -> BoxFuture<'_, Result<TerminalIo, ExecError>>;
}

/// The runner's side of one job's terminal session (its session server).
pub trait TerminalSession: Send + Sync + fmt::Debug {
    /// The job's terminal can be opened now (called once the executor is prepared).
    fn set_terminal(&self, opener: Arc<dyn TerminalOpener>);
    /// Whether a terminal is connected.
    fn is_connected(&self) -> bool;
    /// Resolves once no terminal is connected.
    fn disconnected(&self) -> BoxFuture<'_, ()>;
    /// `[session_server] session_timeout`: how long a connected terminal keeps a finished job.
    fn timeout(&self) -> Duration;
    /// Ends the connected terminal, if any.
    fn kill(&self);
    /// The job is over: ends the terminal and refuses new ones.
    fn close(&self);
}

/// gitlab-runner's `waitForTerminal`: after the last build stage and before the cleanup, a job
/// whose terminal is connected waits until it disconnects, `session_timeout` passes (at most
/// until the job's deadline), or the job is cancelled.
pub(crate) async fn wait_for_terminal(ctx: &JobContext, trace: &mut Trace, deadline: Instant) {
    let Some(session) = &ctx.terminal else {
        return;
    };
    if !session.is_connected() {
        return;
    }
    let timeout = session
        .timeout()
        .min(deadline.saturating_duration_since(Instant::now()));
    // Go's `timeout.Round(time.Second)`.
    let shown = go_duration(Duration::from_secs(
        (timeout + Duration::from_millis(500)).as_secs(),
    ));
    trace.println(&format!(
        "Terminal is connected, will time out in {shown}..."
    ));
    tokio::select! {
        () = session.disconnected() => trace.println("Terminal disconnected"),
        () = tokio::time::sleep(timeout) => {
            trace.println(&format!(
                "terminal session timed out (maximum time allowed - {shown})"
            ));
            session.kill();
        }
        () = ctx.cancel.cancelled() => session.kill(),
    }
}

/// A program started on a new pseudo-terminal: the shell executor's terminal.
#[derive(Debug, Clone)]
pub(crate) struct PtyTerminal {
    /// The program and its arguments.
    pub(crate) command: Vec<String>,
    /// Where it starts (the project directory, once it exists).
    pub(crate) dir: PathBuf,
    /// Added to the environment.
    pub(crate) env: Vec<(String, String)>,
}

impl TerminalOpener for PtyTerminal {
    fn open(&self) -> BoxFuture<'_, Result<TerminalIo, ExecError>> {
        Box::pin(async move {
            self.spawn()
                .map_err(ExecError::io("start a terminal shell in", &self.dir))
        })
    }
}

impl PtyTerminal {
    fn spawn(&self) -> io::Result<TerminalIo> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| io::Error::other("the terminal has no command"))?;
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None::<&nix::sys::termios::Termios>)
            .map_err(io::Error::from)?;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        if self.dir.is_dir() {
            command.current_dir(&self.dir);
        }
        // SAFETY: between fork and exec only async-signal-safe calls (setsid, ioctl).
        unsafe {
            command.pre_exec(|| {
                // A new session led by the shell, with the terminal as its controlling one.
                nix::unistd::setsid().map_err(io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let master = PtyMaster::new(pty.master)?;
        let (output, input) = tokio::io::split(master);
        Ok(TerminalIo {
            output: Box::pin(output),
            input: Box::pin(input),
            guard: Box::new(SessionLeader(child)),
        })
    }
}

/// The shell of a pty terminal: ending it hangs its session up and kills its process group.
struct SessionLeader(std::process::Child);

impl Drop for SessionLeader {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = killpg(group, Signal::SIGHUP);
            let _ = killpg(group, Signal::SIGKILL);
        }
        // The shell was killed: this wait is short.
        let _ = self.0.wait();
    }
}

/// The controlling side of a pty, non-blocking, on the runtime's reactor.
struct PtyMaster(AsyncFd<std::fs::File>);

impl PtyMaster {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: the `File` owns the descriptor, which stays open and the same until the
        // `AsyncFd` (which owns the `File`) is dropped.
        let registered = unsafe { AsyncFd::register(std::fs::File::from(fd)) }?;
        Ok(Self(registered))
    }
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| io::Read::read(&mut fd.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every process holding the other side is gone; that is the end.
                Ok(Err(err)) if err.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| io::Write::write(&mut fd.get_ref(), data)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
