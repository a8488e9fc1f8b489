//! `pods/exec` and `pods/attach` over WebSocket, as the API server speaks them since 1.30:
//! the `v5.channel.k8s.io`, `v4.channel.k8s.io` and `channel.k8s.io` subprotocols (chosen in
//! the client's order), one leading byte per message for the channel (0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize), an empty first message on the lowest writable channel, the
//! v4 `Status` JSON on the error channel at the end (with the exit code as a `NonZeroExitCode`
//! cause, as the kubelet writes it), and the v5 close signal (255, channel) for stdin EOF.
//!
//! Kubernetes: `staging/src/k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`,
//! `staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/{websocket,exec}.go`.

use std::pin::Pin;
use std::sync::Arc;

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder, ResizeExecOptions,
};
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::crud::Query;
use super::log::{choose_container, container_status, docker_id};
use crate::kind::Kind;
use crate::shared::Shared;
use crate::status::ApiError;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The subprotocols the fake speaks, best first.
const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exec,
    Attach,
}

#[derive(Debug, Clone)]
struct Request {
    mode: Mode,
    protocol: &'static str,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// `GET|POST /api/v1/namespaces/{namespace}/pods/{name}/exec`.
pub(crate) async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open(
        shared,
        Mode::Exec,
        &namespace,
        &name,
        raw,
        &headers,
        upgrade,
    )
}

/// `GET|POST /api/v1/namespaces/{namespace}/pods/{name}/attach`.
pub(crate) async fn attach(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open(
        shared,
        Mode::Attach,
        &namespace,
        &name,
        raw,
        &headers,
        upgrade,
    )
}

fn open(
    shared: Arc<Shared>,
    mode: Mode,
    namespace: &str,
    name: &str,
    raw: Option<String>,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = Query::from_raw(raw);
    let (stdin, stdout, stderr, tty) = (
        query.flag("stdin")?,
        query.flag("stdout")?,
        query.flag("stderr")?,
        query.flag("tty")?,
    );
    // Kubernetes: the kubelet's `remotecommand.NewOptions` accepts a TTY with stderr and drops
    // stderr ("Access to exec with tty and stderr is not supported, bypassing stderr"): a TTY
    // merges it into stdout, and no stderr channel is opened.
    let stderr = stderr && !tty;
    let command = query.all("command");
    if mode == Mode::Exec && command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let pod = shared
        .store()
        .get(Kind::Pod, namespace, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let container = choose_container(&pod, query.get("container"), name)?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let mut upgrade = upgrade.map_err(|_| ApiError::bad_request("Upgrade request required"))?;
    let requested: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .filter(|p| !p.is_empty())
        .collect();
    let protocol = match requested
        .iter()
        .find_map(|r| PROTOCOLS.iter().find(|p| *p == r))
    {
        Some(protocol) => *protocol,
        None if requested.is_empty() => "",
        None => {
            return Err(ApiError::bad_request(format!(
                "requested protocol(s) are not supported: {requested:?}; supports {PROTOCOLS:?}"
            )));
        }
    };
    if !protocol.is_empty() {
        upgrade.set_selected_protocol(HeaderValue::from_static(protocol));
    }
    let status = container_status(&pod, &container).unwrap_or(Value::Null);
    let running = status.pointer("/state/running").is_some();
    let target = match (docker_id(&status), running) {
        (Some(id), true) => Ok(id),
        _ if mode == Mode::Attach && docker_id(&status).is_some() => {
            Err("error attaching to container: container is in CONTAINER_EXITED state".to_owned())
        }
        _ => Err(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        )),
    };
    let request = Request {
        mode,
        protocol,
        command,
        stdin,
        stdout,
        stderr,
        tty,
    };
    Ok(upgrade.on_upgrade(move |socket| session(shared, socket, request, target)))
}

/// How the stream ended, as the error channel reports it.
enum Outcome {
    Success,
    ExitCode(i64),
    Internal(String),
    Cut,
}

async fn session(
    shared: Arc<Shared>,
    socket: WebSocket,
    request: Request,
    target: Result<String, String>,
) {
    let (mut sender, mut receiver) = socket.split();
    let first = if request.stdout {
        STDOUT
    } else if request.stderr {
        STDERR
    } else {
        ERROR
    };
    if sender
        .send(Message::Binary(vec![first].into()))
        .await
        .is_err()
    {
        return;
    }
    let outcome = match (target, shared.kubelet.docker().cloned()) {
        (Ok(id), Some(docker)) => match request.mode {
            Mode::Exec => {
                run_exec(&shared, &docker, &id, &request, &mut sender, &mut receiver).await
            }
            Mode::Attach => {
                run_attach(&shared, &docker, &id, &request, &mut sender, &mut receiver).await
            }
        },
        (Err(message), _) => Outcome::Internal(message),
        (Ok(_), None) => Outcome::Internal("the fake cluster has no node".to_owned()),
    };
    if let Some(status) = status_message(&request, &outcome) {
        let mut frame = vec![ERROR];
        frame.extend_from_slice(status.as_bytes());
        let _ = sender.send(Message::Binary(frame.into())).await;
    }
    if !matches!(outcome, Outcome::Cut) {
        let _ = sender.send(Message::Close(None)).await;
    }
}

/// The error-channel message: v4/v5 a `Status` JSON, the older protocols only an error text.
fn status_message(request: &Request, outcome: &Outcome) -> Option<String> {
    let v4 = request.protocol.starts_with("v4.") || request.protocol.starts_with("v5.");
    let status = match outcome {
        Outcome::Cut => return None,
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                request.command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Internal(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    if v4 {
        return Some(status.to_string());
    }
    match outcome {
        Outcome::Success => None,
        _ => status
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

type Sender = futures_util::stream::SplitSink<WebSocket, Message>;
type Receiver = futures_util::stream::SplitStream<WebSocket>;
type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// What a resize message resizes.
enum Resizable<'a> {
    Exec(&'a str),
    Container(&'a str),
}

async fn run_exec(
    shared: &Shared,
    docker: &Docker,
    id: &str,
    request: &Request,
    sender: &mut Sender,
    receiver: &mut Receiver,
) -> Outcome {
    let config = ExecConfig {
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(request.stdout),
        attach_stderr: Some(request.stderr),
        tty: Some(request.tty),
        cmd: Some(request.command.clone()),
        ..Default::default()
    };
    let exec = match docker.create_exec(id, config).await {
        Ok(exec) => exec,
        Err(error) => {
            return Outcome::Internal(format!("error executing command in container: {error}"));
        }
    };
    let options = StartExecOptions {
        detach: false,
        tty: request.tty,
        output_capacity: None,
    };
    let (output, input) = match docker.start_exec(&exec.id, Some(options)).await {
        Ok(StartExecResults::Attached { output, input }) => (output, input),
        Ok(StartExecResults::Detached) => {
            return Outcome::Internal("the exec started detached".to_owned());
        }
        Err(error) => {
            return Outcome::Internal(format!("error executing command in container: {error}"));
        }
    };
    if !pump(
        shared,
        docker,
        Resizable::Exec(&exec.id),
        request,
        output,
        input,
        sender,
        receiver,
    )
    .await
    {
        return Outcome::Cut;
    }
    match docker
        .inspect_exec(&exec.id)
        .await
        .ok()
        .and_then(|i| i.exit_code)
    {
        Some(0) => Outcome::Success,
        Some(code) => Outcome::ExitCode(code),
        None => Outcome::Internal("the command's exit code is unknown".to_owned()),
    }
}

async fn run_attach(
    shared: &Shared,
    docker: &Docker,
    id: &str,
    request: &Request,
    sender: &mut Sender,
    receiver: &mut Receiver,
) -> Outcome {
    let options = AttachContainerOptionsBuilder::default()
        .stdin(request.stdin)
        .stdout(request.stdout)
        .stderr(request.stderr)
        .stream(true)
        .logs(false)
        .build();
    let attached = match docker.attach_container(id, Some(options)).await {
        Ok(attached) => attached,
        Err(error) => return Outcome::Internal(format!("error attaching to container: {error}")),
    };
    if pump(
        shared,
        docker,
        Resizable::Container(id),
        request,
        attached.output,
        attached.input,
        sender,
        receiver,
    )
    .await
    {
        Outcome::Success
    } else {
        Outcome::Cut
    }
}

/// Copies between the WebSocket and the process until the process's output ends. `false`
/// when the stream was cut (the client left, or a fault cut connections).
#[expect(
    clippy::too_many_arguments,
    reason = "one pump for exec and attach; the pieces differ in type"
)]
async fn pump(
    shared: &Shared,
    docker: &Docker,
    target: Resizable<'_>,
    request: &Request,
    mut output: Output,
    mut input: Input,
    sender: &mut Sender,
    receiver: &mut Receiver,
) -> bool {
    let cancel = shared.streams();
    let v5 = request.protocol.starts_with("v5.");
    let mut resizing = true;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            frame = output.next() => {
                let (channel, bytes) = match frame {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => (STDOUT, message),
                    Some(Ok(LogOutput::StdErr { message })) => (STDERR, message),
                    Some(Ok(LogOutput::StdIn { .. })) => continue,
                    Some(Err(_)) | None => return true,
                };
                if (channel == STDOUT && !request.stdout) || (channel == STDERR && !request.stderr) || bytes.is_empty() {
                    continue;
                }
                let mut frame = Vec::with_capacity(bytes.len() + 1);
                frame.push(channel);
                frame.extend_from_slice(&bytes);
                if sender.send(Message::Binary(frame.into())).await.is_err() {
                    return false;
                }
            }
            message = receiver.next() => match message {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) if request.stdin => {
                        let _ = input.write_all(&data[1..]).await;
                        let _ = input.flush().await;
                    }
                    Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                        let _ = input.shutdown().await;
                    }
                    Some(&RESIZE) if resizing && request.tty => {
                        resizing = resize(docker, &target, &data[1..]).await;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    let _ = input.shutdown().await;
                    return false;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Applies one resize message; `false` when it is not a terminal size, after which the kubelet
/// stops reading the resize channel (`handleResizeEvents` ends at the first decode error).
async fn resize(docker: &Docker, target: &Resizable<'_>, data: &[u8]) -> bool {
    let Ok(Value::Object(size)) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    // Go's `encoding/json` (the kubelet decodes `remotecommand.TerminalSize`, two `uint16`)
    // matches field names case-insensitively; a missing one is 0, a bad one an error.
    let dimension = |key: &str| match size.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        None => Some(0),
        Some((_, value)) => value.as_u64().and_then(|v| u16::try_from(v).ok()),
    };
    let (Some(width), Some(height)) = (dimension("Width"), dimension("Height")) else {
        return false;
    };
    let (h, w) = (i32::from(height), i32::from(width));
    match target {
        Resizable::Exec(id) => {
            let _ = docker.resize_exec(id, ResizeExecOptions { h, w }).await;
        }
        Resizable::Container(id) => {
            let options = ResizeContainerTTYOptionsBuilder::default()
                .h(h)
                .w(w)
                .build();
            let _ = docker.resize_container_tty(id, options).await;
        }
    }
    true
}
