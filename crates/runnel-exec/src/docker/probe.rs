//! The Docker probe of tests (behind the `test-support` feature): is an engine answering, and
//! are the local test images there? With `CI=true` a failed probe panics; elsewhere the test
//! prints `SKIPPED: …` and returns.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The image tests name where a pipeline would say `alpine` (busybox, `sh` only).
pub const TEST_BUSYBOX_IMAGE: &str = "runnel-test/busybox:latest";
/// The local Python image (Debian's Python 3.11, `bash`), also tagged `python:3.11-slim`.
pub const TEST_PYTHON_IMAGE: &str = "python:3.11-slim";

/// Whether Docker tests can run: the engine answers and `images` exist. Panics when they cannot
/// and `CI=true`; prints why and returns `false` otherwise.
pub fn docker_available(images: &[&str]) -> bool {
    match probe(images) {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("no Docker engine ({reason}); .ci/run starts one");
            }
            println!("SKIPPED: no Docker engine ({reason}); .ci/run starts one");
            false
        }
    }
}

fn probe(images: &[&str]) -> Result<(), String> {
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => host["unix://".len()..].to_owned(),
        Ok(host) if !host.is_empty() => {
            return Err(format!("DOCKER_HOST={host} is not a unix socket"));
        }
        _ => "/var/run/docker.sock".to_owned(),
    };
    let status = get(&socket, "/_ping")?;
    if status != 200 {
        return Err(format!("{socket} answered /_ping with {status}"));
    }
    for image in images {
        if get(&socket, &format!("/images/{image}/json"))? != 200 {
            return Err(format!(
                "the image `{image}` is missing: run scripts/test-images.sh"
            ));
        }
    }
    Ok(())
}

/// The HTTP status of `GET path` on the engine's socket.
fn get(socket: &str, path: &str) -> Result<u16, String> {
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("cannot connect to {socket}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| format!("cannot write to {socket}: {e}"))?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{socket} did not answer HTTP"))
}
