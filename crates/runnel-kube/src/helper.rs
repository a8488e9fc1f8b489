//! `runnel helper`: what the helper container runs. The helper image holds the runnel binary,
//! so the pod needs no other helper program.
//!
//! - `runnel helper sleep`: the container's main process; exits on SIGTERM (as PID 1 it would
//!   otherwise ignore it and hold up the pod's deletion for the whole grace period).
//! - `runnel helper unpack DIR [--owner UID[:GID]]`: extracts a tar archive from standard
//!   input into `DIR` (see [`crate::transfer::unpack`]).
//! - `runnel helper pack DIR NAME…`: writes a tar archive of `DIR/NAME…` to standard output.
//! - `runnel helper health-check --port P… [--timeout S]`: waits until the pod's services
//!   accept TCP connections (gitlab-runner-helper's `health-check`).

use std::path::Path;
use std::time::Duration;

use crate::transfer::{self, Owner};

/// Waits for SIGTERM or SIGINT.
pub async fn sleep() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Extracts standard input into `dir`.
pub fn unpack(dir: &Path, owner: Option<Owner>) -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    transfer::unpack(std::io::BufReader::new(stdin), dir, owner)
}

/// Archives `dir/names` to standard output.
pub fn pack(dir: &Path, names: &[String]) -> std::io::Result<()> {
    let stdout = std::io::stdout().lock();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    transfer::pack(dir, &names, std::io::BufWriter::new(stdout))
}

/// Waits until every one of `ports` on 127.0.0.1 accepts a TCP connection, at most `timeout`
/// for all of them together; the error names the ports that did not.
pub async fn health_check(ports: &[u16], timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failed = Vec::new();
    for port in ports {
        println!("waiting for TCP connection to 127.0.0.1:{port}...");
        loop {
            let attempt = tokio::time::timeout_at(
                deadline,
                tokio::net::TcpStream::connect(("127.0.0.1", *port)),
            )
            .await;
            match attempt {
                Ok(Ok(_)) => break,
                Ok(Err(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => {
                    failed.push(port.to_string());
                    break;
                }
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no TCP connection to 127.0.0.1:{} within {} seconds",
        failed.join(", 127.0.0.1:"),
        timeout.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::health_check;

    #[tokio::test]
    async fn a_listening_port_is_healthy_and_a_closed_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listener.local_addr().expect("address").port();
        let closed = {
            let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            other.local_addr().expect("address").port()
        };
        assert_eq!(health_check(&[open], Duration::from_secs(5)).await, Ok(()));
        let err = health_check(&[open, closed], Duration::from_millis(300))
            .await
            .expect_err("closed");
        assert!(
            err.contains(&format!("127.0.0.1:{closed} within 0 seconds")),
            "{err}"
        );
    }
}
