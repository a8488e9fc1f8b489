//! The SSH executor against the real OpenSSH server of `scripts/start-sshd.sh` on 127.0.0.1:
//! logins, host keys, the remote builds directory, and what happens to remote processes on
//! cancel, timeout and a dropped connection (checked with `pgrep` on the sshd side, which is
//! this machine). The executor conformance suite runs in `tests/ssh_conformance.rs`.

use std::path::Path;
use std::time::Duration;

use runnel_api::{FailureReason, When};
use runnel_exec::ssh::{SshConfig, SshExecutor, TestSshd};
use runnel_exec::test_support::{PayloadBuilder, TestProject, collect_events, run_to_end};
use runnel_exec::{JobContext, JobEvent, JobOutcome, JobStatus, run_job_with};
use tokio::sync::mpsc;

/// Runs a job whose `prepare` may fail (`run_job_with` is then `Err`); returns the outcome and
/// the trace log.
async fn run_raw(
    executor: &mut SshExecutor,
    payload: runnel_api::JobPayload,
    ctx: JobContext,
) -> (JobOutcome, String) {
    let log = ctx
        .trace_log
        .clone()
        .expect("test contexts have a trace log");
    let (tx, rx) = mpsc::unbounded_channel();
    let result = run_job_with(executor, payload, ctx, tx).await;
    let events = collect_events(rx).await;
    let outcome = match (result, events.last()) {
        (Ok(outcome), _) => outcome,
        (Err(_), Some(JobEvent::Finished { outcome, .. })) => outcome.clone(),
        (Err(err), _) => panic!("no outcome: {err}"),
    };
    let trace = String::from_utf8_lossy(&std::fs::read(&log).expect("the trace log")).into_owned();
    (outcome, trace)
}

/// Runs a job and calls `on_started` once it prints the line `started`.
async fn run_until_started(
    executor: &mut SshExecutor,
    payload: runnel_api::JobPayload,
    ctx: JobContext,
    on_started: impl FnOnce(),
) -> (JobOutcome, String) {
    let log = ctx
        .trace_log
        .clone()
        .expect("test contexts have a trace log");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = run_job_with(executor, payload, ctx, tx);
    let watch = async move {
        let mut on_started = Some(on_started);
        let mut last = None;
        while let Some(event) = rx.recv().await {
            match event {
                JobEvent::Output { line, .. } if line == "started" => {
                    if let Some(f) = on_started.take() {
                        f();
                    }
                }
                JobEvent::Finished { outcome, .. } => {
                    last = Some(outcome);
                    break;
                }
                _ => {}
            }
        }
        last
    };
    let (result, finished) = tokio::join!(job, watch);
    let outcome = match (result, finished) {
        (Ok(outcome), _) => outcome,
        (Err(_), Some(outcome)) => outcome,
        (Err(err), None) => panic!("no outcome: {err}"),
    };
    let trace = String::from_utf8_lossy(&std::fs::read(&log).expect("the trace log")).into_owned();
    (outcome, trace)
}

/// The pids of processes whose command line is exactly `command`.
fn pgrep(command: &str) -> Vec<i32> {
    let output = std::process::Command::new("pgrep")
        .args(["-x", "-f", command])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "Z"))
        })
        .unwrap_or(true)
}

/// Waits (up to a minute, polling) until no process runs `command`; the watchdog on the remote
/// side needs a moment after a dropped connection.
async fn assert_gone(command: &str) {
    for _ in 0..600 {
        if pgrep(command).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{command}` is still running: {:?}", pgrep(command));
}

fn ppid(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

#[tokio::test]
async fn ssh_key_login_runs_the_job_in_the_remote_builds_dir_and_brings_files_back() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    project.write("src/app.py", "print('hi')\n");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let config = sshd.root_config(scratch.path());
    let remote = config.builds_dir.clone();
    let payload = PayloadBuilder::new(101, "remote")
        .file_var("CONFIG_FILE", "from-file")
        .script(&[
            "echo dir=$CI_PROJECT_DIR builds=$CI_BUILDS_DIR pwd=$(pwd)",
            "cat src/app.py",
            "echo config=$(cat $CONFIG_FILE) at $CONFIG_FILE",
            "mkdir -p dist && echo built > dist/out.txt",
            "echo REMOTE_VAR=kept >> $GITLAB_ENV",
        ])
        .after_script(&["echo after=$REMOTE_VAR"])
        .artifacts(&["dist/"], &[], false, When::OnSuccess)
        .build();
    let mut executor = SshExecutor::new(config);
    let ran = run_to_end(&mut executor, payload, project.context("101")).await;
    ran.assert_status(JobStatus::Success, "ssh");
    let dir = remote.join("acme/app");
    ran.assert_output_contains(
        &format!(
            "dir={0} builds={1} pwd={0}",
            dir.display(),
            remote.display()
        ),
        "ssh",
    );
    ran.assert_output_contains("print('hi')", "ssh");
    ran.assert_output_contains(
        &format!(
            "config=from-file at {}/acme/app.tmp/CONFIG_FILE",
            remote.display()
        ),
        "ssh",
    );
    ran.assert_output_contains("after=kept", "ssh");
    assert!(ran.trace.contains("Using SSH executor..."), "{}", ran.trace);
    let local = runnel_exec::test_support::project_dir(&project);
    assert_eq!(
        std::fs::read_to_string(local.join("dist/out.txt"))
            .ok()
            .as_deref(),
        Some("built\n"),
        "the remote file came back"
    );
    assert!(ran.outcome.artifacts.is_some(), "the artifact was uploaded");
    assert!(
        !remote.join("acme/app.tmp").exists(),
        "the remote file variables are removed"
    );
}

#[tokio::test]
async fn ssh_password_login_uses_builds_under_the_remote_home() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let known_hosts = scratch.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).expect("write");
    let config = SshConfig {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: "runnel-ssh".into(),
        password: Some(sshd.password()),
        known_hosts_file: Some(known_hosts),
        connect_attempts: 1,
        ..SshConfig::default()
    };
    let payload = PayloadBuilder::new(102, "password")
        .script(&["echo builds=$CI_BUILDS_DIR user=$(id -un)"])
        .build();
    let mut executor = SshExecutor::new(config);
    let ran = run_to_end(&mut executor, payload, project.context("102")).await;
    ran.assert_status(JobStatus::Success, "ssh");
    ran.assert_output_contains("builds=/home/runnel-ssh/builds user=runnel-ssh", "ssh");
}

#[tokio::test]
async fn ssh_wrong_password_is_refused_with_the_methods_tried() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut config = sshd.root_config(scratch.path());
    config.user = "runnel-ssh".into();
    config.password = Some("not-the-password".into());
    config.identity_file = None;
    let payload = PayloadBuilder::new(103, "refused")
        .script(&["true"])
        .build();
    let (outcome, trace) = run_raw(
        &mut SshExecutor::new(config),
        payload,
        project.context("103"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        trace.contains(&format!(
            "runnel-ssh@127.0.0.1:{} refused the login (tried password)",
            sshd.port
        )),
        "{trace}"
    );
}

/// A `known_hosts` that records another key for the server.
fn wrong_known_hosts(sshd: &TestSshd, dir: &Path) -> std::path::PathBuf {
    let client_key = std::fs::read_to_string(sshd.dir.join("id_ed25519.pub")).expect("the key");
    let mut fields = client_key.split_whitespace();
    let (kind, data) = (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    let path = dir.join("wrong_known_hosts");
    std::fs::write(&path, format!("[127.0.0.1]:{} {kind} {data}\n", sshd.port)).expect("write");
    path
}

#[tokio::test]
async fn ssh_wrong_or_unknown_host_key_is_refused() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut config = sshd.root_config(scratch.path());
    config.known_hosts_file = Some(wrong_known_hosts(&sshd, scratch.path()));
    let payload = PayloadBuilder::new(104, "mitm")
        .script(&["echo ran"])
        .build();
    let (outcome, trace) = run_raw(
        &mut SshExecutor::new(config.clone()),
        payload.clone(),
        project.context("104"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        trace.contains("does not match the one on line 1 of"),
        "{trace}"
    );
    assert!(!trace.contains("\nran"), "{trace}");

    let empty = scratch.path().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    config.known_hosts_file = Some(empty);
    let (outcome, trace) = run_raw(
        &mut SshExecutor::new(config),
        payload,
        project.context("104b"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        trace.contains("(SHA256:")
            && trace.contains("set `disable_strict_host_key_checking = true`"),
        "{trace}"
    );
}

#[tokio::test]
async fn ssh_disable_strict_host_key_checking_accepts_any_host_key() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut config = sshd.root_config(scratch.path());
    config.known_hosts_file = Some(wrong_known_hosts(&sshd, scratch.path()));
    config.disable_strict_host_key_checking = true;
    let payload = PayloadBuilder::new(105, "lax")
        .script(&["echo ran"])
        .build();
    let ran = run_to_end(
        &mut SshExecutor::new(config),
        payload,
        project.context("105"),
    )
    .await;
    ran.assert_status(JobStatus::Success, "ssh");
}

#[tokio::test]
async fn ssh_cancel_kills_the_remote_process_group() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let config = sshd.root_config(scratch.path());
    let sleeper = "sleep 1000101";
    let payload = PayloadBuilder::new(106, "cancel")
        .script(&[&format!("{sleeper} &"), "echo started", sleeper])
        .after_script(&["echo after=$CI_JOB_STATUS"])
        .build();
    let ctx = project.context("106");
    let cancel = ctx.cancel.clone();
    let (outcome, trace) =
        run_until_started(&mut SshExecutor::new(config), payload, ctx, move || {
            cancel.cancel()
        })
        .await;
    assert_eq!(outcome.status, JobStatus::Canceled, "{trace}");
    assert!(trace.contains("after=canceled"), "{trace}");
    assert!(
        pgrep(sleeper).is_empty(),
        "remote processes survived: {:?}",
        pgrep(sleeper)
    );
}

#[tokio::test]
async fn ssh_timeout_kills_the_remote_process_group_even_when_it_ignores_sigterm() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let config = sshd.root_config(scratch.path());
    let stubborn = "sleep 1000202";
    let payload = PayloadBuilder::new(107, "timeout")
        .timeout(5)
        .script(&[
            &format!("(trap '' TERM; exec {stubborn}) >/dev/null 2>&1 &"),
            "echo started",
            "sleep 1000203",
        ])
        .build();
    let (outcome, trace) = run_until_started(
        &mut SshExecutor::new(config),
        payload,
        project.context("107"),
        || {},
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::JobExecutionTimeout),
        "{trace}"
    );
    assert!(trace.contains("\nstarted"), "the script ran: {trace}");
    assert!(
        pgrep(stubborn).is_empty(),
        "survived: {:?}",
        pgrep(stubborn)
    );
    assert!(pgrep("sleep 1000203").is_empty());
}

#[tokio::test]
async fn ssh_dropped_connection_is_a_system_failure_and_the_remote_script_ends() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = TestProject::new();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let config = sshd.root_config(scratch.path());
    let sleeper = "sleep 1000303";
    let payload = PayloadBuilder::new(108, "drop")
        .script(&["echo started", sleeper])
        .build();
    let kill_session = move || {
        // The sleep's nearest `sshd` ancestor is the session's process: killing it drops the
        // connection as a network failure would.
        let mut pid = None;
        for _ in 0..100 {
            if let Some(found) = pgrep(sleeper).first() {
                pid = Some(*found);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut pid = pid.expect("the remote sleep runs");
        loop {
            let (parent, _) = ppid(pid).expect("an ancestor");
            let (_, comm) = ppid(parent).expect("the ancestor's stat");
            if comm.starts_with("sshd") {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(parent),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .expect("kill the session");
                return;
            }
            assert!(parent > 1, "no sshd ancestor");
            pid = parent;
        }
    };
    let (outcome, trace) = run_until_started(
        &mut SshExecutor::new(config),
        payload,
        project.context("108"),
        kill_session,
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure),
        "{trace}"
    );
    assert!(
        trace.contains(&format!(
            "the SSH connection to root@127.0.0.1:{} was lost while `step_script` was running",
            sshd.port
        )),
        "{trace}"
    );
    assert_gone(sleeper).await;
}
