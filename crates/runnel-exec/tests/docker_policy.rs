//! The runner's `[runners.docker]` policies on the real engine: the runner's services run
//! beside the job's, `privileged` reaches only the allowed images and services, the runner's
//! `user` wins and a job's user must be allowed, and nothing is left behind.
//!
//! Every test needs the engine and the local images of `scripts/test-images.sh`; without them
//! it prints `SKIPPED: …` (or fails with `CI=true`).

mod docker_support;

use std::time::Duration;

use docker_support::{FETCH, available, leftovers, run_in};
use runnel_api::{DockerExecutorOpts, ExecutorOpts, FailureReason, Image, JobPayload, JobVariable};
use runnel_exec::docker::{DockerConfig, DockerExecutor, TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE};
use runnel_exec::test_support::{PayloadBuilder, TestProject};
use runnel_exec::{JobStatus, run_job_with};

/// The runner settings of these tests: those of every Docker test, and a generous wait for
/// services (the Python server may be slow to listen on a busy machine).
fn config() -> DockerConfig {
    DockerConfig {
        wait_for_services_timeout: Some(Duration::from_secs(120)),
        ..docker_support::config()
    }
}

fn with_image(mut payload: JobPayload, name: &str, user: Option<&str>) -> JobPayload {
    payload.image = Some(Image {
        name: name.to_owned(),
        executor_opts: user.map(|user| ExecutorOpts {
            docker: Some(DockerExecutorOpts {
                user: Some(user.to_owned()),
                ..DockerExecutorOpts::default()
            }),
            ..ExecutorOpts::default()
        }),
        ..Image::default()
    });
    payload
}

/// An HTTP service from the local Python image answering on port 8000 with `body`, a shell
/// command run in the service container (`$GREETING`, the capabilities, …).
fn http_service(alias: &str, body: &str) -> Image {
    Image {
        name: TEST_PYTHON_IMAGE.to_owned(),
        alias: alias.to_owned(),
        command: [
            "python3",
            "-m",
            "http.server",
            "8000",
            "--directory",
            "/srv",
        ]
        .map(String::from)
        .to_vec(),
        entrypoint: vec![
            "sh".into(),
            "-c".into(),
            format!("mkdir -p /srv && ({body}) > /srv/index.html && exec \"$@\""),
            "sh".into(),
        ],
        variables: vec![JobVariable::new("HEALTHCHECK_TCP_PORT", "8000")],
        ..Image::default()
    }
}

/// Prints the effective capabilities of the shell: all of them (`…ffffffff`) when privileged.
const CAPS: &str = "grep CapEff /proc/self/status";

#[tokio::test]
async fn docker_runner_services_run_beside_the_jobs_and_are_allowed_whatever_the_list() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9301, "runner-services")
            .script(&[
                &format!("{FETCH} http://runner-web:8000/"),
                &format!("{FETCH} http://job-web:8000/"),
            ])
            .build(),
        TEST_PYTHON_IMAGE,
        None,
    );
    payload.services = vec![http_service("job-web", "echo job service")];
    let mut runner_service = http_service("runner-web", "echo \"hello from $GREETING\"");
    runner_service.variables.push(JobVariable {
        internal: true,
        ..JobVariable::new("GREETING", "the runner")
    });
    // The job's service has the runner's service's image, so it is allowed although the list
    // names neither (gitlab-runner: the runner's services are "internal" images).
    let config = DockerConfig {
        services: vec![runner_service],
        allowed_services: vec!["redis:*".into()],
        ..config()
    };
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    let runner_reply = ran.output.find("\nhello from the runner\n");
    let job_reply = ran.output.find("\njob service\n");
    assert!(
        runner_reply.is_some() && job_reply.is_some(),
        "{}",
        ran.output
    );
    assert_eq!(
        ran.trace
            .matches(&format!("Starting service {TEST_PYTHON_IMAGE} ..."))
            .count(),
        2,
        "{}",
        ran.trace
    );
    assert!(leftovers(9301).await.is_empty());
}

#[tokio::test]
async fn docker_job_service_outside_allowed_services_fails_before_anything_starts() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9302, "refused-service")
            .script(&["echo must not run"])
            .build(),
        TEST_BUSYBOX_IMAGE,
        None,
    );
    payload.services = vec![http_service("web", "echo web")];
    let config = DockerConfig {
        allowed_services: vec!["redis:*".into()],
        ..config()
    };
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Failed, "{}", ran.trace);
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        ran.trace.contains(&format!(
            "The \"{TEST_PYTHON_IMAGE}\" image is not present on list of allowed services:"
        )),
        "{}",
        ran.trace
    );
    assert!(
        ran.trace
            .contains("Job failed (system failure): disallowed image")
    );
    assert!(!ran.trace.contains("Starting service"), "{}", ran.trace);
    assert!(leftovers(9302).await.is_empty());
}

/// The effective capabilities printed as `<who>-CapEff: …` by [`privileged_payload`].
fn caps(output: &str, who: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{who}-CapEff:")))
        .unwrap_or_else(|| panic!("no {who} capabilities in {output}"))
        .trim()
        .to_owned()
}

/// All capabilities, as a privileged container has them.
fn all_caps(caps: &str) -> bool {
    caps.ends_with("ffffffff")
}

/// A job in the Python image printing its capabilities and its service's.
fn privileged_payload(id: u64) -> JobPayload {
    let mut payload = with_image(
        PayloadBuilder::new(id, "privileged")
            .script(&[
                &format!("echo job-$({CAPS})"),
                &format!("{FETCH} http://web:8000/"),
            ])
            .build(),
        TEST_PYTHON_IMAGE,
        None,
    );
    payload.services = vec![http_service("web", &format!("echo service-$({CAPS})"))];
    payload
}

#[tokio::test]
async fn docker_privileged_skips_images_and_services_outside_the_allowed_lists() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    // `privileged` is on, but neither image is on its list: both run unprivileged (an engine
    // that cannot run privileged containers would refuse to start them otherwise).
    let settings = DockerConfig {
        privileged: true,
        allowed_privileged_images: vec!["docker:*-dind".into()],
        allowed_privileged_services: vec!["docker:*-dind".into()],
        ..config()
    };
    let ran = run_in(&project, settings.clone(), privileged_payload(9303)).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(!all_caps(&caps(&ran.output, "job")), "{}", ran.output);
    assert!(!all_caps(&caps(&ran.output, "service")), "{}", ran.output);
    assert!(leftovers(9303).await.is_empty());

    // `services_privileged = false` keeps services unprivileged whatever their list says.
    let settings = DockerConfig {
        services_privileged: Some(false),
        allowed_privileged_services: Vec::new(),
        ..settings
    };
    let ran = run_in(&project, settings, privileged_payload(9304)).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(!all_caps(&caps(&ran.output, "service")), "{}", ran.output);
    assert!(leftovers(9304).await.is_empty());
}

#[tokio::test]
async fn docker_privileged_reaches_an_allowed_image() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let settings = DockerConfig {
        privileged: true,
        allowed_privileged_images: vec!["python:3.*".into()],
        allowed_privileged_services: vec!["docker:*-dind".into()],
        ..config()
    };
    let payload = privileged_payload(9308);
    let ctx = project.context("9308");
    let (events, _) = tokio::sync::mpsc::unbounded_channel();
    let result = run_job_with(&mut DockerExecutor::new(settings), payload, ctx, events).await;
    match result {
        Err(err) if format!("{err:?}").contains("unable to apply caps") => {
            // A sandboxed engine (no CAP_SYS_ADMIN over its containers) refuses privileged
            // containers: that the job container was made privileged is all it shows.
            eprintln!("SKIPPED: this Docker engine cannot run privileged containers ({err})");
        }
        Err(err) => panic!("runnel broke: {err:?}"),
        Ok(outcome) => {
            let log = project.path().join(".runnel/logs/9308.log");
            let log = std::fs::read_to_string(log).expect("the trace log is written");
            assert_eq!(outcome.status, JobStatus::Success, "{log}");
            assert!(all_caps(&caps(&log, "job")), "{log}");
            assert!(!all_caps(&caps(&log, "service")), "{log}");
        }
    }
    assert!(leftovers(9308).await.is_empty());
}

#[tokio::test]
async fn docker_runner_user_wins_and_a_job_user_must_be_allowed() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let script = ["echo uid=$(id -u)"];
    // The runner's `user` wins over the job's.
    let settings = DockerConfig {
        user: Some("1234".into()),
        ..config()
    };
    let payload = with_image(
        PayloadBuilder::new(9305, "runner-user")
            .script(&script)
            .build(),
        TEST_BUSYBOX_IMAGE,
        Some("0"),
    );
    let ran = run_in(&project, settings, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(ran.output.contains("uid=1234"), "{}", ran.output);

    // Without a runner `user`, the job chooses among `allowed_users`, its variables expanded.
    let settings = DockerConfig {
        allowed_users: vec!["1234".into(), "2345".into()],
        ..config()
    };
    let payload = with_image(
        PayloadBuilder::new(9306, "allowed-user")
            .var("RUN_AS", "2345")
            .script(&script)
            .build(),
        TEST_BUSYBOX_IMAGE,
        Some("$RUN_AS"),
    );
    let ran = run_in(&project, settings.clone(), payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(ran.output.contains("uid=2345"), "{}", ran.output);

    let payload = with_image(
        PayloadBuilder::new(9307, "refused-user")
            .script(&script)
            .build(),
        TEST_BUSYBOX_IMAGE,
        Some("0"),
    );
    let ran = run_in(&project, settings, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Failed, "{}", ran.trace);
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        ran.trace.contains(
            "ERROR: Job failed (system failure): user \"0\" is not an allowed user: [1234 2345]"
        ),
        "{}",
        ran.trace
    );
    assert!(!ran.output.contains("uid="), "{}", ran.output);
    for id in [9305, 9306, 9307] {
        assert!(leftovers(id).await.is_empty());
    }
}
