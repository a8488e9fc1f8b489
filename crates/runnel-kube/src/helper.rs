//! `runnel helper`: what the helper container runs. The helper image holds the runnel binary,
//! so the pod needs no other helper program.
//!
//! - `runnel helper sleep`: the container's main process; exits on SIGTERM (as PID 1 it would
//!   otherwise ignore it and hold up the pod's deletion for the whole grace period).
//! - `runnel helper unpack DIR [--owner UID[:GID]]`: extracts a tar archive from standard
//!   input into `DIR` (see [`crate::transfer::unpack`]).
//! - `runnel helper pack DIR NAME…`: writes a tar archive of `DIR/NAME…` to standard output.

use std::path::Path;

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
