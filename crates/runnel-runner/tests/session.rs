//! The session server (`[session_server]`, GitLab's "Debug a job" web terminal) against running
//! jobs through the daemon and the fake GitLab: the job request advertises the session, a
//! WebSocket client with the `terminal.gitlab.com` subprotocol and the session token types a
//! command and reads its output, a wrong token is refused, a finished job waits for a connected
//! terminal until it disconnects or `session_timeout` passes, and the session ends with its job.
//! With a job user (`run --user`), the shell executor's terminal is that user's shell (as root,
//! with the user `runnel-test-job`; SKIPPED elsewhere).

mod daemon_shell_support;

use std::sync::Arc;

use daemon_shell_support::start_shell_daemon;
use futures_util::SinkExt;
use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::test_support::{
    FakeGitLab, FakeJobState, JobSpec, TestDaemon, assert_kept_until_session_timeout,
    connect_terminal as connect, connect_terminal_with as connect_with, read_to_close, read_until,
    refused_with, session_token as token,
};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The `session` the job request of `job` advertised, once the job runs.
async fn session_of(fake: &FakeGitLab, job: u64) -> Value {
    runnel_runner::test_support::session_of(fake, job, "job-started").await
}

/// A job that waits for the terminal user: a file they create in the project directory.
fn waiting_job() -> JobSpec {
    JobSpec::script(&[
        "echo job-started",
        "while [ ! -e terminal-was-here ]; do sleep 0.1; done",
        "echo job-done",
    ])
}

const TYPED: &[u8] =
    b"echo \"in $(basename $PWD) as $CI_JOB_ID: $((40 + 2))\"; touch terminal-was-here\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_terminal_runs_commands_in_the_job_and_session_timeout_ends_it() {
    let fake = FakeGitLab::start().await;
    let runner = fake.create_runner();
    let job = fake.add_job(waiting_job());
    let daemon = start_shell_daemon(
        &fake,
        &runner,
        "[session_server]\nlisten_address = \"127.0.0.1:0\"\nsession_timeout = 2\n",
        "",
    );
    let session = session_of(&fake, job).await;

    assert_eq!(refused_with(connect(&session, "wrong-token").await), 401);
    let mut socket = connect(&session, token(&session))
        .await
        .expect("the terminal opens with the session token");
    // One terminal per session: a second one is refused while this one is open.
    assert_eq!(refused_with(connect(&session, token(&session)).await), 423);

    socket
        .send(Message::Binary(TYPED.to_vec().into()))
        .await
        .expect("typed");
    // In the project directory, with the job's variables.
    read_until(&mut socket, &format!("in app as {job}: 42"), false).await;
    // The job went on once the file existed; its terminal stays connected, so the finished
    // job waits until session_timeout closes the terminal.
    read_to_close(&mut socket).await;
    assert_kept_until_session_timeout(&fake, job, "2s").await;
    // The session is gone with its job.
    assert_eq!(refused_with(connect(&session, token(&session)).await), 404);
    assert_eq!(fake.violations(), Vec::<String>::new());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_job_waits_for_its_terminal_to_disconnect_base64() {
    let fake = FakeGitLab::start().await;
    let runner = fake.create_runner();
    let job = fake.add_job(waiting_job());
    // The default session_timeout (30 minutes): only the disconnect can end the wait.
    let daemon = start_shell_daemon(
        &fake,
        &runner,
        "[session_server]\nlisten_address = \"127.0.0.1:0\"\n",
        "",
    );
    let session = session_of(&fake, job).await;
    let mut socket = connect_with(&session, token(&session), "base64.terminal.gitlab.com")
        .await
        .expect("the terminal opens");
    use base64::Engine as _;
    let typed = base64::engine::general_purpose::STANDARD.encode(TYPED);
    socket
        .send(Message::Text(typed.into()))
        .await
        .expect("typed");
    read_until(&mut socket, &format!("in app as {job}: 42"), true).await;
    fake.wait_for_trace(job, "Terminal is connected, will time out in 30m0s...")
        .await;
    socket.close(None).await.expect("closed");
    let finished = fake.wait_for_final(job).await;
    let trace = fake.trace_text(job);
    assert_eq!(finished.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Terminal disconnected"), "{trace}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_the_job_closes_its_terminal() {
    let fake = FakeGitLab::start().await;
    let runner = fake.create_runner();
    // Output keeps the trace PATCHes going; their `Job-Status: canceled` carries the cancel.
    let job = fake.add_job(JobSpec::script(&[
        "echo job-started",
        "for i in $(seq 1 600); do echo tick $i; sleep 1; done",
    ]));
    let daemon = start_shell_daemon(
        &fake,
        &runner,
        "[session_server]\nlisten_address = \"127.0.0.1:0\"\n",
        "",
    );
    let session = session_of(&fake, job).await;
    let mut socket = connect(&session, token(&session))
        .await
        .expect("the terminal opens");
    socket
        .send(Message::Binary(b"echo ready-$((6 * 7))\n".to_vec().into()))
        .await
        .expect("typed");
    read_until(&mut socket, "ready-42", false).await;
    fake.cancel(job, false);
    // The session ends with its job: the server closes the terminal.
    read_to_close(&mut socket).await;
    // The job's last update (a canceled job's ends its updates) comes after the session ended.
    fake.wait_for(|fake| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("PUT"))
            .count()
            >= 2
    })
    .await;
    assert_eq!(refused_with(connect(&session, token(&session)).await), 404);
    let trace = fake.trace_text(job);
    assert!(!trace.contains("tick 600"), "{trace}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_web_terminal_execs_into_the_job_container() {
    if !runnel_exec::docker::docker_available(&[runnel_exec::docker::TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    let runner = fake.create_runner();
    let mut spec = waiting_job();
    spec.image = Some((
        runnel_exec::docker::TEST_BUSYBOX_IMAGE.to_owned(),
        Vec::new(),
    ));
    let job = fake.add_job(spec);
    let daemon = TestDaemon::with_one_runner(
        &fake,
        &runner,
        ("docker", Arc::new(RunnerExecutors::new())),
        "docker-runner",
        "concurrent = 1\n[session_server]\nlisten_address = \"127.0.0.1:0\"\nsession_timeout = 2\n",
        "  [runners.docker]\n    pull_policy = \"never\"\n",
    );
    let session = session_of(&fake, job).await;
    let mut socket = connect(&session, token(&session))
        .await
        .expect("the terminal opens");
    socket
        .send(Message::Binary(TYPED.to_vec().into()))
        .await
        .expect("typed");
    read_until(&mut socket, &format!("in app as {job}: 42"), false).await;
    // The terminal lives in the job container: it ends when the container does.
    read_to_close(&mut socket).await;
    let finished = fake.wait_for_final(job).await;
    let trace = fake.trace_text(job);
    assert_eq!(finished.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("job-done"), "{trace}");
    daemon.stop().await;
}

/// The user `runnel-test-job`, or `None` (with a SKIPPED message) where switching users
/// cannot be tested: not root, or no such user (scripts/setup-test-user.sh creates it).
fn job_user() -> Option<runnel_exec::RunAs> {
    let why = if !nix::unistd::Uid::effective().is_root() {
        "not running as root (switching users needs root)".to_owned()
    } else {
        match runnel_exec::RunAs::lookup("runnel-test-job") {
            Ok(user) => return Some(user),
            Err(err) => format!("{err} (scripts/setup-test-user.sh creates it)"),
        }
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI=true needs this test to run");
    }
    println!("SKIPPED: {why}; .ci/run sets this up");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_user_web_terminal_is_a_shell_of_the_job_user() {
    use std::os::unix::fs::PermissionsExt;
    let Some(user) = job_user() else {
        return;
    };
    let home = user.home.display().to_string();
    let fake = FakeGitLab::start().await;
    let runner = fake.create_runner();
    let executor = runnel_runner::exec_adapter::ShellJobExecutor {
        user: Some(user),
        ..runnel_runner::exec_adapter::ShellJobExecutor::new()
    };
    let daemon = TestDaemon::with_one_runner(
        &fake,
        &runner,
        ("shell", Arc::new(executor)),
        "shell-runner",
        "concurrent = 1\n[session_server]\nlisten_address = \"127.0.0.1:0\"\nsession_timeout = 2\n",
        "",
    );
    // The job user reaches the builds directory through the daemon's directory; the job
    // comes once it can.
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let job = fake.add_job(waiting_job());
    let session = session_of(&fake, job).await;
    let mut socket = connect(&session, token(&session))
        .await
        .expect("the terminal opens");
    // gitlab-runner `executors/shell/shell_terminal.go`: `su` to the job user; here also in
    // the project directory with the job's variables. What the terminal makes is the user's.
    socket
        .send(Message::Binary(
            b"echo \"$(id -un) in $(basename $PWD) as $CI_JOB_ID, HOME=$HOME\"; touch terminal-was-here; echo \"owner=$(stat -c %U terminal-was-here)\"\n"
                .to_vec()
                .into(),
        ))
        .await
        .expect("typed");
    let output = read_until(&mut socket, "owner=runnel-test-job", false).await;
    assert!(
        output.contains(&format!("runnel-test-job in app as {job}, HOME={home}")),
        "{output}"
    );
    read_to_close(&mut socket).await;
    assert_kept_until_session_timeout(&fake, job, "2s").await;
    daemon.stop().await;
}
