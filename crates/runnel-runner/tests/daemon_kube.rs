//! The daemon with `executor = "kubernetes"` when the API server cannot be used: the job fails
//! as `runner_system_failure` with an error naming the server, and the daemon keeps polling.
//! These need no cluster; the end-to-end tests against the fake API server are in the
//! `runnel` crate's `tests/kube.rs`.

use std::sync::Arc;

use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec, TestDaemon};

/// Runs a daemon with one kubernetes runner until `jobs` reach a final state.
async fn run_kube_jobs(fake: &FakeGitLab, section: &str, jobs: &[u64]) {
    let token = fake.create_runner();
    let daemon = TestDaemon::with_one_runner(
        fake,
        &token,
        ("kubernetes", Arc::new(RunnerExecutors::new())),
        "kube-runner",
        "concurrent = 1\ncheck_interval = 1",
        &format!("  [runners.kubernetes]\n{section}"),
    );
    for id in jobs {
        fake.wait_for_final(*id).await;
    }
    daemon.stop().await;
}

fn assert_system_failure(fake: &FakeGitLab, id: u64, host: &str, what: &str) {
    let job = fake.job(id).expect("job");
    let trace = fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(
        fake.final_field(id, "failure_reason"),
        serde_json::json!("runner_system_failure"),
        "{trace}"
    );
    assert!(trace.contains("Job failed (system failure)"), "{trace}");
    assert!(
        trace.contains(host),
        "the error names the API server: {trace}"
    );
    assert!(trace.contains(what), "{trace}");
    assert!(!trace.contains("must not run\n"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_unreachable_api_server_fails_jobs_as_system_failure_and_polling_goes_on() {
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let fake = FakeGitLab::start().await;
    let first = fake.add_job(JobSpec::script(&["echo must not run"]));
    let second = fake.add_job(JobSpec::script(&["echo must not run"]));
    let section =
        format!("    host = \"{host}\"\n    namespace = \"ci\"\n    image = \"busybox\"\n");
    run_kube_jobs(&fake, &section, &[first, second]).await;
    // The second job was requested after the first failed: the daemon kept polling.
    for id in [first, second] {
        assert_system_failure(&fake, id, &host, "failed to create pod");
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_unauthorized_api_server_fails_the_job_with_its_status() {
    // An API server that refuses every request as the real one refuses a bad token.
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized",
                "code": 401
            })),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&["echo must not run"]));
    let section = format!(
        "    host = \"{host}\"\n    bearer_token = \"wrong\"\n    namespace = \"ci\"\n    image = \"busybox\"\n"
    );
    run_kube_jobs(&fake, &section, &[id]).await;
    assert_system_failure(&fake, id, &host, "Unauthorized");
    server.abort();
}
