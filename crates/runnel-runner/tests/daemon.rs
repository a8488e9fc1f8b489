//! The daemon against the fake GitLab, with the real shell executor from runnel-exec.

use std::path::Path;
use std::sync::Arc;

use runnel_runner::daemon::{Control, Shutdown};
use runnel_runner::exec_adapter::ShellJobExecutor;
use runnel_runner::test_support::{
    FakeGitLab, FakeJobState, JobSpec, TestDaemon, one_runner_config,
};

fn shell() -> (&'static str, Arc<ShellJobExecutor>) {
    ("shell", Arc::new(ShellJobExecutor::new()))
}

fn config(
    fake: &FakeGitLab,
    token: &str,
    dir: &Path,
    extra_global: &str,
    extra_runner: &str,
) -> String {
    one_runner_config(
        fake,
        token,
        dir,
        "shell",
        "test-runner",
        &format!("concurrent = 4\ncheck_interval = 1\n{extra_global}"),
        extra_runner,
    )
}

async fn start(fake: &FakeGitLab, extra_global: &str, extra_runner: &str) -> TestDaemon {
    let token = fake.create_runner();
    start_with_token(fake, &token, extra_global, extra_runner).await
}

async fn start_with_token(
    fake: &FakeGitLab,
    token: &str,
    extra_global: &str,
    extra_runner: &str,
) -> TestDaemon {
    let (name, executor) = shell();
    TestDaemon::with_one_runner(
        fake,
        token,
        (name, executor),
        "test-runner",
        &format!("concurrent = 4\ncheck_interval = 1\n{extra_global}"),
        extra_runner,
    )
}

/// The daemon's whole `/metrics` response, head and body; empty while nothing listens.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    text
}

/// The head and the body of a `/metrics` response.
fn split_response(response: &str) -> (&str, &str) {
    response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"))
}

/// Replaces a file as editors do, so the daemon never reads half of it.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_job_streams_its_trace_and_reports_success_with_checksum() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&["echo hello from the job"]));
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success);
    assert_eq!(job.assignments, 1);
    let trace = fake.trace_text(id);
    assert!(trace.contains("hello from the job"), "{trace}");
    assert!(trace.contains("Job succeeded"), "{trace}");
    let requests = fake.requests();
    let ack = requests
        .iter()
        .position(|r| r == "PUT /api/v4/jobs/:id")
        .expect("an acknowledgement");
    let first_patch = requests
        .iter()
        .position(|r| r == "PATCH /api/v4/jobs/:id/trace")
        .expect("a trace patch");
    assert!(
        ack < first_patch,
        "the job must be acknowledged before its trace: {requests:?}"
    );
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_script_reports_script_failure_and_exit_code() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&["echo about to fail", "exit 3"]));
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Failed);
    assert_eq!(fake.final_field(id, "failure_reason"), "script_failure");
    assert_eq!(fake.final_field(id, "exit_code"), 3);
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_variables_never_reach_the_coordinator() {
    let fake = FakeGitLab::start().await;
    let mut spec = JobSpec::script(&[
        "echo \"secret is $DEPLOY_PASSWORD\"",
        "printf '%s' \"$DEPLOY_PASSWORD\" | fold -w 3",
        "echo \"url https://x/?p=s3cr3t%2FValue%2B42\"",
    ]);
    spec.variables
        .push(("DEPLOY_PASSWORD".into(), "s3cr3t/Value+42".into(), true));
    let id = fake.add_job(spec);
    let daemon = start(&fake, "", "").await;
    fake.wait_for_final(id).await;
    let trace = fake.trace_text(id);
    assert!(!trace.contains("s3cr3t/Value+42"), "{trace}");
    assert!(trace.contains("secret is [MASKED]"), "{trace}");
    assert!(
        !trace.contains("s3cr3t%2FValue%2B42"),
        "the URL-encoded form leaked: {trace}"
    );
    assert!(
        !trace.contains("glcbt-64_job"),
        "the job token leaked: {trace}"
    );
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_cancel_stops_the_script_and_runs_after_script() {
    let fake = FakeGitLab::start().await;
    // Output keeps the trace PATCHes going; their `Job-Status: canceling` carries the cancel.
    let mut spec = JobSpec::script(&[
        "echo started",
        "for i in $(seq 1 60); do echo tick $i; sleep 1; done",
        "echo not reached",
    ]);
    spec.after_script = vec!["echo after_script ran with $CI_JOB_STATUS".into()];
    let id = fake.add_job(spec);
    let daemon = start(&fake, "", "").await;
    fake.wait_for_trace(id, "started").await;
    fake.cancel(id, true);
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Canceled);
    let trace = fake.trace_text(id);
    assert!(trace.contains("after_script ran with canceled"), "{trace}");
    assert!(!trace.contains("not reached"), "{trace}");
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_timeout_fails_the_job_with_job_execution_timeout() {
    let fake = FakeGitLab::start().await;
    let mut spec = JobSpec::script(&["echo waiting", "sleep 60"]);
    spec.timeout = Some(2);
    let id = fake.add_job(spec);
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Failed);
    assert_eq!(
        fake.final_field(id, "failure_reason"),
        "job_execution_timeout"
    );
    let trace = fake.trace_text(id);
    // One verdict, in gitlab-runner's words (`common/build.go` `runtimeStateAndError`).
    assert!(
        trace.contains("ERROR: Job failed: execution took longer than 2s seconds"),
        "{trace}"
    );
    assert_eq!(trace.matches("Job failed").count(), 1, "{trace}");
    assert!(!trace.contains("canceled"), "{trace}");
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_limit_truncates_with_gitlab_notice() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&[
        "head -c 5000 /dev/zero | tr '\\0' x",
        "echo; echo still running",
    ]));
    let daemon = start(&fake, "", "  output_limit = 1").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success);
    let trace = fake.trace_text(id);
    assert!(
        trace.contains("Job's log exceeded limit of 1024 bytes."),
        "{trace}"
    );
    assert!(
        job.trace.len() < 1024 + 300,
        "trace of {} bytes",
        job.trace.len()
    );
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_uploaded_following_a_redirect_and_downloaded_by_dependents() {
    let fake = FakeGitLab::start().await;
    fake.redirect_uploads();
    let mut build = JobSpec::script(&["mkdir -p dist", "echo built > dist/out.txt"]);
    build.artifact_paths = vec!["dist/".into()];
    let build_id = fake.add_job(build);
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(build_id).await;
    assert_eq!(
        job.state,
        FakeJobState::Success,
        "{}",
        fake.trace_text(build_id)
    );
    let (query, file_name, data) = job.artifacts.first().cloned().expect("an upload");
    assert_eq!(
        query.get("artifact_type").map(String::as_str),
        Some("archive")
    );
    assert_eq!(
        query.get("artifact_format").map(String::as_str),
        Some("zip")
    );
    assert_eq!(file_name, "build.zip");
    assert!(data.starts_with(b"PK"), "a zip archive");
    let mut test = JobSpec::script(&["cat dist/out.txt"]);
    test.dependencies = vec![build_id];
    let test_id = fake.add_job(test);
    let job = fake.wait_for_final(test_id).await;
    assert_eq!(
        job.state,
        FakeJobState::Success,
        "{}",
        fake.trace_text(test_id)
    );
    assert!(fake.trace_text(test_id).contains("built"));
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_upload_query_carries_type_format_and_expire_in() {
    let fake = FakeGitLab::start().await;
    let mut build = JobSpec::script(&["mkdir -p dist", "echo built > dist/out.txt"]);
    build.artifact_paths = vec!["dist/".into()];
    let id = fake.add_job(build);
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success, "{}", fake.trace_text(id));
    let (query, _, _) = job.artifacts.first().cloned().expect("an upload");
    // The payload's `expire_in: 1 week` goes in the query string, as gitlab-runner sends it.
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("artifact_format", "zip"),
            ("artifact_type", "archive"),
            ("expire_in", "1 week")
        ]
    );
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_outage_of_30_seconds_loses_no_trace_and_delivers_the_status() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&[
        "for i in $(seq 1 15); do echo line $i; sleep 1; done",
    ]));
    let daemon = start(&fake, "", "").await;
    fake.wait_for_trace(id, "line 2").await;
    fake.go_away().await;
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    fake.come_back().await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success);
    let trace = fake.trace_text(id);
    for i in 1..=15 {
        assert!(
            trace.contains(&format!("line {i}\n")),
            "line {i} missing: {trace}"
        );
    }
    // The fake checks the final checksum and size against every byte it received.
    assert_eq!(fake.violations(), Vec::<String>::new());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_run_forty_jobs_exactly_once() {
    let fake = FakeGitLab::start().await;
    let ids: Vec<u64> = (0..40)
        .map(|i| fake.add_job(JobSpec::script(&[&format!("echo job {i}")])))
        .collect();
    let token = fake.create_runner();
    let first = start_with_token(&fake, &token, "", "").await;
    let second = start_with_token(&fake, &token, "", "").await;
    fake.wait_for(|fake| {
        ids.iter()
            .all(|id| fake.job(*id).is_some_and(|j| j.final_update.is_some()))
    })
    .await;
    for id in &ids {
        let job = fake.job(*id).expect("job");
        assert_eq!(job.assignments, 1, "job {id}");
        assert_eq!(
            job.state,
            FakeJobState::Success,
            "job {id}: {}",
            fake.trace_text(*id)
        );
    }
    first.stop().await;
    second.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_limit_keeps_its_jobs_from_overlapping() {
    let fake = FakeGitLab::start().await;
    let lock_dir = tempfile::tempdir().expect("tempdir");
    let lock = lock_dir.path().join("held");
    // `mkdir` fails while another job holds the lock: overlapping jobs fail.
    let take = format!("mkdir '{}'", lock.display());
    let give = format!("rmdir '{}'", lock.display());
    let ids: Vec<u64> = (0..3)
        .map(|_| fake.add_job(JobSpec::script(&[&take, "sleep 1", &give])))
        .collect();
    let daemon = start(&fake, "", "  limit = 1").await;
    for id in &ids {
        let job = fake.wait_for_final(*id).await;
        assert_eq!(
            job.state,
            FakeJobState::Success,
            "job {id} overlapped another: {}",
            fake.trace_text(*id)
        );
    }
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_concurrent_caps_jobs_across_runners() {
    let fake = FakeGitLab::start().await;
    let lock_dir = tempfile::tempdir().expect("tempdir");
    let lock = lock_dir.path().join("held");
    let take = format!("mkdir '{}'", lock.display());
    let give = format!("rmdir '{}'", lock.display());
    let ids: Vec<u64> = (0..4)
        .map(|_| fake.add_job(JobSpec::script(&[&take, "sleep 1", &give])))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Two runners that could each take a job at once; `concurrent = 1` allows one job in all.
    let mut text = String::from("concurrent = 1\ncheck_interval = 1\n");
    for name in ["first", "second"] {
        text.push_str(&format!(
            "[[runners]]\n  name = \"{name}\"\n  url = \"{}\"\n  token = \"{}\"\n  executor = \"shell\"\n  builds_dir = \"{}\"\n",
            fake.url(),
            fake.create_runner(),
            dir.path().join(name).display(),
        ));
    }
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, text).expect("write config");
    let daemon = TestDaemon::spawn(config_path, None, shell().1);
    for id in &ids {
        let job = fake.wait_for_final(*id).await;
        assert_eq!(
            job.state,
            FakeJobState::Success,
            "job {id} overlapped another: {}",
            fake.trace_text(*id)
        );
    }
    daemon.stop().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forceful_shutdown_aborts_running_jobs_and_reports_them_failed() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&["echo started", "sleep 60"]));
    let daemon = start(&fake, "", "").await;
    fake.wait_for_trace(id, "started").await;
    daemon.send(Control::Forceful).await;
    assert_eq!(daemon.join().await, Shutdown::Forceful);
    let job = fake.job(id).expect("job");
    assert_eq!(job.state, FakeJobState::Failed);
    let reason = job
        .final_update
        .and_then(|u| u.get("failure_reason").cloned())
        .unwrap_or_default();
    // `runner_interrupted` is not in the fake's failure_reasons, so it maps to unknown_failure.
    assert_eq!(reason, "unknown_failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_apply_without_restart_and_invalid_edits_keep_the_last_good_config() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, "concurrent = 2\ncheck_interval = 1\n").expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let daemon = TestDaemon::spawn(
        config_path.clone(),
        Some(format!("127.0.0.1:{port}")),
        shell().1,
    );
    let token = fake.create_runner();
    write_atomically(&config_path, &config(&fake, &token, dir.path(), "", ""));
    let first = fake.add_job(JobSpec::script(&["echo picked up after reload"]));
    assert_eq!(
        fake.wait_for_final(first).await.state,
        FakeJobState::Success
    );
    write_atomically(&config_path, "concurrent = [broken\n");
    while !scrape(port)
        .await
        .contains("gitlab_runner_configuration_loading_error_total 1")
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let second = fake.add_job(JobSpec::script(&["echo still polling"]));
    assert_eq!(
        fake.wait_for_final(second).await.state,
        FakeJobState::Success
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_lost_by_the_server_is_resent_after_a_416() {
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&[
        "echo first part",
        "for i in 1 2 3; do sleep 1; echo more $i; done",
    ]));
    let daemon = start(&fake, "", "").await;
    fake.wait_for_trace(id, "first part").await;
    fake.lose_trace(id, 5);
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success);
    let trace = fake.trace_text(id);
    assert!(trace.starts_with("Running with runnel"), "{trace}");
    assert!(
        trace.contains("first part") && trace.contains("more 3"),
        "{trace}"
    );
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .count()
            >= 2
    );
    // The final checksum and size cover the resent bytes: the fake compares them.
    assert_eq!(fake.violations(), Vec::<String>::new());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_update_is_repeated_while_gitlab_answers_202() {
    let fake = FakeGitLab::start().await;
    fake.answer_final_updates_with_202(2);
    let id = fake.add_job(JobSpec::script(&["echo done"]));
    let daemon = start(&fake, "", "").await;
    let job = fake.wait_for_final(id).await;
    assert_eq!(job.state, FakeJobState::Success);
    let puts = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT"))
        .count();
    assert!(
        puts >= 4,
        "acknowledgement, two 202s and the accepted update: {puts}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_cancel_aborts_without_after_script() {
    let fake = FakeGitLab::start().await;
    let mut spec = JobSpec::script(&[
        "echo started",
        "for i in $(seq 1 60); do echo tick $i; sleep 1; done",
    ]);
    spec.after_script = vec!["echo after_script ran".into()];
    let id = fake.add_job(spec);
    let daemon = start(&fake, "", "").await;
    fake.wait_for_trace(id, "started").await;
    fake.cancel(id, false);
    fake.wait_for(|fake| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("PUT"))
            .count()
            >= 2
    })
    .await;
    let trace = fake.trace_text(id);
    assert!(!trace.contains("after_script ran"), "{trace}");
    assert!(!trace.contains("tick 60"), "{trace}");
    assert_eq!(fake.job(id).expect("job").state, FakeJobState::Canceled);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_rotated_and_written_back() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let times =
        "  token_obtained_at = 2000-01-01T00:00:00Z\n  token_expires_at = 2000-01-02T00:00:00Z";
    let daemon = start_with_token(&fake, &token, "# keep this comment", times).await;
    fake.wait_for(|fake| !fake.rotated_tokens().is_empty())
        .await;
    let (old, new) = fake.rotated_tokens()[0].clone();
    assert_eq!(old, token);
    let id = fake.add_job(JobSpec::script(&["echo with the new token"]));
    assert_eq!(fake.wait_for_final(id).await.state, FakeJobState::Success);
    let text = std::fs::read_to_string(daemon.dir().join("config.toml")).expect("config");
    assert!(
        text.contains(&format!("token = \"{new}\"")) && text.contains("# keep this comment"),
        "{text}"
    );
    assert!(
        text.contains("token_expires_at = 2099-01-01T00:00:00Z"),
        "{text}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_received_jobs_in_gitlab_runners_text_format() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    let token = fake.create_runner();
    std::fs::write(&config_path, config(&fake, &token, dir.path(), "", "")).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let daemon = TestDaemon::spawn(
        config_path.clone(),
        Some(format!("127.0.0.1:{port}")),
        shell().1,
    );
    let id = fake.add_job(JobSpec::script(&["echo counted"]));
    assert_eq!(fake.wait_for_final(id).await.state, FakeJobState::Success);
    let response = scrape(port).await;
    let (head, body) = split_response(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    let families = runnel_runner::metrics::text_format::parse(body)
        .unwrap_or_else(|e| panic!("not Prometheus text 0.0.4: {e}\n{body}"));
    let system_id = std::fs::read_to_string(runnel_runner::system_id::system_id_path(&config_path))
        .expect("the daemon wrote its system id");
    let runner = runnel_runner::config::short_token(&token);
    let total = families
        .iter()
        .find(|f| f.name == "gitlab_runner_jobs_total")
        .unwrap_or_else(|| panic!("no gitlab_runner_jobs_total in\n{body}"));
    assert_eq!(total.kind, "counter");
    let expected = format!(
        "gitlab_runner_jobs_total{{runner=\"{runner}\",runner_name=\"test-runner\",system_id=\"{}\"}} 1\n",
        system_id.trim()
    );
    assert!(body.contains(&expected), "missing {expected:?} in\n{body}");
    assert!(
        families
            .iter()
            .any(|f| f.name == "gitlab_runner_jobs" && f.kind == "gauge"),
        "{body}"
    );
    daemon.stop().await;
    // The metrics server ends with the daemon.
    assert_eq!(scrape(port).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_a_running_job_with_its_state_and_build_stage() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    let token = fake.create_runner();
    std::fs::write(&config_path, config(&fake, &token, dir.path(), "", "")).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let daemon = TestDaemon::spawn(
        config_path.clone(),
        Some(format!("127.0.0.1:{port}")),
        shell().1,
    );
    let go_on = dir.path().join("go-on");
    let id = fake.add_job(JobSpec::script(&[
        "echo in-script",
        &format!("while [ ! -e {} ]; do sleep 0.1; done", go_on.display()),
    ]));
    fake.wait_for_trace(id, "in-script").await;
    let runner = runnel_runner::config::short_token(&token);
    // GitLab: commands/builds_helper.go — state, build stage and executor stage of the job.
    let series = format!(
        "gitlab_runner_jobs{{executor_stage=\"prepare\",runner=\"{runner}\",runner_name=\"test-runner\",stage=\"step_script\",state=\"running\""
    );
    let response = scrape(port).await;
    let (_, body) = split_response(&response);
    let line = body
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series:?} in\n{body}"));
    assert!(line.ends_with("} 1"), "{line}");
    std::fs::write(&go_on, "").expect("write");
    assert_eq!(fake.wait_for_final(id).await.state, FakeJobState::Success);
    daemon.stop().await;
}

/// The events logged on this thread (and by the tasks of a current-thread runtime), as
/// `(level, fields)` with the message under `message`.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<CapturedEvent>>>);

type CapturedEvent = (tracing::Level, Vec<(String, String)>);

impl Captured {
    fn events(&self) -> Vec<CapturedEvent> {
        self.0
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl tracing::Subscriber for Captured {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        if let Ok(mut events) = self.0.lock() {
            events.push((*event.metadata().level(), fields.0));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn failed_job_final_update_confirmed_by_job_status_failed_is_delivered_without_warning() {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.clone());
    // One thread: the daemon's tasks log through this thread's subscriber.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let fake = FakeGitLab::start().await;
        let id = fake.add_job(JobSpec::script(&["exit 1"]));
        let daemon = start(&fake, "", "").await;
        assert_eq!(fake.wait_for_final(id).await.state, FakeJobState::Failed);
        // The fake answers the final `failed` with `Job-Status: failed`, as GitLab does.
        let finished = loop {
            let finished = captured.events().into_iter().find(|(_, fields)| {
                fields.contains(&("message".to_owned(), "job finished".to_owned()))
            });
            if let Some((_, fields)) = finished {
                break fields;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(
            finished.contains(&("delivered".to_owned(), "true".to_owned())),
            "{finished:?}"
        );
        daemon.stop().await;
        assert_eq!(fake.violations(), Vec::<String>::new());
    });
    let warnings: Vec<_> = captured
        .events()
        .into_iter()
        .filter(|(level, _)| *level <= tracing::Level::WARN)
        .collect();
    assert_eq!(warnings, Vec::new());
}

/// The value of the unlabelled counter `name` in a `/metrics` body.
fn counter_value(body: &str, name: &str) -> Option<u64> {
    body.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_config_edit_reloads_the_config_once() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, "concurrent = 2\ncheck_interval = 1\n").expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let daemon = TestDaemon::spawn(
        config_path.clone(),
        Some(format!("127.0.0.1:{port}")),
        shell().1,
    );
    let loaded = || async {
        counter_value(
            &scrape(port).await,
            "gitlab_runner_configuration_loaded_total",
        )
    };
    while loaded().await.is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(loaded().await, Some(1));
    let token = fake.create_runner();
    // Edited in place, as `>` or an editor without backup files does: truncated, then written.
    std::fs::write(&config_path, config(&fake, &token, dir.path(), "", "")).expect("write");
    let job = fake.add_job(JobSpec::script(&["echo after the edit"]));
    assert_eq!(fake.wait_for_final(job).await.state, FakeJobState::Success);
    // Past one more mtime check, which must not load the same edit again.
    tokio::time::sleep(runnel_runner::reload::RELOAD_CHECK_INTERVAL * 2).await;
    assert_eq!(loaded().await, Some(2));
    // A new mtime on the same contents (what the mtime check sees when its stat fell between
    // the truncation and the write of an edit the watcher already loaded) is no new edit.
    let same = std::fs::read_to_string(&config_path).expect("read");
    write_atomically(&config_path, &same);
    tokio::time::sleep(runnel_runner::reload::RELOAD_CHECK_INTERVAL * 2).await;
    assert_eq!(loaded().await, Some(2));
    daemon.stop().await;
}
