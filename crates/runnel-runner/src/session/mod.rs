//! The session server (`[session_server]`): GitLab's "Debug a job" web terminal. As
//! gitlab-runner's (`session/server.go`, `session/session.go`, `commands/multi.go`): a TLS
//! server with a self-signed certificate made at start-up for the advertised host; every job
//! request advertises a new session (`https://<advertise_address>/session/<id>`, the
//! certificate, and a random authorization token); `/session/<id>/exec` is a WebSocket with the
//! `terminal.gitlab.com` or `base64.terminal.gitlab.com` subprotocol (gitlab-terminal's
//! `wrappers.go`, workhorse's `doc/channel.md`) attached to a shell in the running job's
//! environment that the executor opens. The terminal ends with its job; a finished job waits
//! for a connected terminal at most `session_timeout` (runnel-exec's `wait_for_terminal`).
//!
//! This module must not know how an executor opens its shell: it pumps bytes.

mod job_session;
mod server;
mod tls;
mod websocket;

pub use job_session::JobSession;
pub use server::{SessionError, SessionServer};
