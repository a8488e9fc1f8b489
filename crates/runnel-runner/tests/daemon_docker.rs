//! The daemon with `executor = "docker"` against the fake GitLab and a real Docker engine.
//! Without an engine (or the local test images) the tests print `SKIPPED` and pass, except
//! with `CI=true`, where they fail.

mod daemon_docker_support;

use daemon_docker_support::run_docker_jobs;
use runnel_exec::docker::{MANAGED_LABEL, TEST_BUSYBOX_IMAGE, docker_available};
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};

/// The containers runnel made that still exist on the engine.
fn managed_containers() -> String {
    let output = std::process::Command::new("docker")
        .args(["ps", "-a", "-q", "--filter"])
        .arg(format!("label={MANAGED_LABEL}=true"))
        .output()
        .expect("the docker CLI");
    assert!(output.status.success(), "docker ps failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runner_runs_the_job_in_its_image_and_removes_its_containers() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    let in_image = fake.add_job(JobSpec {
        image: Some((TEST_BUSYBOX_IMAGE.to_owned(), Vec::new())),
        ..JobSpec::script(&["echo \"hello from $(uname -s)\"", "busybox | head -1"])
    });
    // The runner's `image` is used when the job names none; the job's own pull policy must be
    // among the allowed ones.
    let runner_image = fake.add_job(JobSpec {
        image: None,
        ..JobSpec::script(&["test -f /.dockerenv && echo inside a container"])
    });
    let job_policy = fake.add_job(JobSpec {
        image: Some((TEST_BUSYBOX_IMAGE.to_owned(), vec!["never".to_owned()])),
        ..JobSpec::script(&["echo with pull policy never"])
    });
    let section = format!(
        "    image = \"{TEST_BUSYBOX_IMAGE}\"\n    pull_policy = [\"if-not-present\"]\n    allowed_pull_policies = [\"if-not-present\", \"never\"]\n"
    );
    run_docker_jobs(&fake, &section, &[in_image, runner_image, job_policy]).await;
    for (id, expected) in [
        (in_image, "hello from Linux"),
        (runner_image, "inside a container"),
        (job_policy, "with pull policy never"),
    ] {
        let job = fake.job(id).expect("job");
        let trace = fake.trace_text(id);
        assert_eq!(job.state, FakeJobState::Success, "{trace}");
        assert!(trace.contains(expected), "{trace}");
        assert!(trace.contains(TEST_BUSYBOX_IMAGE), "{trace}");
    }
    assert!(fake.trace_text(in_image).contains("BusyBox"));
    assert_eq!(managed_containers(), "");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_job_with_a_missing_image_fails_with_image_pull_failure() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec {
        image: Some(("runnel-test/no-such-image:latest".to_owned(), Vec::new())),
        ..JobSpec::script(&["echo must not run"])
    });
    run_docker_jobs(&fake, "    pull_policy = \"never\"\n", &[id]).await;
    let job = fake.job(id).expect("job");
    let trace = fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(
        fake.final_field(id, "failure_reason"),
        serde_json::json!("image_pull_failure"),
        "{trace}"
    );
    assert!(
        trace.contains("runnel-test/no-such-image:latest"),
        "{trace}"
    );
    assert!(!trace.contains("\nmust not run"), "{trace}");
    assert_eq!(managed_containers(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runner_with_an_unknown_pull_policy_fails_the_job_as_a_system_failure() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    let id = fake.add_job(JobSpec::script(&["echo must not run"]));
    run_docker_jobs(&fake, "    pull_policy = \"sometimes\"\n", &[id]).await;
    let trace = fake.trace_text(id);
    assert_eq!(
        fake.final_field(id, "failure_reason"),
        serde_json::json!("runner_system_failure"),
        "{trace}"
    );
    assert!(trace.contains("`runners.docker.pull_policy`"), "{trace}");
}
