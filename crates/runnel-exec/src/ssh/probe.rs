//! The sshd probe of tests: the private OpenSSH server `scripts/start-sshd.sh` runs on
//! 127.0.0.1. With `CI=true` a missing server panics; elsewhere the test prints `SKIPPED: …`
//! and returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::SshConfig;

/// The test sshd: where it listens and how to log in.
#[derive(Debug, Clone)]
pub struct TestSshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `$SSHD_DIR`: keys, password, pid file.
    pub dir: PathBuf,
}

impl TestSshd {
    /// The server when it answers; `None` (after printing why) when it does not and `CI` is
    /// not `true`.
    pub fn find() -> Option<Self> {
        let dir = std::env::var_os("SSHD_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/sshd"),
            PathBuf::from,
        );
        let port = std::env::var("SSHD_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(2222);
        let reason = if !dir.join("id_ed25519").is_file() {
            Some(format!("no client key in {}", dir.display()))
        } else if std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        )
        .is_err()
        {
            Some(format!("nothing listens on 127.0.0.1:{port}"))
        } else {
            None
        };
        match reason {
            None => Some(Self { port, dir }),
            Some(reason) => {
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!(
                        "no test sshd ({reason}); .ci/run starts one with scripts/start-sshd.sh"
                    );
                }
                println!("SKIPPED: no test sshd ({reason}); run scripts/start-sshd.sh");
                None
            }
        }
    }

    /// The client's private key (root's key login).
    pub fn identity_file(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The password of the user `runnel-ssh`.
    pub fn password(&self) -> String {
        std::fs::read_to_string(self.dir.join("password"))
            .map(|p| p.trim().to_owned())
            .unwrap_or_default()
    }

    /// A `known_hosts` line for the server: `[127.0.0.1]:<port> <host key>`.
    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).unwrap_or_default();
        let mut fields = key.split_whitespace();
        let (kind, data) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        format!("[127.0.0.1]:{} {kind} {data}\n", self.port)
    }

    /// Root's key login with the server's key in a `known_hosts` file written into `scratch`,
    /// and builds under `scratch/remote-builds`.
    pub fn root_config(&self, scratch: &Path) -> SshConfig {
        let known_hosts = scratch.join("known_hosts");
        let _ = std::fs::create_dir_all(scratch);
        let _ = std::fs::write(&known_hosts, self.known_hosts_line());
        SshConfig {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            user: "root".to_owned(),
            identity_file: Some(self.identity_file()),
            known_hosts_file: Some(known_hosts),
            builds_dir: scratch.join("remote-builds"),
            kill_grace: Duration::from_secs(2),
            connect_attempts: 1,
            ..SshConfig::default()
        }
    }
}
