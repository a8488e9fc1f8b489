//! The settings of the SSH executor: gitlab-runner's `[runners.ssh]` keys with its defaults
//! (GitLab: gitlab-runner `helpers/ssh/ssh_config.go` and `ssh_command.go` `Connect`: host
//! `localhost`, port 22, user `root`, `~/.ssh/known_hosts`, strict host key checking on).

use std::path::PathBuf;
use std::time::Duration;

/// How the SSH executor reaches and logs in to the remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// `host`; gitlab-runner's default is `localhost`.
    pub host: String,
    /// `port`; 22 by default.
    pub port: u16,
    /// `user`; `root` by default.
    pub user: String,
    /// `password`, tried first when set (as gitlab-runner does).
    pub password: Option<String>,
    /// `identity_file`: a private key (OpenSSH or PEM format, unencrypted).
    pub identity_file: Option<PathBuf>,
    /// `known_hosts_file`; `None` is `~/.ssh/known_hosts` of the user running runnel.
    pub known_hosts_file: Option<PathBuf>,
    /// `disable_strict_host_key_checking`: accept any host key.
    pub disable_strict_host_key_checking: bool,
    /// The builds directory on the remote host; a relative path is under the remote user's
    /// home directory (gitlab-runner's default for SSH is `builds`, i.e. `~/builds`).
    pub builds_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when a remote script is stopped.
    pub kill_grace: Duration,
    /// Connection attempts before giving up (gitlab-runner: 3, and 30 while a VM boots).
    pub connect_attempts: u32,
    /// Time between connection attempts (gitlab-runner's `sshRetryInterval`: 3 s).
    pub connect_interval: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 22,
            user: "root".to_owned(),
            password: None,
            identity_file: None,
            known_hosts_file: None,
            disable_strict_host_key_checking: false,
            builds_dir: PathBuf::from("builds"),
            kill_grace: Duration::from_secs(10),
            connect_attempts: 3,
            connect_interval: Duration::from_secs(3),
        }
    }
}

impl SshConfig {
    /// `user@host:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// The known hosts file to check host keys against.
    pub(crate) fn known_hosts_path(&self) -> Option<PathBuf> {
        self.known_hosts_file.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ssh/known_hosts"))
        })
    }
}

/// Parses gitlab-runner's `port` (a string in `config.toml`); empty means 22.
pub fn parse_port(port: &str) -> Result<u16, String> {
    let port = port.trim();
    if port.is_empty() {
        return Ok(22);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{port}` is not a TCP port")),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn port_is_a_string_defaulting_to_22() {
        assert_eq!(parse_port(""), Ok(22));
        assert_eq!(parse_port("2222"), Ok(2222));
        assert!(parse_port("ssh").is_err());
        assert!(parse_port("0").is_err());
    }
}
