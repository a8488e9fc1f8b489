//! The Docker executor on the real engine: image selection and pull policies, services reached
//! by alias, exit codes, `after_script`, timeout and cancel removing the container, artifacts
//! and cache between container jobs, and nothing of runnel's left behind.
//!
//! Every test needs the engine and the local images of `scripts/test-images.sh`; without them
//! it prints `SKIPPED: …` (or fails with `CI=true`).

mod docker_support;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use docker_support::{FETCH, available, config, leftovers, run_in};
use runnel_api::{CachePolicy, FailureReason, Image, JobPayload, JobVariable, When};
use runnel_exec::docker::{
    DockerConfig, DockerExecutor, JOB_LABEL, PullPolicy, TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE,
};
use runnel_exec::test_support::{
    PayloadBuilder, Ran, TestProject, run_stopped_once_started, run_to_end,
};
use runnel_exec::{ExecError, JobContext, JobEvent, JobOutcome, JobStatus, run_job_with};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

async fn run(config: DockerConfig, ctx: JobContext, payload: JobPayload) -> Ran {
    run_to_end(&mut DockerExecutor::new(config), payload, ctx).await
}

/// Starts `payload` in `ctx` with the Docker executor of [`config`] on a task of its own.
fn spawn_job(
    ctx: JobContext,
    payload: JobPayload,
) -> (
    JoinHandle<Result<JobOutcome, ExecError>>,
    mpsc::UnboundedReceiver<JobEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let job = tokio::spawn(async move {
        let mut executor = DockerExecutor::new(config());
        run_job_with(&mut executor, payload, ctx, tx).await
    });
    (job, rx)
}

/// Runs `payload` in `ctx` with the Docker executor of [`config`] and cancels `stop` once the
/// job prints `started`; returns the outcome and the output.
async fn run_stopped(
    ctx: JobContext,
    payload: JobPayload,
    stop: CancellationToken,
) -> (JobOutcome, String) {
    let mut executor = DockerExecutor::new(config());
    let (outcome, lines) = run_stopped_once_started(&mut executor, payload, ctx, stop).await;
    (outcome, lines.join("\n"))
}

fn image(name: &str) -> Image {
    Image {
        name: name.to_owned(),
        ..Image::default()
    }
}

fn with_image(mut payload: JobPayload, image: Image) -> JobPayload {
    payload.image = Some(image);
    payload
}

#[tokio::test]
async fn docker_job_runs_in_its_image_else_the_runners() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9101, "own")
            .script(&[
                "python3 -c 'print(\"py\", 3 * 7)'",
                "echo shell=$BASH_VERSION",
            ])
            .build(),
        image(TEST_PYTHON_IMAGE),
    );
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(ran.output.contains("py 21"), "{}", ran.output);
    assert!(
        ran.trace
            .contains("Using Docker executor with image python:3.11-slim")
    );
    // GitLab's shell detection: bash where the image has it.
    assert!(!ran.output.contains("shell=\n"), "{}", ran.output);

    let payload = PayloadBuilder::new(9102, "default")
        .script(&[
            "echo shell=${BASH_VERSION:-none}",
            "test -x /bin/busybox",
            "! command -v python3",
        ])
        .build();
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    // `sh` where it has no bash.
    assert!(ran.output.contains("shell=none"), "{}", ran.output);
}

#[tokio::test]
async fn docker_job_without_any_image_fails_with_a_configuration_error() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = PayloadBuilder::new(9103, "none").script(&["true"]).build();
    let config = DockerConfig {
        image: None,
        ..config()
    };
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Failed);
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerConfigurationError)
    );
    assert!(
        ran.trace
            .contains("ERROR: Job failed: no Docker image specified"),
        "{}",
        ran.trace
    );
}

#[tokio::test]
async fn docker_missing_image_fails_fast_with_image_pull_failure() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    // `always` tries a registry (none is reachable here: the pull fails); `never` does not.
    for (id, policy) in [(9104, "always"), (9105, "never"), (9106, "if-not-present")] {
        let payload = with_image(
            PayloadBuilder::new(id, "missing").script(&["true"]).build(),
            Image {
                pull_policy: vec![policy.to_owned()],
                ..image("runnel-test/does-not-exist:1")
            },
        );
        let config = DockerConfig {
            allowed_pull_policies: vec![
                PullPolicy::Always,
                PullPolicy::Never,
                PullPolicy::IfNotPresent,
            ],
            ..config()
        };
        let ran = run_in(&project, config, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{policy}");
        assert_eq!(
            ran.outcome.failure_reason,
            Some(FailureReason::ImagePullFailure),
            "{policy}"
        );
        assert!(
            ran.trace.contains(&format!(
                "ERROR: Job failed: failed to pull image \"runnel-test/does-not-exist:1\" with specified policies [{policy}]"
            )),
            "{policy}: {}",
            ran.trace
        );
        assert!(!ran.trace.contains("step_script"), "{policy}");
        assert!(leftovers(id).await.is_empty(), "{policy}");
    }
}

#[tokio::test]
async fn docker_pull_policies_follow_the_job_and_the_allowed_list() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    // The job's policy wins over the runner's `always`, when allowed.
    let payload = with_image(
        PayloadBuilder::new(9107, "local").script(&["true"]).build(),
        Image {
            pull_policy: vec!["if-not-present".into()],
            ..image(TEST_BUSYBOX_IMAGE)
        },
    );
    let allowing = DockerConfig {
        pull_policy: vec![PullPolicy::Always],
        allowed_pull_policies: vec![PullPolicy::Always, PullPolicy::IfNotPresent],
        ..config()
    };
    let ran = run_in(&project, allowing, payload.clone()).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(
        ran.trace
            .contains("Using locally found image version due to \"if-not-present\" pull policy")
    );

    // A job policy outside `allowed_pull_policies` is refused before anything is pulled.
    let refusing = DockerConfig {
        pull_policy: vec![PullPolicy::Always],
        ..config()
    };
    let ran = run_in(&project, refusing, payload).await;
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        ran.trace.contains(
            "Job failed (system failure): failed to pull image 'runnel-test/busybox:latest': pull_policy ([if-not-present]) defined in GitLab pipeline config is not one of the allowed_pull_policies ([always])"
        ),
        "{}",
        ran.trace
    );
}

#[tokio::test]
async fn docker_allowed_images_refuse_other_images() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9108, "refused")
            .script(&["true"])
            .build(),
        image(TEST_PYTHON_IMAGE),
    );
    let config = DockerConfig {
        allowed_images: vec!["runnel-test/*".into()],
        ..config()
    };
    let ran = run_in(&project, config.clone(), payload).await;
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        ran.trace
            .contains("The \"python:3.11-slim\" image is not present on list of allowed images:"),
        "{}",
        ran.trace
    );
    assert!(
        ran.trace
            .contains("Job failed (system failure): disallowed image")
    );
    let payload = with_image(
        PayloadBuilder::new(9109, "allowed")
            .script(&["true"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
}

/// An HTTP service from the local Python image, answering on port 8000.
fn http_service(alias: &str) -> Image {
    Image {
        alias: alias.to_owned(),
        command: vec![
            "python3".into(),
            "-m".into(),
            "http.server".into(),
            "8000".into(),
            "--directory".into(),
            "/srv".into(),
        ],
        entrypoint: vec!["sh".into(), "-c".into(), "mkdir -p /srv && echo \"hello from $GREETING\" > /srv/index.html && echo service-started && exec \"$@\"".into(), "sh".into()],
        variables: vec![
            JobVariable::new("HEALTHCHECK_TCP_PORT", "8000"),
            JobVariable::new("GREETING", "the service"),
        ],
        ..image(TEST_PYTHON_IMAGE)
    }
}

#[tokio::test]
async fn docker_service_is_reached_by_its_aliases() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9110, "svc")
            .script(&[
                &format!("{FETCH} http://web:8000/"),
                &format!("{FETCH} http://python:8000/"),
            ])
            .build(),
        image(TEST_PYTHON_IMAGE),
    );
    payload.services = vec![http_service("web")];
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert_eq!(
        ran.output.matches("hello from the service").count(),
        2,
        "{}",
        ran.output
    );
    assert!(ran.trace.contains("Starting service python:3.11-slim ..."));
    assert!(
        ran.trace
            .contains("Waiting for services to be up and running")
    );
    assert!(leftovers(9110).await.is_empty());
}

#[tokio::test]
async fn docker_failed_job_shows_the_service_logs() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9111, "svc-fail")
            .script(&["exit 4"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    payload.services = vec![http_service("web")];
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.exit_code, Some(4));
    assert!(
        ran.output
            .contains("Service container logs of python:3.11-slim"),
        "{}",
        ran.output
    );
    assert!(ran.output.contains("service-started"), "{}", ran.output);
}

#[tokio::test]
async fn docker_service_that_never_listens_is_reported_and_the_job_goes_on() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9112, "svc-dead")
            .script(&["echo job-ran"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    payload.services = vec![Image {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo about-to-fail; exit 1".into(),
        ],
        variables: vec![JobVariable::new("HEALTHCHECK_TCP_PORT", "8000")],
        ..image(TEST_BUSYBOX_IMAGE)
    }];
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(
        ran.trace.contains("probably didn't start properly"),
        "{}",
        ran.trace
    );
    assert!(ran.trace.contains("about-to-fail"), "{}", ran.trace);
    assert!(ran.output.contains("job-ran"));
}

#[tokio::test]
async fn docker_exit_code_and_after_script_in_the_same_container() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9113, "exit")
            .script(&["echo kept > /tmp/marker", "exit 42"])
            .after_script(&["echo after=$CI_JOB_STATUS marker=$(cat /tmp/marker)"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(ran.outcome.exit_code, Some(42));
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::ScriptFailure)
    );
    // after_script runs in the job container, which keeps its files between stages.
    assert!(
        ran.output.contains("after=failed marker=kept"),
        "{}",
        ran.output
    );
    assert!(ran.trace.contains("ERROR: Job failed: exit status 42"));
    assert!(leftovers(9113).await.is_empty());
}

#[tokio::test]
async fn docker_timeout_stops_and_removes_the_container() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9114, "slow")
            .script(&["echo started", "sleep 1000"])
            .after_script(&["echo after=$CI_JOB_STATUS"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    payload.services = vec![http_service("web")];
    let mut ctx = project.context("9114");
    ctx.deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
    let ran = run(config(), ctx, payload).await;
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::JobExecutionTimeout),
        "{}",
        ran.trace
    );
    // GitLab: gitlab-runner `common/build.go` `run` cancels the whole build at the job's
    // deadline, so after_script does not run.
    assert!(!ran.output.contains("after="), "{}", ran.output);
    assert!(leftovers(9114).await.is_empty());
}

#[tokio::test]
async fn docker_cancel_stops_and_removes_the_container() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9115, "cancel")
            .script(&["echo started", "sleep 1000"])
            .after_script(&["echo after=$CI_JOB_STATUS"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let ctx = project.context("9115");
    let cancel = ctx.cancel.clone();
    let (outcome, output) = run_stopped(ctx, payload, cancel).await;
    assert_eq!(outcome.status, JobStatus::Canceled, "{output}");
    assert!(output.contains("after=canceled"), "{output}");
    assert!(leftovers(9115).await.is_empty());
}

#[tokio::test]
async fn docker_artifacts_and_cache_pass_between_container_jobs() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let first = with_image(
        PayloadBuilder::new(9116, "build")
            .script(&[
                "mkdir -p vendor dist",
                "echo cached > vendor/lib.txt",
                "echo built > dist/out.txt",
            ])
            .cache("deps", &["vendor/"], CachePolicy::PullPush, When::OnSuccess)
            .artifacts(&["dist/"], &[], false, When::OnSuccess)
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let ran = run_in(&project, config(), first).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);

    // A fresh project directory: only the cache and the artifacts can bring the files.
    std::fs::remove_dir_all(project.path().join(".runnel/builds")).expect("builds removed");
    let second = with_image(
        PayloadBuilder::new(9117, "test")
            .script(&["cat vendor/lib.txt dist/out.txt"])
            .cache("deps", &["vendor/"], CachePolicy::Pull, When::OnSuccess)
            .dependency(9116, "build")
            .build(),
        image(TEST_PYTHON_IMAGE),
    );
    let ran = run_in(&project, config(), second).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(ran.output.contains("cached\nbuilt"), "{}", ran.output);
}

#[tokio::test]
async fn docker_runner_options_reach_the_container() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9118, "opts")
            .script(&[
                "grep -q 'myhost' /etc/hosts",
                "echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)",
                "echo user=$(id -u)",
                "echo cache > /cache/probe",
                "hostname",
            ])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let cache_dir = project.path().join("docker-cache");
    let config = DockerConfig {
        extra_hosts: vec!["myhost:10.9.8.7".into()],
        memory: Some("64m".into()),
        volumes: vec!["/cache".into()],
        cache_dir: Some(cache_dir.clone()),
        hostname: Some("job-host".into()),
        ..config()
    };
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    assert!(ran.output.contains("memory=67108864"), "{}", ran.output);
    assert!(ran.output.contains("user=0"), "{}", ran.output);
    assert!(ran.output.contains("\njob-host"), "{}", ran.output);
    // `/cache` is a bind under `cache_dir`, so it outlives the job.
    let probes: Vec<_> = walkdir::WalkDir::new(&cache_dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "probe")
        .collect();
    assert_eq!(probes.len(), 1);
}

#[tokio::test]
async fn docker_containers_carry_gitlab_labels_and_privileged_is_off() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    // The job inspects nothing itself: the test looks at its container while it runs.
    let payload = with_image(
        PayloadBuilder::new(9119, "labels")
            .script(&["echo started", "sleep 1000"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let ctx = project.context("9119");
    let cancel = ctx.cancel.clone();
    let (job, mut rx) = spawn_job(ctx, payload);
    while let Some(event) = rx.recv().await {
        if matches!(&event, JobEvent::Output { line, .. } if line == "started") {
            break;
        }
    }
    let docker = Docker::connect_with_defaults().expect("the engine answers");
    let filters = HashMap::from([("label", vec![format!("{JOB_LABEL}=9119")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("containers can be listed");
    let container = containers.first().expect("the job container runs");
    let id = container.id.clone().unwrap_or_default();
    let inspected = docker.inspect_container(&id, None).await;
    cancel.cancel();
    let _ = job.await;
    let labels = container.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("com.gitlab.gitlab-runner.job.id")
            .map(String::as_str),
        Some("9119")
    );
    assert_eq!(
        labels
            .get("com.gitlab.gitlab-runner.type")
            .map(String::as_str),
        Some("build")
    );
    assert_eq!(
        labels
            .get("com.gitlab.gitlab-runner.managed")
            .map(String::as_str),
        Some("true")
    );
    assert!(labels.contains_key("com.gitlab.gitlab-runner.project.id"));
    let inspected = inspected.expect("the running job container can be inspected");
    let privileged = inspected.host_config.and_then(|h| h.privileged);
    assert_eq!(privileged, Some(false));
    assert!(leftovers(9119).await.is_empty());
}

#[tokio::test]
async fn docker_abort_on_runner_shutdown_removes_everything_without_after_script() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9120, "shutdown")
            .script(&["echo started", "sleep 1000"])
            .after_script(&["echo after-ran"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    payload.services = vec![http_service("web")];
    let ctx = project.context("9120");
    let abort = ctx.abort.clone();
    let (outcome, output) = run_stopped(ctx, payload, abort).await;
    assert_eq!(outcome.status, JobStatus::Canceled, "{output}");
    assert!(!output.contains("after-ran"), "{output}");
    assert!(leftovers(9120).await.is_empty());
}

#[tokio::test]
async fn docker_missing_job_image_fails_before_any_service_starts() {
    if !available() {
        return;
    }
    let project = TestProject::new();
    let mut payload = with_image(
        PayloadBuilder::new(9121, "missing-with-service")
            .script(&["true"])
            .build(),
        image("runnel-test/does-not-exist:2"),
    );
    payload.services = vec![http_service("web")];
    let ran = run_in(&project, config(), payload).await;
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::ImagePullFailure)
    );
    assert!(!ran.trace.contains("Starting service"), "{}", ran.trace);
    assert!(leftovers(9121).await.is_empty());
}

#[tokio::test]
async fn docker_builds_owner_gets_the_files_the_container_wrote() {
    if !available() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let project = TestProject::new();
    let payload = with_image(
        PayloadBuilder::new(9122, "owner")
            .script(&["mkdir -p out && echo x > out/file"])
            .build(),
        image(TEST_BUSYBOX_IMAGE),
    );
    let config = DockerConfig {
        builds_owner: Some((4321, 4322)),
        ..config()
    };
    let ran = run_in(&project, config, payload).await;
    assert_eq!(ran.outcome.status, JobStatus::Success, "{}", ran.trace);
    let file = project.path().join(".runnel/builds/acme/app/out/file");
    let meta = std::fs::metadata(&file).expect("the job wrote the file");
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    assert!(leftovers(9122).await.is_empty());
}
