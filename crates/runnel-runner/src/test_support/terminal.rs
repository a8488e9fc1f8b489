//! A web-terminal client as GitLab (workhorse) is one: it opens the `session` a job request
//! advertised over `wss://` with the session token and the `terminal.gitlab.com` subprotocol,
//! trusting only the advertised certificate.

use std::sync::Arc;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::pem::PemObject};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::FakeGitLab;

/// An open terminal.
pub type TerminalSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens the terminal of `session` (the job request's `session`) with `authorization`,
/// asking for `subprotocol`; TLS trusts only the advertised certificate. Panics when the
/// server answers with another subprotocol.
pub async fn connect_terminal_with(
    session: &Value,
    authorization: &str,
    subprotocol: &str,
) -> Result<TerminalSocket, tungstenite::Error> {
    let url = session["url"].as_str().expect("url");
    let certificate = session["certificate"].as_str().expect("certificate");
    // GitLab: Ci::BuildRunnerSession#terminal_specification — `wss://` + the URL + `/exec`.
    let wss = format!("{}/exec", url.replacen("https://", "wss://", 1));
    let mut request = wss.as_str().into_client_request().expect("request");
    let headers = request.headers_mut();
    headers.insert("Authorization", authorization.parse().expect("header"));
    headers.insert(
        "Sec-WebSocket-Protocol",
        subprotocol.parse().expect("header"),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certificate.as_bytes()).expect("a PEM certificate"))
        .expect("the session certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let authority = url.trim_start_matches("https://");
    let host_port = authority.split('/').next().expect("host:port");
    let (host, _) = host_port.rsplit_once(':').expect("a port");
    let tcp = TcpStream::connect(host_port).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("server name");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS with the advertised certificate");
    let (socket, response) = tokio_tungstenite::client_async(request, tls).await?;
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some(subprotocol)
    );
    Ok(socket)
}

/// [`connect_terminal_with`] the binary subprotocol, `terminal.gitlab.com`.
pub async fn connect_terminal(
    session: &Value,
    authorization: &str,
) -> Result<TerminalSocket, tungstenite::Error> {
    connect_terminal_with(session, authorization, "terminal.gitlab.com").await
}

/// The session's token (`authorization`).
pub fn session_token(session: &Value) -> &str {
    session["authorization"].as_str().expect("token")
}

/// The HTTP status a terminal request was refused with; panics if it was not refused so.
pub fn refused_with(result: Result<TerminalSocket, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the terminal was opened"),
    }
}

/// The `session` the job request of `job` advertised, once its trace shows `started`.
pub async fn session_of(fake: &FakeGitLab, job: u64, started: &str) -> Value {
    fake.wait_for_trace(job, started).await;
    let session = fake
        .job(job)
        .and_then(|j| j.session)
        .expect("the job request advertised a session");
    assert!(
        session["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:") && u.contains("/session/")),
        "{session}"
    );
    session
}

/// Reads terminal output (binary frames, or base64 text frames) until it contains `needle`,
/// and returns what was read; panics if the terminal closes first.
pub async fn read_until(socket: &mut TerminalSocket, needle: &str, base64: bool) -> String {
    let mut output = String::new();
    while !output.contains(needle) {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => output.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Ok(Message::Text(text))) if base64 => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .expect("base64 output");
                output.push_str(&String::from_utf8_lossy(&bytes));
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                panic!("the terminal closed before `{needle}`: {output}")
            }
            Some(Ok(_)) => {}
        }
    }
    output
}

/// Types `keys` into the terminal (one binary frame).
pub async fn type_into(socket: &mut TerminalSocket, keys: &[u8]) {
    socket
        .send(Message::Binary(keys.to_vec().into()))
        .await
        .expect("typed");
}

/// Closes the terminal from the client's side.
pub async fn hang_up(socket: &mut TerminalSocket) {
    socket.close(None).await.expect("closed");
}

/// Checks that job `job` of `fake` succeeded with `job-done` in its trace after its connected
/// terminal kept it until `session_timeout` (shown as `timeout`, e.g. `2s`) ended the terminal.
pub async fn assert_kept_until_session_timeout(fake: &FakeGitLab, job: u64, timeout: &str) {
    let finished = fake.wait_for_final(job).await;
    let trace = fake.trace_text(job);
    assert_eq!(finished.state, super::FakeJobState::Success, "{trace}");
    assert!(trace.contains("job-done"), "{trace}");
    assert!(
        trace.contains(&format!(
            "Terminal is connected, will time out in {timeout}..."
        )),
        "{trace}"
    );
    assert!(
        trace.contains(&format!(
            "terminal session timed out (maximum time allowed - {timeout})"
        )),
        "{trace}"
    );
}

/// Reads until the server closes the terminal.
pub async fn read_to_close(socket: &mut TerminalSocket) {
    while let Some(Ok(message)) = socket.next().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}
