//! `runnel run` with `executor = "kubernetes"` end to end: the binary, the fake GitLab of
//! runnel-runner's test support and the fake Kubernetes API server of `runnel-kube-fake` (no
//! cluster can run on these machines; the fake validates requests like the real API server and
//! runs each pod's containers on the Docker engine).
//!
//! What a cluster does to a job and what the runner must do about it: `examples/python-app`
//! passes, a PostgreSQL-style service answers on its alias with its variables, a pod that
//! stays `Pending` past `poll_timeout`, a pod deleted or evicted mid-job (failed as
//! gitlab-runner reports it), cancel, job timeout, a daemon killed with SIGKILL and started
//! again, a forbidden namespace overwrite and a limit above its maximum. After each: no pod,
//! secret or config map on the fake and no container or volume of its pods on the engine.
//!
//! Needs the Docker engine and the images of `scripts/test-images.sh`; the helper image is
//! built from this build's `runnel`. Without an engine the tests print `SKIPPED: …` (with
//! `CI=true` they fail). Their names contain `docker`, so they run one at a time.

use std::path::Path;
use std::time::Duration;

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE, docker_available};
use runnel_runner::test_support::{FakeGitLab, FakeJobState, GitSource, JobSpec};
use serde_json::{Value, json};

mod support;
use support::kube_daemon::{NAMESPACE, Setup};
use support::{commit_repo, copy_tree};

fn failure_reason(fake: &FakeGitLab, id: u64) -> Value {
    fake.final_field(id, "failure_reason")
}

/// A job that prints `started` and then sleeps, with an `after_script`.
fn sleeper() -> JobSpec {
    JobSpec {
        after_script: vec!["echo after_script ran with $CI_JOB_STATUS".to_owned()],
        ..JobSpec::script(&["echo started", "sleep 600", "echo not reached"])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_service_is_waited_for_and_answers_on_its_alias_with_its_variables() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    // A PostgreSQL-style service: alias `db`, port 5432, configured by `POSTGRES_*` variables,
    // slow to start; its `HEALTHCHECK_TCP_PORT` makes the runner wait for it, so the script
    // needs no retry loop.
    let serve = "sleep 4 && mkdir -p /www && echo \"db ready for $POSTGRES_USER/$POSTGRES_DB\" > /www/index.html && exec httpd -f -p 5432 -h /www";
    let id = setup.fake.add_job(JobSpec {
        services: vec![json!({
            "name": TEST_BUSYBOX_IMAGE, "alias": "db", "command": ["sh", "-c", serve],
            "variables": [
                {"key": "POSTGRES_USER", "value": "runner", "public": true},
                {"key": "POSTGRES_DB", "value": "app_test", "public": true},
                {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": true},
            ],
        })],
        ..JobSpec::script(&["wget -qO- http://db:5432/"])
    });
    let child = setup.start("run");
    let job = setup.fake.wait_for_final(id).await;
    let trace = setup.fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("db ready for runner/app_test"), "{trace}");
    assert!(
        trace.contains("Waiting for services to be up and running (timeout 30 seconds)..."),
        "{trace}"
    );
    let pod = setup
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .find_map(|r| r.body)
        .expect("a pod was created");
    assert_eq!(pod["spec"]["containers"][2]["name"], "svc-0", "{pod:#}");
    assert!(
        pod["spec"]["hostAliases"].to_string().contains("\"db\""),
        "{pod:#}"
    );
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_pod_pending_past_poll_timeout_fails_and_is_deleted() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    // No node has this label: the pod stays `Pending` (`FailedScheduling`).
    let setup = Setup::new(
        "    poll_timeout = 3\n  [runners.kubernetes.node_selector]\n    \"runnel.dev/no-such-node\" = \"x\"\n",
    )
    .await;
    let id = setup.fake.add_job(JobSpec::script(&["echo must not run"]));
    let child = setup.start("run");
    let job = setup.fake.wait_for_final(id).await;
    let trace = setup.fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(failure_reason(&setup.fake, id), "runner_system_failure");
    assert!(trace.contains("status is Pending"), "{trace}");
    assert!(trace.contains("timed out waiting for pod"), "{trace}");
    assert!(!trace.contains("must not run\n"), "{trace}");
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_pod_deleted_mid_job_fails_the_job_as_gitlab_runner_does() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let id = setup.fake.add_job(JobSpec::script(&[
        "echo started",
        "sleep 600",
        "echo not reached",
    ]));
    let child = setup.start("run");
    setup.fake.wait_for_trace(id, "\nstarted").await;
    let pod = setup.wait_for_pod().await;
    setup
        .cluster
        .delete_pod(NAMESPACE, &pod, Some(1))
        .expect("deleted");
    let job = setup.fake.wait_for_final(id).await;
    let trace = setup.fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(failure_reason(&setup.fake, id), "runner_system_failure");
    // gitlab-runner `internal/watchers/pod.go`: "is being deleted" while it terminates,
    // "is deleted" once it is gone.
    let full = format!("pod \"{NAMESPACE}/{pod}\" is");
    assert!(
        trace.contains(&format!("{full} being deleted"))
            || trace.contains(&format!("{full} deleted")),
        "{trace}"
    );
    assert!(!trace.contains("not reached"), "{trace}");
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_pod_evicted_mid_job_fails_the_job_as_disrupted() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let id = setup.fake.add_job(JobSpec::script(&[
        "echo started",
        "sleep 600",
        "echo not reached",
    ]));
    let child = setup.start("run");
    setup.fake.wait_for_trace(id, "\nstarted").await;
    let pod = setup.wait_for_pod().await;
    setup.cluster.evict(NAMESPACE, &pod).expect("evicted");
    let job = setup.fake.wait_for_final(id).await;
    let trace = setup.fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(failure_reason(&setup.fake, id), "runner_system_failure");
    assert!(
        trace.contains(&format!(
            "pod \"{NAMESPACE}/{pod}\" is disrupted: reason \"TerminationByKubelet\""
        )),
        "{trace}"
    );
    // The evicted pod stays on a cluster until someone deletes it: the runner did.
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_cancel_and_timeout_leave_nothing() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let canceled = setup.fake.add_job(sleeper());
    let timed_out = setup.fake.add_job(JobSpec {
        timeout: Some(8),
        ..sleeper()
    });
    let child = setup.start("run");
    setup.fake.wait_for_trace(canceled, "\nstarted").await;
    setup.fake.cancel(canceled, true);
    let job = setup.fake.wait_for_final(canceled).await;
    let trace = setup.fake.trace_text(canceled);
    assert_eq!(job.state, FakeJobState::Canceled, "{trace}");
    assert!(trace.contains("after_script ran with canceled"), "{trace}");
    assert!(!trace.contains("not reached"), "{trace}");

    let job = setup.fake.wait_for_final(timed_out).await;
    let trace = setup.fake.trace_text(timed_out);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(
        failure_reason(&setup.fake, timed_out),
        "job_execution_timeout"
    );
    assert!(trace.contains("\nstarted"), "{trace}");
    assert!(!trace.contains("not reached"), "{trace}");
    // gitlab-runner: the deadline ends the build, after_script included, with one verdict.
    assert!(!trace.contains("after_script ran"), "{trace}");
    assert_eq!(trace.matches("Job failed").count(), 1, "{trace}");
    assert!(
        trace.contains("Job failed: execution took longer than 8s seconds"),
        "{trace}"
    );
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_killed_with_sigkill_leaves_nothing_once_restarted() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let id = setup.fake.add_job(sleeper());
    let mut child = setup.start("run1");
    setup.fake.wait_for_trace(id, "\nstarted").await;
    let pod = setup.wait_for_pod().await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    // Nothing could clean up: the pod still runs.
    assert_eq!(setup.pods(), vec![pod.clone()]);
    let child = setup.start("run2");
    let gone = setup
        .cluster
        .wait_for_pod(NAMESPACE, &pod, Duration::from_secs(90), |_| false)
        .await;
    assert!(gone.is_none(), "{}", setup.log("run2"));
    assert!(
        setup
            .log("run2")
            .contains("removed pods and secrets left by an earlier runnel"),
        "{}",
        setup.log("run2")
    );
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_forbidden_overwrites_fail_the_job_and_unimplemented_keys_are_warned() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    // Also keys runnel reads but does not act on: named in one warning at start.
    let setup = Setup::new(
        "    namespace_overwrite_allowed = \"^ci-.*\"\n    memory_limit = \"1Gi\"\n    memory_limit_overwrite_max_allowed = \"4Gi\"\n    print_pod_warning_events = true\n  [runners.kubernetes.affinity]\n  [[runners.kubernetes.volumes.csi]]\n    name = \"cache\"\n    mount_path = \"/cache\"\n    driver = \"csi.example.com\"\n",
    )
    .await;
    let var = |key: &str, value: &str| (key.to_owned(), value.to_owned(), false);
    let namespace = setup.fake.add_job(JobSpec {
        variables: vec![var("KUBERNETES_NAMESPACE_OVERWRITE", "kube-system")],
        ..JobSpec::script(&["echo must not run"])
    });
    let memory = setup.fake.add_job(JobSpec {
        variables: vec![var("KUBERNETES_MEMORY_LIMIT", "5Gi")],
        ..JobSpec::script(&["echo must not run"])
    });
    let child = setup.start("run");
    for (id, message) in [
        (
            namespace,
            "couldn't prepare overwrites: provided value \"kube-system\" of `KUBERNETES_NAMESPACE_OVERWRITE` does not match \"^ci-.*\"",
        ),
        (
            memory,
            "couldn't prepare overwrites: the resource \"KUBERNETES_MEMORY_LIMIT\" requested \"5Gi\" is higher than limit allowed \"4Gi\"",
        ),
    ] {
        let job = setup.fake.wait_for_final(id).await;
        let trace = setup.fake.trace_text(id);
        assert_eq!(job.state, FakeJobState::Failed, "{trace}");
        assert!(trace.contains(message), "{trace}");
        assert!(!trace.contains("must not run\n"), "{trace}");
    }
    let created = setup
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(created, 0, "nothing was created on the cluster");
    let warning = setup
        .log("run")
        .lines()
        .find(|line| line.contains("keys runnel reads but does not implement yet"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no warning: {}", setup.log("run")));
    for key in ["affinity", "print_pod_warning_events", "volumes.csi"] {
        assert!(warning.contains(key), "{warning}");
    }
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_enforces_allowed_images_pull_policies_and_users() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new(
        "    allowed_images = [\"runnel-test/*\"]\n    pull_policy = [\"if-not-present\"]\n    allowed_pull_policies = [\"if-not-present\", \"never\"]\n    allowed_users = [\"1234\"]\n    allowed_groups = [\"2345\"]\n",
    )
    .await;
    let job = |image: &str, pull_policy: &[&str], user: Option<&str>| JobSpec {
        image: Some((
            image.to_owned(),
            pull_policy.iter().map(|p| (*p).to_owned()).collect(),
        )),
        image_executor_opts: user.map(|user| json!({"kubernetes": {"user": user}})),
        ..JobSpec::script(&["echo \"ids $(id -u):$(id -g)\""])
    };
    let image_refused = setup.fake.add_job(job("alpine:3", &[], None));
    let policy_refused = setup
        .fake
        .add_job(job(TEST_BUSYBOX_IMAGE, &["always"], None));
    let user = setup
        .fake
        .add_job(job(TEST_BUSYBOX_IMAGE, &["never"], Some("1234:2345")));
    let user_refused = setup.fake.add_job(job(TEST_BUSYBOX_IMAGE, &[], Some("0")));
    let child = setup.start("run");
    let refused = [
        (
            image_refused,
            "the \"alpine:3\" image is not present on list of allowed images: runnel-test/*",
        ),
        (
            policy_refused,
            "pull_policy [always] defined in GitLab pipeline config is not one of the allowed_pull_policies [if-not-present never]",
        ),
    ];
    for (id, message) in refused {
        let job = setup.fake.wait_for_final(id).await;
        let trace = setup.fake.trace_text(id);
        assert_eq!(job.state, FakeJobState::Failed, "{trace}");
        assert!(trace.contains(message), "{trace}");
        assert!(!trace.contains("\nids "), "{trace}");
    }
    let job = setup.fake.wait_for_final(user).await;
    let trace = setup.fake.trace_text(user);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("\nids 1234:2345"), "{trace}");
    let job = setup.fake.wait_for_final(user_refused).await;
    let trace = setup.fake.trace_text(user_refused);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains(
            "user 0 of image \"runnel-test/busybox:latest\" is not in allowed_users [1234]"
        ),
        "{trace}"
    );
    assert!(trace.contains("\nids 0:0"), "{trace}");
    let pods: Vec<Value> = setup
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(pods.len(), 2, "no pod for the refused jobs");
    let policies: Vec<&Value> = pods
        .iter()
        .map(|pod| &pod["spec"]["containers"][0]["imagePullPolicy"])
        .collect();
    assert!(policies.contains(&&json!("Never")), "{policies:?}");
    assert!(policies.contains(&&json!("IfNotPresent")), "{policies:?}");
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

/// Files of the example that a run creates and a user would not commit.
const GENERATED: &[&str] = &[
    ".runnel",
    ".venv",
    ".cache",
    "dist",
    "build",
    "htmlcov",
    "__pycache__",
    ".coverage",
    "report.xml",
];

/// A job of `examples/python-app` as GitLab sends it: `before_script` + `script`, the global
/// variables and cache, sources from the fake's repository.
fn example_job(sha: &str, script: &[&str]) -> JobSpec {
    let before = [
        "python3 --version",
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        "pip install -r requirements-dev.txt",
    ];
    let lines: Vec<&str> = before.iter().chain(script).copied().collect();
    let var = |key: &str, value: &str| (key.to_owned(), value.to_owned(), false);
    JobSpec {
        image: Some(("python:3.11-slim".to_owned(), Vec::new())),
        git: Some(GitSource::new("clone", sha)),
        variables: vec![
            var("PIP_CACHE_DIR", "$CI_PROJECT_DIR/.cache/pip"),
            var("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ],
        cache: vec![
            json!({"key": "1-requirements-dev-non_protected", "untracked": false, "policy": "pull-push", "paths": [".cache/pip"], "when": "on_success"}),
        ],
        ..JobSpec::script(&lines)
    }
}

fn head(repo: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The README's example pipeline through the daemon, stage by stage as GitLab hands it out.
/// Slow (pip installs): see `.config/nextest.toml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_runs_the_python_app_example() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let repo = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-app");
    copy_tree(&example, repo.path(), &|name| {
        GENERATED.contains(&name) || name.ends_with(".egg-info")
    });
    commit_repo(repo.path(), "example");
    let sha = head(repo.path());
    setup.fake.serve_git(repo.path());
    let child = setup.start("run");
    let passed = |id: u64| {
        let fake = &setup.fake;
        async move {
            let job = fake.wait_for_final(id).await;
            let trace = fake.trace_text(id);
            assert_eq!(job.state, FakeJobState::Success, "{trace}");
            trace
        }
    };
    // static_analysis
    let flake8 = setup.fake.add_job(example_job(&sha, &["flake8 src tests"]));
    let xenon = setup.fake.add_job(example_job(
        &sha,
        &["xenon --max-absolute B --max-modules A --max-average A src"],
    ));
    passed(flake8).await;
    passed(xenon).await;
    // test
    let mut unittest = example_job(&sha, &["python3 -m unittest discover -s tests -v"]);
    unittest
        .variables
        .push(("PYTHONPATH".into(), "src".into(), false));
    let unittest = setup.fake.add_job(unittest);
    let pytest = setup.fake.add_job(JobSpec {
        artifact_paths: vec!["htmlcov/".into()],
        reports: vec![("junit".into(), vec!["report.xml".into()])],
        ..example_job(
            &sha,
            &["pytest --cov=src --cov-report=html --cov-report=term --junitxml=report.xml"],
        )
    });
    assert!(passed(unittest).await.contains("OK"));
    let trace = passed(pytest).await;
    assert!(trace.contains("TOTAL"), "{trace}");
    let junit = setup
        .fake
        .job(pytest)
        .and_then(|job| job.report_text("junit"))
        .expect("the JUnit report was uploaded");
    assert!(junit.contains("<testsuite"), "{junit}");
    // build
    let build = setup.fake.add_job(JobSpec {
        artifact_paths: vec!["dist/".into()],
        dependencies: vec![pytest],
        ..example_job(
            &sha,
            &[
                "pip wheel --no-deps --no-build-isolation --wheel-dir dist .",
                "pip install dist/*.whl",
                "python3 -c 'import textkit; print(\"built textkit\", textkit.__version__)'",
            ],
        )
    });
    assert!(passed(build).await.contains("built textkit"));
    let pods = setup
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count();
    assert_eq!(pods, 5, "one pod per job");
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}
