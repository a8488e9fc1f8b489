//! `runnel run` with `executor = "kubernetes"` and a distributed cache (`[runners.cache]`,
//! `Type = "s3"`, `Shared = true`): two daemons with their own builds and cache directories run
//! one job each in pods on the fake Kubernetes API server of `runnel-kube-fake`; the first
//! pushes a cache to the S3 server (moto, `scripts/start-s3.sh`), the second restores it.
//!
//! The cache stages run on the runner's host, as for the shell and Docker executors, and the
//! project directory is copied into the pod and back (see `runnel-kube`), so the pod never sees
//! the cache's credentials. Needs the Docker engine, the local images of
//! `scripts/test-images.sh` and the S3 server; without them the test prints `SKIPPED: …` (with
//! `CI=true` it fails). Its name contains `docker`, so it runs alone.

use std::path::Path;
use std::process::{Command, Stdio};

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, docker_available};
use runnel_kube_fake::{FakeCluster, FakeOptions};
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec, s3_server};
use serde_json::json;

mod support;
use support::runnel_command;

const HELPER_IMAGE: &str = "runnel-test/kube-helper:latest";
const SECRET: &str = "runnel-secret-key-do-not-print";

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

/// Runs `spec` on a new `runnel run` daemon (its own directory) until the job is final.
async fn run_on_new_daemon(
    fake: &FakeGitLab,
    kubeconfig: &Path,
    cache_section: &str,
    spec: JobSpec,
) -> (FakeJobState, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = fake.create_runner();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "concurrent = 1\ncheck_interval = 1\n\n[[runners]]\n  name = \"kube-cache\"\n  url = \"{}\"\n  token = \"{token}\"\n  executor = \"kubernetes\"\n  builds_dir = \"{}\"\n  cache_dir = \"{}\"\n  [runners.kubernetes]\n    namespace = \"ci\"\n    image = \"{TEST_BUSYBOX_IMAGE}\"\n    helper_image = \"{}\"\n{cache_section}",
            fake.url(),
            dir.path().join("builds").display(),
            dir.path().join("cache").display(),
            helper_image(),
        ),
    )
    .expect("config written");
    let mut daemon = runnel_command()
        .args(["run", "-c"])
        .arg(&config)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("runnel run starts");
    let id = fake.add_job(spec);
    let job = fake.wait_for_final(id).await;
    // SIGQUIT: the daemon stops once its job, pod deletion included, is done.
    let pid = daemon.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopped = daemon.wait().await.expect("the daemon exits");
    assert!(stopped.success(), "{stopped:?}");
    let trace = fake.trace_text(id);
    assert!(
        !trace.contains(SECRET),
        "the secret key is in the trace:\n{trace}"
    );
    assert!(
        !trace.contains("X-Amz-"),
        "a signed URL is in the trace:\n{trace}"
    );
    (job.state, trace)
}

fn cache(policy: &str) -> serde_json::Value {
    json!({"key": "venv-non_protected", "untracked": false, "policy": policy, "paths": ["venv/"], "when": "on_success"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemons_share_a_cache_through_the_bucket() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let Some(s3) = s3_server() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("fake cluster starts");
    let kubeconfig = dir.path().join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig, "fake", "ci")
        .expect("kubeconfig written");
    let fake = FakeGitLab::start().await;
    let bucket = s3.create_bucket("kube").await;
    let section = s3.cache_section(&bucket, "    Shared = true");

    let push = JobSpec {
        cache: vec![cache("push")],
        ..JobSpec::script(&[
            "mkdir -p venv/bin && echo 'VALUE = 42' > venv/v.py && ln -s /usr/bin/python3 venv/bin/python3",
        ])
    };
    let (state, trace) = run_on_new_daemon(&fake, &kubeconfig, &section, push).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Uploading cache.zip to http://"), "{trace}");
    assert_eq!(s3.list(&bucket).await, ["project/7/venv-non_protected"]);

    let pull = JobSpec {
        cache: vec![cache("pull")],
        ..JobSpec::script(&[
            "cat venv/v.py",
            "echo \"python3 -> $(readlink venv/bin/python3)\"",
        ])
    };
    let (state, trace) = run_on_new_daemon(&fake, &kubeconfig, &section, pull).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Downloading cache from http://"), "{trace}");
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
    assert!(trace.contains("\nVALUE = 42"), "{trace}");
    assert!(trace.contains("python3 -> /usr/bin/python3"), "{trace}");
    // The pods go (asynchronously, as on a cluster).
    for pod in cluster.pods(Some("ci")) {
        if let Some(name) = pod.metadata.name {
            let left = cluster
                .wait_for_pod("ci", &name, std::time::Duration::from_secs(90), |_| false)
                .await;
            assert!(left.is_none(), "pod {name} was not deleted");
        }
    }
    cluster.shutdown().await;
}
