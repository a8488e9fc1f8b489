//! Which slot a job of the daemon gets, and what the daemon may remove at start: jobs running
//! at once get gitlab-runner's `CI_CONCURRENT_ID` and `CI_CONCURRENT_PROJECT_ID` (the shared
//! builds directory follows the project slot), and the Docker start-up sweep removes only its
//! own runners' leftovers, never the containers of another runner or of `runnel exec` on the
//! same engine.

use std::sync::Arc;
use std::time::Duration;

use runnel_exec::docker::{MANAGED_LABEL, TEST_BUSYBOX_IMAGE, docker_available};
use runnel_runner::config::short_token;
use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::exec_adapter::ShellJobExecutor;
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec, TestDaemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_running_at_once_get_the_lowest_free_slots_as_gitlab_runner_gives_them() {
    let fake = FakeGitLab::start().await;
    let meeting = tempfile::tempdir().expect("tempdir");
    let dir = meeting.path().display();
    // Each job waits until both run, so they hold their slots at the same time.
    let script = format!(
        "touch {dir}/$CI_JOB_ID; while [ $(ls {dir} | wc -l) -lt 2 ]; do sleep 0.1; done; \
         echo \"slots $CI_CONCURRENT_ID/$CI_CONCURRENT_PROJECT_ID in $CI_PROJECT_DIR\""
    );
    let jobs = [
        fake.add_job(JobSpec::script(&[script.as_str()])),
        fake.add_job(JobSpec::script(&[script.as_str()])),
    ];
    let token = fake.create_runner();
    let daemon = TestDaemon::with_one_runner(
        &fake,
        &token,
        ("shell", Arc::new(ShellJobExecutor::new())),
        "slots",
        "concurrent = 2\ncheck_interval = 1",
        "",
    );
    let mut seen = Vec::new();
    for id in jobs {
        let job = fake.wait_for_final(id).await;
        let trace = fake.trace_text(id);
        assert_eq!(job.state, FakeJobState::Success, "{trace}");
        let line = trace
            .lines()
            .find(|l| l.starts_with("slots "))
            .unwrap_or_else(|| panic!("no slots line: {trace}"))
            .to_owned();
        seen.push(line);
    }
    daemon.stop().await;
    seen.sort();
    let short = short_token(&token);
    // The same project: both slots differ, and the builds directory is
    // <builds>/<short token>/<project slot>/<project path>.
    for (line, slot) in seen.iter().zip(["0/0", "1/1"]) {
        assert!(line.starts_with(&format!("slots {slot} in ")), "{seen:?}");
        let project_slot = &slot[2..];
        assert!(
            line.contains(&format!("/{short}/{project_slot}/")),
            "{line}: the builds directory follows the project slot"
        );
    }
}

/// Runs `docker create` with `labels` and returns the container's id.
fn create_container(labels: &[String]) -> String {
    let mut command = std::process::Command::new("docker");
    command.arg("create");
    for label in labels {
        command.args(["--label", label]);
    }
    let output = command
        .args([TEST_BUSYBOX_IMAGE, "true"])
        .output()
        .expect("the docker CLI");
    assert!(output.status.success(), "docker create: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn exists(id: &str) -> bool {
    std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", id])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_start_up_sweep_removes_only_its_own_runners_leftovers() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let label = |runner: &str| {
        vec![
            format!("{MANAGED_LABEL}=true"),
            format!("com.gitlab.gitlab-runner.runner.id={runner}"),
        ]
    };
    let ours = create_container(&label(&short_token(&token)));
    let another_runners = create_container(&label("someoneelse"));
    // `runnel exec` on the same engine: its containers name the runner `local`.
    let local_exec = create_container(&label("local"));
    let daemon = TestDaemon::with_one_runner(
        &fake,
        &token,
        ("docker", Arc::new(RunnerExecutors::new())),
        "sweeper",
        "concurrent = 1\ncheck_interval = 1",
        "  [runners.docker]\n",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while exists(&ours) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not remove its own leftover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop().await;
    let others = [&another_runners, &local_exec];
    let kept: Vec<bool> = others.iter().map(|id| exists(id)).collect();
    for id in others {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", id.as_str()])
            .output();
    }
    assert_eq!(
        kept,
        [true, true],
        "another runner's and runnel exec's containers are kept"
    );
}
