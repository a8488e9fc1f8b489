//! `runnel exec --executor kubernetes` end to end against the fake Kubernetes API server of
//! `runnel-kube-fake` (no cluster can run on these machines; the fake validates requests like
//! the real API server and runs each pod's containers on the Docker engine): jobs in pods, a
//! service reached by its alias, artifacts between jobs, `examples/python-app`, an image that
//! cannot be pulled, and nothing left afterwards, neither pods and secrets on the fake nor
//! containers and volumes on the engine.
//!
//! Needs the Docker engine and the local images of `scripts/test-images.sh`; the helper image is
//! built from this build's `runnel` by `scripts/kube-helper-image.sh`. Without an engine the
//! tests print `SKIPPED: …` (with `CI=true` they fail). Their names contain `docker`, so they
//! run one at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE, docker_available};
use runnel_kube_fake::{FakeCluster, FakeOptions, Kind};
use serde_json::Value;

mod support;
use support::{commit_repo, copy_tree, job, json_document, kube_helper_image};

/// A fake cluster with namespace `ci` and a kubeconfig for it in `dir`.
async fn cluster(dir: &Path) -> (FakeCluster, PathBuf) {
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("fake cluster starts");
    let kubeconfig = dir.join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig, "fake", "ci")
        .expect("kubeconfig written");
    (cluster, kubeconfig)
}

fn repo(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(".gitlab-ci.yml"), pipeline).expect("pipeline written");
    commit_repo(dir.path(), "i");
    dir
}

/// Runs `runnel exec --executor kubernetes --json` in `dir` on a blocking thread.
async fn exec(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (i32, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
    command
        .args(["exec", "--executor", "kubernetes", "--json"])
        .args(["--kube-helper-image", kube_helper_image()])
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("runnel runs");
    json_document(&out)
}

fn output(doc: &Value, name: &str) -> String {
    job(doc, name)["output"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Nothing of the jobs is left: no pod or secret on the fake, no container or volume of its
/// pods on the engine.
async fn assert_nothing_left(cluster: &FakeCluster) {
    // Deletion is asynchronous, as on a cluster: the pods terminate within their grace period.
    for pod in cluster.pods(Some("ci")) {
        if let Some(name) = pod.metadata.name {
            let left = cluster
                .wait_for_pod("ci", &name, std::time::Duration::from_secs(90), |_| false)
                .await;
            assert!(left.is_none(), "pod {name} was not deleted");
        }
    }
    assert_eq!(cluster.objects(Kind::Pod, Some("ci")), Vec::<Value>::new());
    assert_eq!(
        cluster.objects(Kind::Secret, Some("ci")),
        Vec::<Value>::new()
    );
    let (containers, volumes) = cluster.docker_leftovers().await;
    assert_eq!((containers, volumes), (Vec::new(), Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_jobs_run_in_pods_with_a_service_by_alias_and_leave_nothing() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let pipeline = format!(
        r#"
stages: [build, test]
build:
  stage: build
  image: {TEST_BUSYBOX_IMAGE}
  script:
    - echo "built in $CI_PROJECT_DIR" > out.txt
    - cat out.txt
  artifacts:
    paths: [out.txt]
test:
  stage: test
  image: {TEST_BUSYBOX_IMAGE}
  services:
    - name: {TEST_BUSYBOX_IMAGE}
      alias: web
      command: ["sh", "-c", "mkdir -p /www && echo served by web > /www/index.html && httpd -f -p 8080 -h /www"]
  script:
    - cat out.txt
    - for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/ && break; sleep 1; done
"#
    );
    let project = repo(&pipeline);
    let (code, doc) = exec(project.path(), &kubeconfig, &[]).await;
    assert_eq!(code, 0, "{doc:#}");
    let build = output(&doc, "build");
    assert!(build.contains("built in /builds/"), "{build}");
    let test = output(&doc, "test");
    assert!(
        test.contains("built in /builds/"),
        "the artifact came along: {test}"
    );
    assert!(
        test.contains("served by web"),
        "the service answered by its alias: {test}"
    );
    // The pod gitlab-runner would have sent: containers, alias, labels.
    let created: Vec<Value> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(created.len(), 2, "one pod per job");
    let test_pod = &created[1];
    let names: Vec<&str> = test_pod["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["build", "helper", "svc-0"]);
    assert!(
        test_pod["spec"]["hostAliases"]
            .to_string()
            .contains("\"web\""),
        "{test_pod:#}"
    );
    assert_eq!(
        test_pod["metadata"]["labels"]["runnel.dev/managed"], "true",
        "{test_pod:#}"
    );
    assert!(test_pod["metadata"]["annotations"]["job.runner.gitlab.com/id"].is_string());
    assert_nothing_left(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_missing_image_fails_with_image_pull_failure_and_the_pod_is_deleted() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let project =
        repo("job:\n  image: runnel-test/no-such-image:1\n  script: [echo must not run]\n");
    let (code, doc) = exec(project.path(), &kubeconfig, &[]).await;
    assert_ne!(code, 0, "{doc:#}");
    assert_eq!(
        job(&doc, "job")["failure_reason"],
        "image_pull_failure",
        "{doc:#}"
    );
    assert_nothing_left(&cluster).await;
    cluster.shutdown().await;
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

/// The README's example pipeline on the cluster: five jobs in pods of `python:3.11-slim`
/// (pip installs, a cache, artifacts between stages). Slow: see `.config/nextest.toml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_example_python_app_passes() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let project = tempfile::tempdir().expect("temporary directory");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-app");
    copy_tree(&example, project.path(), &|name| {
        GENERATED.contains(&name) || name.ends_with(".egg-info")
    });
    commit_repo(project.path(), "example");
    let (code, doc) = exec(project.path(), &kubeconfig, &[]).await;
    assert_eq!(code, 0, "{doc:#}");
    for name in ["flake8", "xenon", "unittest", "pytest", "build"] {
        assert_eq!(job(&doc, name)["status"], "success", "{name}: {doc:#}");
    }
    assert!(output(&doc, "unittest").contains("OK"), "{doc:#}");
    assert!(output(&doc, "build").contains("built textkit"), "{doc:#}");
    let created = cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count();
    assert_eq!(created, 5, "one pod per job");
    assert_nothing_left(&cluster).await;
    cluster.shutdown().await;
}
