//! The start-up sweep: what a runner killed mid-job (SIGKILL, a crash, a power cut) left
//! behind. Every job keeps a temporary directory under [`CustomConfig::state_dir`] with the
//! environment of its driver calls, and every process of those calls carries that directory in
//! its environment (`RUNNEL_CUSTOM_EXECUTOR_DIR`). A directory still there when a runner starts
//! belongs to a job that never cleaned up: its marked processes are killed, then
//! `cleanup_exec` runs with the job's recorded environment so the driver removes what it made
//! elsewhere (a VM, a container, a Slurm job), and the directory is removed.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::config::CustomConfig;
use super::driver::MARKER;
use super::executor::{RECORD_FILE, run_cleanup};

/// Cleans up every job left in `config.state_dir`; returns how many there were. Must not run
/// while this configuration runs jobs (a runner calls it once, before its first job).
pub async fn sweep_leftovers(config: &CustomConfig) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(&config.state_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let killed = kill_marked(&dir);
        let env = read_env(&dir.join(RECORD_FILE));
        tracing::info!(dir = %dir.display(), killed, "cleaning up a custom executor job left by an earlier runner");
        if let (Some(program), Some(env)) = (&config.cleanup, env) {
            run_cleanup(config, program, &env, &dir, None).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        swept += 1;
    }
    Ok(swept)
}

fn read_env(record: &Path) -> Option<Vec<(String, String)>> {
    let text = std::fs::read(record).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    serde_json::from_value(value.get("env")?.clone()).ok()
}

/// Rounds of [`kill_marked`] at most: enough for a driver that forks while it is being killed.
const KILL_ROUNDS: usize = 20;

/// Sends SIGKILL to every process whose environment has `MARKER=<dir>`; returns how many.
///
/// One scan of `/proc` is not enough: a marked process may fork between the scan and the kill
/// (the child inherits the marker), and a process inside `execve` has an empty
/// `/proc/<pid>/environ` until the new image's stack is set up, so a scan can miss it. The
/// scan repeats until one finds nothing left to kill.
fn kill_marked(dir: &Path) -> usize {
    let wanted = format!("{MARKER}={}", dir.display()).into_bytes();
    let mut killed = std::collections::HashSet::new();
    for _ in 0..KILL_ROUNDS {
        let found = marked_processes(&wanted);
        if found.is_empty() {
            break;
        }
        for pid in found {
            if kill(pid, Signal::SIGKILL).is_ok() {
                killed.insert(pid);
            }
        }
    }
    killed.len()
}

/// The processes whose environment holds the entry `wanted`.
pub(crate) fn marked_processes(wanted: &[u8]) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            (pid != own).then_some((pid, entry.path()))
        })
        .filter(|(_, path): &(u32, PathBuf)| {
            std::fs::read(path.join("environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|e| e == wanted))
        })
        .filter_map(|(pid, _)| i32::try_from(pid).ok().map(Pid::from_raw))
        .collect()
}
