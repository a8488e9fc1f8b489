//! The daemon's `[runners.docker]` policies against the fake GitLab and a real Docker engine:
//! `[[runners.docker.services]]` started for every job, and `allowed_images` failing a job
//! as gitlab-runner does. Without an engine (or the local test images) the tests print
//! `SKIPPED` and pass, except with `CI=true`, where they fail.

mod daemon_docker_support;

use daemon_docker_support::run_docker_jobs;
use runnel_exec::docker::{JOB_LABEL, TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE, docker_available};
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};

/// Moves the fake's job ids past those of other test processes that share the engine (the
/// fake numbers jobs from 1001 in every process), so [`leftovers`] sees only this test's.
fn spread_job_ids(fake: &FakeGitLab) {
    for _ in 0..std::process::id() % 50_000 {
        fake.create_runner();
    }
}

/// The containers and networks of the jobs `ids` that still exist on the engine.
fn leftovers(ids: &[u64]) -> String {
    let mut found = String::new();
    for id in ids {
        for kind in [&["ps", "-a"][..], &["network", "ls"][..]] {
            let output = std::process::Command::new("docker")
                .args(kind)
                .args(["-q", "--filter"])
                .arg(format!("label={JOB_LABEL}={id}"))
                .output()
                .expect("the docker CLI");
            assert!(
                output.status.success(),
                "docker {kind:?} failed: {output:?}"
            );
            found.push_str(String::from_utf8_lossy(&output.stdout).trim());
        }
    }
    found
}

/// A `[[runners.docker.services]]` entry: an HTTP server from the local Python image that
/// answers with its `GREETING` (set by `environment`) on port 8000.
fn runner_service(alias: &str) -> String {
    format!(
        r#"    [[runners.docker.services]]
      name = "{TEST_PYTHON_IMAGE}"
      alias = "{alias}"
      entrypoint = ["sh", "-c", "mkdir -p /srv && echo \"hello from $GREETING\" > /srv/index.html && exec \"$@\"", "sh"]
      command = ["python3", "-m", "http.server", "8000", "--directory", "/srv"]
      environment = ["GREETING=the runner's service", "HEALTHCHECK_TCP_PORT=8000"]
"#
    )
}

const FETCH: &str = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runner_services_start_for_every_job_and_answer_to_their_alias() {
    if !docker_available(&[TEST_PYTHON_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    spread_job_ids(&fake);
    let jobs: Vec<u64> = (0..2)
        .map(|_| {
            fake.add_job(JobSpec {
                image: Some((TEST_PYTHON_IMAGE.to_owned(), Vec::new())),
                ..JobSpec::script(&[&format!("{FETCH} http://runner-web:8000/")])
            })
        })
        .collect();
    // The runner's services are allowed whatever `allowed_services` says.
    // A generous wait: on a busy machine the Python server may take a while to listen.
    let section = format!(
        "    pull_policy = [\"if-not-present\"]\n    wait_for_services_timeout = 120\n    allowed_services = [\"redis:*\"]\n{}",
        runner_service("runner-web")
    );
    run_docker_jobs(&fake, &section, &jobs).await;
    for &id in &jobs {
        let trace = fake.trace_text(id);
        assert_eq!(
            fake.job(id).expect("job").state,
            FakeJobState::Success,
            "{trace}"
        );
        assert!(
            trace.contains(&format!("Starting service {TEST_PYTHON_IMAGE} ...")),
            "{trace}"
        );
        assert!(
            trace.contains("\nhello from the runner's service"),
            "{trace}"
        );
    }
    assert_eq!(leftovers(&jobs), "");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_disallowed_image_fails_the_job_as_a_system_failure() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE]) {
        return;
    }
    let fake = FakeGitLab::start().await;
    spread_job_ids(&fake);
    let refused = fake.add_job(JobSpec {
        image: Some((TEST_PYTHON_IMAGE.to_owned(), Vec::new())),
        ..JobSpec::script(&["echo must not run"])
    });
    let allowed = fake.add_job(JobSpec {
        image: Some((TEST_BUSYBOX_IMAGE.to_owned(), Vec::new())),
        ..JobSpec::script(&["echo allowed ran"])
    });
    let section = format!(
        "    pull_policy = [\"if-not-present\"]\n    allowed_images = [\"runnel-test/*\"]\n{}",
        runner_service("runner-web")
    );
    run_docker_jobs(&fake, &section, &[refused, allowed]).await;
    let trace = fake.trace_text(refused);
    assert_eq!(
        fake.job(refused).expect("job").state,
        FakeJobState::Failed,
        "{trace}"
    );
    assert_eq!(
        fake.final_field(refused, "failure_reason"),
        serde_json::json!("runner_system_failure"),
        "{trace}"
    );
    assert!(
        trace.contains(&format!(
            "ERROR: The \"{TEST_PYTHON_IMAGE}\" image is not present on list of allowed images:"
        )),
        "{trace}"
    );
    assert!(trace.contains("\n- runnel-test/*\n"), "{trace}");
    assert!(
        trace.contains("ERROR: Job failed (system failure): disallowed image"),
        "{trace}"
    );
    // Refused before anything started: no service, no script.
    assert!(!trace.contains("Starting service"), "{trace}");
    assert!(!trace.contains("\nmust not run"), "{trace}");
    let trace = fake.trace_text(allowed);
    assert_eq!(
        fake.job(allowed).expect("job").state,
        FakeJobState::Success,
        "{trace}"
    );
    assert!(trace.contains("\nallowed ran"), "{trace}");
    assert_eq!(leftovers(&[refused, allowed]), "");
}
