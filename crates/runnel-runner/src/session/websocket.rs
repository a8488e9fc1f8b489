//! `GET /session/<id>/exec`: the terminal WebSocket (gitlab-runner `session/session.go`
//! `execHandler`), and the pump between it and the executor's shell.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use runnel_exec::TerminalIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::job_session::JobSession;
use super::server::SessionServer;

/// The subprotocols GitLab's terminal speaks (workhorse `internal/channel/channel.go`,
/// gitlab-terminal `wrappers.go`): binary frames, or base64 in text frames.
const SUBPROTOCOL: &str = "terminal.gitlab.com";
const BASE64_SUBPROTOCOL: &str = "base64.terminal.gitlab.com";
/// How long a connection waits for the executor to offer its terminal (gitlab-runner: a minute).
const TERMINAL_WAIT: Duration = Duration::from_secs(60);

/// gitlab-runner's order: unknown session 404, wrong token 401, not a WebSocket 405, no terminal
/// yet (after a minute) 503, a terminal already connected 423, a shell that cannot start 500.
pub(super) async fn exec(
    State(server): State<SessionServer>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A session whose job is over is gone, as in gitlab-runner once the build is removed.
    let Some(session) = server.get(&id).filter(|s| !s.end.is_cancelled()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let authorized = !session.token.is_empty()
        && headers
            .get(AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == session.token.as_bytes());
    if !authorized {
        tracing::warn!(session = %id, "terminal request with an invalid Authorization header");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(upgrade) = upgrade else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let Some(terminal) = wait_for_terminal(&session).await else {
        tracing::warn!(session = %id, "interactive terminal not set");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Some(connection) = session.connect() else {
        tracing::warn!(session = %id, "terminal already connected, revoking connection");
        return StatusCode::LOCKED.into_response();
    };
    let io = match terminal.open().await {
        Ok(io) => io,
        Err(err) => {
            session.disconnect(&connection);
            tracing::error!(session = %id, error = %crate::trace_patch::error_chain(&err), "failed to connect to the terminal");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    upgrade
        .protocols([SUBPROTOCOL, BASE64_SUBPROTOCOL])
        .on_upgrade(move |socket| async move {
            pump(socket, io, &connection.stop).await;
            session.disconnect(&connection);
        })
}

/// The executor's terminal, waiting for it at most [`TERMINAL_WAIT`] (a terminal request may
/// come before the executor is prepared).
async fn wait_for_terminal(
    session: &JobSession,
) -> Option<std::sync::Arc<dyn runnel_exec::TerminalOpener>> {
    let notified = session.terminal_set.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if let Some(terminal) = session.terminal() {
        return Some(terminal);
    }
    tokio::select! {
        _ = tokio::time::timeout(TERMINAL_WAIT, notified) => {}
        () = session.end.cancelled() => {}
    }
    session.terminal()
}

/// Pumps bytes between the WebSocket and the shell until either side ends or `stop` (the
/// session ended or timed out) is cancelled; then the shell is ended.
async fn pump(mut socket: WebSocket, io: TerminalIo, stop: &CancellationToken) {
    let base64 = socket
        .protocol()
        .is_some_and(|p| p.as_bytes() == BASE64_SUBPROTOCOL.as_bytes());
    let TerminalIo {
        mut output,
        mut input,
        guard,
    } = io;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            message = socket.recv() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data.to_vec(),
                    // gitlab-terminal reads text frames as data too; base64 ones are decoded.
                    Some(Ok(Message::Text(text))) if base64 => match BASE64.decode(text.as_bytes()) {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if input.write_all(&data).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
            read = output.read(&mut buffer) => {
                let message = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) if base64 => Message::Text(BASE64.encode(&buffer[..n]).into()),
                    Ok(n) => Message::Binary(buffer[..n].to_vec().into()),
                };
                if socket.send(message).await.is_err() {
                    break;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    drop((output, input, guard));
}
