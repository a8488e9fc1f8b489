//! Helpers shared by the end-to-end tests of the `runnel` binary (`mod support;` in each test
//! file): committed temporary repositories, running `runnel`, reading its `--json` document.
//! The Docker probe is `runnel_exec::docker::docker_available` (feature `test-support`).

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

pub(crate) mod kube_daemon;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `git -C dir args…` and asserts that it succeeded.
pub(crate) fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// Makes `dir` a git repository on `main` with everything in it committed as `message`.
pub(crate) fn commit_repo(dir: &Path, message: &str) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

/// Copies the tree `from` into `to`, leaving out the entries whose name `skip` accepts.
pub(crate) fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&str) -> bool) {
    std::fs::create_dir_all(to).expect("directory created");
    for entry in std::fs::read_dir(from).expect("source directory readable") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if skip(&name.to_string_lossy()) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target, skip);
        } else {
            std::fs::copy(entry.path(), &target).expect("file copied");
        }
    }
}

/// The exit code and the `--json` document of a finished `runnel` run.
pub(crate) fn json_document(out: &Output) -> (i32, Value) {
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// The entry of the job `name` in a `--json` document.
pub(crate) fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job `{name}` in {doc:#}"))
}

/// `runnel` as the runner commands run in the tests: a clean environment (only `PATH`, and a
/// `HOME` that does not exist, so no user config is read), no stdin, killed when dropped.
pub(crate) fn runnel_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_runnel"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// The helper image of the Kubernetes executor tests, built from this build's `runnel` by
/// `scripts/kube-helper-image.sh` (kept while the binary does not change).
pub(crate) const KUBE_HELPER_IMAGE: &str = "runnel-test/kube-helper:latest";

/// Builds [`KUBE_HELPER_IMAGE`] (a no-op when it holds this binary) and returns its name.
pub(crate) fn kube_helper_image() -> &'static str {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-helper-image.sh");
    let out = Command::new(script)
        .arg(env!("CARGO_BIN_EXE_runnel"))
        .arg(KUBE_HELPER_IMAGE)
        .output()
        .expect("scripts/kube-helper-image.sh runs");
    assert!(out.status.success(), "helper image: {out:?}");
    KUBE_HELPER_IMAGE
}

/// `runnel run -c <config>` in `dir` as [`runnel_command`], its standard error in `log`; add
/// environment variables, then spawn.
pub(crate) fn runnel_run(dir: &Path, config: &Path, log: &Path) -> tokio::process::Command {
    let mut command = runnel_command();
    command
        .args(["run", "-c"])
        .arg(config)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    command
}

/// Waits until `done` holds, polling; panics with `what` after a minute.
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
