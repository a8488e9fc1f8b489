//! Failures of the SSH executor. Each is a `runner_system_failure`: the job's own failures are
//! exit codes.

use std::path::PathBuf;

use crate::error::ExecError;

/// Why the SSH executor could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The TCP connection could not be made.
    #[error("failed to connect to {target}")]
    Connect {
        /// `user@host:port`.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SSH handshake or login failed.
    #[error("failed the SSH handshake with {target}")]
    Handshake {
        /// `user@host:port`.
        target: String,
        /// The cause.
        #[source]
        source: russh::Error,
    },
    /// The host key is not in the known hosts file.
    #[error(
        "the host key of {target} ({fingerprint}) is not in `{}`: add it (`ssh-keyscan`) or set `disable_strict_host_key_checking = true`",
        file.display()
    )]
    HostKeyUnknown {
        /// `user@host:port`.
        target: String,
        /// The key's SHA256 fingerprint.
        fingerprint: String,
        /// The known hosts file.
        file: PathBuf,
    },
    /// The host key differs from the one recorded for the host.
    #[error(
        "the host key of {target} does not match the one on line {line} of `{}` (was the host reinstalled, or is someone in the middle?)",
        file.display()
    )]
    HostKeyChanged {
        /// `user@host:port`.
        target: String,
        /// The known hosts file.
        file: PathBuf,
        /// The line of the recorded key.
        line: usize,
    },
    /// The known hosts file could not be read.
    #[error("failed to read the known hosts file `{}`: {message}", file.display())]
    KnownHosts {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The identity file could not be read.
    #[error("failed to read the identity file `{}`", file.display())]
    IdentityFile {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: russh::keys::Error,
    },
    /// The server refused every login method.
    #[error("{target} refused the login (tried {tried})")]
    LoginRefused {
        /// `user@host:port`.
        target: String,
        /// The methods tried.
        tried: String,
    },
    /// A channel operation failed.
    #[error("failed to {action} on {target}")]
    Channel {
        /// `user@host:port`.
        target: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: russh::Error,
    },
    /// The connection dropped while a stage ran.
    #[error("the SSH connection to {target} was lost while `{stage}` was running")]
    ConnectionLost {
        /// `user@host:port`.
        target: String,
        /// The build stage.
        stage: String,
    },
    /// A helper command on the remote host failed.
    #[error("failed to {action} on {target}: {message}")]
    Remote {
        /// `user@host:port`.
        target: String,
        /// What was being done ("copy the project directory").
        action: &'static str,
        /// The command's exit status and error output.
        message: String,
    },
    /// Packing or unpacking the project directory on this host failed.
    #[error("failed to {action} `{}`", path.display())]
    Local {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stage was run before `prepare` succeeded (a bug in the caller).
    #[error("failed to run a stage: the executor is not connected")]
    NotConnected,
}

impl SshError {
    /// Whether connecting again cannot help (a refused key or login, a bad file).
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self,
            Self::HostKeyUnknown { .. }
                | Self::HostKeyChanged { .. }
                | Self::KnownHosts { .. }
                | Self::IdentityFile { .. }
                | Self::LoginRefused { .. }
        )
    }

    /// As an error of `prepare`.
    pub(crate) fn preparing(self, executor: &'static str) -> ExecError {
        ExecError::Prepare {
            executor,
            source: Box::new(self),
        }
    }

    /// As an error of a running stage.
    pub(crate) fn running(self, executor: &'static str) -> ExecError {
        ExecError::Executor {
            executor,
            source: Box::new(self),
        }
    }
}
