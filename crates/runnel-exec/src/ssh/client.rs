//! One SSH connection (russh): connecting with retries, host key checking against
//! `known_hosts`, password and public key login, and running remote commands on channels.
//!
//! GitLab: gitlab-runner `helpers/ssh/ssh_command.go` — password first, then the identity
//! file; `~/.ssh/known_hosts` unless `known_hosts_file` names another or
//! `disable_strict_host_key_checking` is set; three connection attempts by default.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, client};
use tokio::sync::mpsc;

use super::config::SshConfig;
use super::error::SshError;

/// How long a TCP connect and the SSH handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// An authenticated SSH connection.
pub(crate) struct Session {
    handle: client::Handle<HostKeyCheck>,
    target: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The output of a remote command run to completion.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) code: Option<u32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Captured {
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// Why a host key was refused, recorded by the handler for the error message.
#[derive(Debug, Clone)]
enum Refusal {
    Unknown { fingerprint: String, file: PathBuf },
    Changed { file: PathBuf, line: usize },
    Unreadable { file: PathBuf, message: String },
}

struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: Option<PathBuf>,
    strict: bool,
    refusal: Arc<Mutex<Option<Refusal>>>,
}

impl HostKeyCheck {
    fn check(&self, key: &PublicKey) -> Result<(), Refusal> {
        if !self.strict {
            return Ok(());
        }
        let Some(file) = self.known_hosts.clone() else {
            return Err(Refusal::Unreadable {
                file: PathBuf::from("~/.ssh/known_hosts"),
                message: "HOME is not set".to_owned(),
            });
        };
        if !file.is_file() {
            return Err(Refusal::Unknown {
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                file,
            });
        }
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &file) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Unknown {
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                file,
            }),
            Err(russh::keys::Error::KeyChanged { line }) => Err(Refusal::Changed { file, line }),
            Err(err) => Err(Refusal::Unreadable {
                file,
                message: err.to_string(),
            }),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is checked by the key it certifies (no `@cert-authority` lines).
        let key = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::from(cert.public_key().clone())
            }
        };
        match self.check(&key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(refusal);
                }
                Ok(false)
            }
        }
    }
}

impl Session {
    /// Connects and logs in, retrying `connect_attempts` times; a refused host key or login is
    /// not retried.
    pub(crate) async fn connect(config: &SshConfig) -> Result<Self, SshError> {
        let attempts = config.connect_attempts.max(1);
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(config.connect_interval).await;
            }
            match Self::connect_once(config).await {
                Ok(session) => return Ok(session),
                Err(err) if err.is_final() => return Err(err),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| SshError::Connect {
            target: config.target(),
            source: std::io::Error::other("no connection attempt was made"),
        }))
    }

    async fn connect_once(config: &SshConfig) -> Result<Self, SshError> {
        let target = config.target();
        let refusal = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            host: config.host.clone(),
            port: config.port,
            known_hosts: config.known_hosts_path(),
            strict: !config.disable_strict_host_key_checking,
            refusal: refusal.clone(),
        };
        let russh_config = Arc::new(client::Config {
            // A connection that stops answering is noticed within a minute.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            inactivity_timeout: None,
            ..client::Config::default()
        });
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((config.host.as_str(), config.port)),
        )
        .await
        .map_err(|_| SshError::Connect {
            target: target.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"),
        })?
        .map_err(|source| SshError::Connect {
            target: target.clone(),
            source,
        })?;
        let _ = stream.set_nodelay(true);
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            client::connect_stream(russh_config, stream, check),
        )
        .await
        .map_err(|_| SshError::Connect {
            target: target.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "SSH handshake timed out"),
        })?;
        let mut handle = match connected {
            Ok(handle) => handle,
            Err(source) => {
                let refused = refusal.lock().ok().and_then(|mut slot| slot.take());
                return Err(match refused {
                    Some(Refusal::Unknown { fingerprint, file }) => SshError::HostKeyUnknown {
                        target,
                        fingerprint,
                        file,
                    },
                    Some(Refusal::Changed { file, line }) => {
                        SshError::HostKeyChanged { target, file, line }
                    }
                    Some(Refusal::Unreadable { file, message }) => {
                        SshError::KnownHosts { file, message }
                    }
                    None => SshError::Handshake { target, source },
                });
            }
        };
        login(&mut handle, config).await?;
        Ok(Self { handle, target })
    }

    /// `user@host:port`.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Whether the connection is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Opens a channel and starts `command` on it.
    pub(crate) async fn exec(
        &self,
        command: &str,
    ) -> Result<russh::Channel<client::Msg>, SshError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|source| self.channel_error("open a session channel", source))?;
        channel
            .exec(true, command)
            .await
            .map_err(|source| self.channel_error("start a remote command", source))?;
        Ok(channel)
    }

    pub(crate) fn channel_error(&self, action: &'static str, source: russh::Error) -> SshError {
        SshError::Channel {
            target: self.target.clone(),
            action,
            source,
        }
    }

    /// Runs `command` with `stdin`, collecting its output.
    pub(crate) async fn capture(&self, command: &str, stdin: &[u8]) -> Result<Captured, SshError> {
        let mut channel = self.exec(command).await?;
        if !stdin.is_empty() {
            channel
                .data(stdin)
                .await
                .map_err(|source| self.channel_error("send data", source))?;
        }
        channel
            .eof()
            .await
            .map_err(|source| self.channel_error("send data", source))?;
        let mut captured = Captured {
            code: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => captured.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => captured.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => captured.code = Some(exit_status),
                ChannelMsg::ExitSignal { .. } => captured.code = Some(255),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(captured)
    }

    /// Runs `command`, feeding it the chunks of `input` as stdin, then EOF.
    pub(crate) async fn feed(
        &self,
        command: &str,
        mut input: mpsc::Receiver<Vec<u8>>,
    ) -> Result<Captured, SshError> {
        let mut channel = self.exec(command).await?;
        let mut captured = Captured {
            code: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut sending = true;
        loop {
            tokio::select! {
                chunk = input.recv(), if sending => match chunk {
                    Some(chunk) => channel
                        .data(&chunk[..])
                        .await
                        .map_err(|source| self.channel_error("send data", source))?,
                    None => {
                        sending = false;
                        channel
                            .eof()
                            .await
                            .map_err(|source| self.channel_error("send data", source))?;
                    }
                },
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        captured.stderr.extend_from_slice(&data);
                    }
                    Some(ChannelMsg::Data { data }) => captured.stdout.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        captured.code = Some(exit_status);
                    }
                    Some(ChannelMsg::ExitSignal { .. }) => captured.code = Some(255),
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                },
            }
        }
        Ok(captured)
    }

    /// Runs `command` and hands its stdout, chunk by chunk, to `output`.
    pub(crate) async fn drain(
        &self,
        command: &str,
        output: mpsc::Sender<Vec<u8>>,
    ) -> Result<Captured, SshError> {
        let mut channel = self.exec(command).await?;
        channel
            .eof()
            .await
            .map_err(|source| self.channel_error("send data", source))?;
        let mut captured = Captured {
            code: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut output = Some(output);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    // A reader that stopped (a bad archive) drops its side; the rest is drained.
                    if let Some(tx) = &output
                        && tx.send(data.to_vec()).await.is_err()
                    {
                        output = None;
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => captured.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => captured.code = Some(exit_status),
                ChannelMsg::ExitSignal { .. } => captured.code = Some(255),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(captured)
    }

    /// Closes the connection.
    pub(crate) async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Logs in as gitlab-runner does: the password first when there is one, then the identity
/// file.
async fn login(
    handle: &mut client::Handle<HostKeyCheck>,
    config: &SshConfig,
) -> Result<(), SshError> {
    let target = config.target();
    let mut tried = Vec::new();
    if let Some(password) = config.password.as_deref() {
        tried.push("password");
        let result = handle
            .authenticate_password(&config.user, password)
            .await
            .map_err(|source| SshError::Handshake {
                target: target.clone(),
                source,
            })?;
        if result.success() {
            return Ok(());
        }
    }
    if let Some(file) = &config.identity_file {
        tried.push("public key");
        let key =
            russh::keys::load_secret_key(file, None).map_err(|source| SshError::IdentityFile {
                file: file.clone(),
                source,
            })?;
        // Only RSA keys need the server's signature algorithms (which may take a second).
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|source| SshError::Handshake {
                    target: target.clone(),
                    source,
                })?
                .flatten()
        } else {
            None
        };
        let result = handle
            .authenticate_publickey(
                &config.user,
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|source| SshError::Handshake {
                target: target.clone(),
                source,
            })?;
        if result.success() {
            return Ok(());
        }
    }
    Err(SshError::LoginRefused {
        target,
        tried: if tried.is_empty() {
            "nothing: set `password` or `identity_file`".to_owned()
        } else {
            tried.join(" and ")
        },
    })
}
