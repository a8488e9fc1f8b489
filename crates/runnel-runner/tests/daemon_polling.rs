//! How the daemon polls the fake GitLab for jobs: `request_concurrency` job requests of one
//! runner in flight at most, and `check_interval` between requests that found no job.

mod daemon_shell_support;

use std::time::Duration;

use daemon_shell_support::start_shell_daemon;
use runnel_runner::test_support::FakeGitLab;

/// Waits until `done` holds, failing the test after a minute.
async fn wait_until(fake: &FakeGitLab, what: &str, done: impl FnMut(&FakeGitLab) -> bool) {
    tokio::time::timeout(Duration::from_secs(60), fake.wait_for(done))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_concurrency_three_keeps_up_to_three_job_requests_in_flight() {
    let fake = FakeGitLab::start().await;
    fake.hold_job_requests(Duration::from_secs(2));
    let token = fake.create_runner();
    let daemon = start_shell_daemon(
        &fake,
        &token,
        "check_interval = 1",
        "  request_concurrency = 3",
    );
    wait_until(&fake, "three job requests at once", |fake| {
        fake.peak_job_requests(&token) >= 3
    })
    .await;
    // A few more rounds of held requests never exceed the limit.
    wait_until(&fake, "more empty job requests", |fake| {
        fake.empty_request_gaps(&token).len() >= 8
    })
    .await;
    daemon.stop().await;
    assert_eq!(fake.peak_job_requests(&token), 3);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_concurrency_one_never_has_two_job_requests_in_flight() {
    let fake = FakeGitLab::start().await;
    fake.hold_job_requests(Duration::from_secs(1));
    let token = fake.create_runner();
    let daemon = start_shell_daemon(
        &fake,
        &token,
        "check_interval = 1",
        "  request_concurrency = 1",
    );
    wait_until(&fake, "four empty job requests", |fake| {
        fake.empty_request_gaps(&token).len() >= 3
    })
    .await;
    daemon.stop().await;
    assert_eq!(fake.peak_job_requests(&token), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_job_requests_of_a_runner_are_at_least_check_interval_apart() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 2", "");
    wait_until(&fake, "four empty job requests", |fake| {
        fake.empty_request_gaps(&token).len() >= 3
    })
    .await;
    daemon.stop().await;
    let gaps = fake.empty_request_gaps(&token);
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_secs(2)),
        "gaps between empty job requests shorter than check_interval = 2: {gaps:?}"
    );
}
