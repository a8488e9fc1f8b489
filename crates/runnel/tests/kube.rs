//! `runnel exec --executor kubernetes` end to end against the fake Kubernetes API server of
//! `runnel-kube-fake` (no cluster can run on these machines; the fake validates requests like
//! the real API server and runs each pod's containers on the Docker engine): jobs in pods, a
//! service reached by its alias, artifacts between jobs, an image that
//! cannot be pulled, and nothing left afterwards, neither pods and secrets on the fake nor
//! containers and volumes on the engine.
//!
//! Needs the Docker engine and the local images of `scripts/test-images.sh`; the helper image is
//! built from this build's `runnel` by `scripts/kube-helper-image.sh`. Without an engine the
//! tests print `SKIPPED: …` (with `CI=true` they fail). Their names contain `docker`, so they
//! run one at a time.

use std::path::{Path, PathBuf};

use std::process::{Command, Stdio};

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, docker_available};
use runnel_kube_fake::{FakeCluster, FakeOptions, Kind};
use serde_json::Value;

mod support;
use support::{commit_repo, job, json_document};

const HELPER_IMAGE: &str = "runnel-test/kube-helper:latest";

/// Builds the helper image from this build's binary (kept when the binary did not change).
fn helper_image() -> &'static str {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-helper-image.sh");
    let out = Command::new(script)
        .arg(env!("CARGO_BIN_EXE_runnel"))
        .arg(HELPER_IMAGE)
        .output()
        .expect("scripts/kube-helper-image.sh runs");
    assert!(out.status.success(), "helper image: {out:?}");
    HELPER_IMAGE
}

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
        .args(["--kube-helper-image", helper_image()])
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
