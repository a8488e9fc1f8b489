//! One job's session: its id and token, the terminal the executor offers, and the one
//! connection that may use it (gitlab-runner `session/session.go`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use runnel_exec::{BoxFuture, TerminalOpener, TerminalSession};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One job's web-terminal session.
#[derive(Debug)]
pub struct JobSession {
    pub(super) id: String,
    pub(super) token: String,
    timeout: Duration,
    state: Mutex<State>,
    /// Told when the executor offers its terminal.
    pub(super) terminal_set: Notify,
    /// Told when a connection ends.
    disconnected: Notify,
    /// Cancelled when the session ends (its job is over): every connection closes.
    pub(super) end: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    terminal: Option<Arc<dyn TerminalOpener>>,
    /// The connected terminal.
    connection: Option<Connection>,
    /// Numbers the connections.
    serial: u64,
}

impl JobSession {
    pub(super) fn new(id: String, token: String, timeout: Duration) -> Self {
        Self {
            id,
            token,
            timeout,
            state: Mutex::default(),
            terminal_set: Notify::new(),
            disconnected: Notify::new(),
            end: CancellationToken::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The executor's terminal, once offered.
    pub(super) fn terminal(&self) -> Option<Arc<dyn TerminalOpener>> {
        self.state().terminal.clone()
    }

    /// Takes the one connection slot; `None` when a terminal is connected already.
    pub(super) fn connect(&self) -> Option<Connection> {
        let mut state = self.state();
        if state.connection.is_some() || self.end.is_cancelled() {
            return None;
        }
        state.serial += 1;
        let connection = Connection {
            serial: state.serial,
            stop: self.end.child_token(),
        };
        state.connection = Some(connection.clone());
        Some(connection)
    }

    /// Frees the slot `connection` took.
    pub(super) fn disconnect(&self, connection: &Connection) {
        {
            let mut state = self.state();
            if state
                .connection
                .as_ref()
                .is_some_and(|current| current.serial == connection.serial)
            {
                state.connection = None;
            }
        }
        connection.stop.cancel();
        self.disconnected.notify_waiters();
    }
}

/// The connected terminal of a session.
#[derive(Debug, Clone)]
pub(super) struct Connection {
    serial: u64,
    /// Cancelled to close the connection (the session ended, or timed out).
    pub(super) stop: CancellationToken,
}

impl TerminalSession for JobSession {
    fn set_terminal(&self, opener: Arc<dyn TerminalOpener>) {
        self.state().terminal = Some(opener);
        self.terminal_set.notify_waiters();
    }

    fn is_connected(&self) -> bool {
        self.state().connection.is_some()
    }

    fn disconnected(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let notified = self.disconnected.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !self.is_connected() {
                    return;
                }
                notified.await;
            }
        })
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn close(&self) {
        self.end.cancel();
    }

    fn kill(&self) {
        if let Some(connection) = &self.state().connection {
            connection.stop.cancel();
        }
    }
}
