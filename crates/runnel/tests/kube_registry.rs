//! `runnel run` with `executor = "kubernetes"` and image registries: the job's registry
//! credentials (`DOCKER_AUTH_CONFIG`, the payload's `credentials`) become one
//! `kubernetes.io/dockercfg` secret the pod pulls with and that goes with the pod, and an image
//! that fails to pull is tried again with the next pull policy, as gitlab-runner's pull
//! manager does. Against the fake GitLab and the fake cluster (see `kube_runner.rs`).
//!
//! Needs the Docker engine and the images of `scripts/test-images.sh`. Without an engine the
//! tests print `SKIPPED: …` (with `CI=true` they fail). Their names contain `docker`, so they
//! run one at a time.

use base64::Engine;
use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, docker_available};
use runnel_kube_fake::{FakeOptions, RecordedRequest};
use runnel_runner::test_support::{FakeJobState, JobSpec};
use serde_json::{Value, json};

mod support;
use support::kube_daemon::{NAMESPACE, Setup};

/// The bodies of the `POST`s to `/api/v1/namespaces/ci/<resource>` that the fake took.
fn created(requests: &[RecordedRequest], resource: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/{resource}");
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == path && r.status == 201)
        .filter_map(|r| r.body.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_registry_credentials_are_one_dockercfg_secret_that_goes_with_the_pod() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::new("").await;
    let auth = base64::engine::general_purpose::STANDARD.encode("deploy:deploy-secret");
    let docker_auth_config = json!({"auths": {"https://Other.Example.com/v1/": {"auth": auth}}});
    let id = setup.fake.add_job(JobSpec {
        credentials: vec![json!({
            "type": "registry",
            "url": "registry.example.com:5050",
            "username": "gitlab-ci-token",
            "password": "job-registry-token",
        })],
        variables: vec![(
            "DOCKER_AUTH_CONFIG".to_owned(),
            docker_auth_config.to_string(),
            false,
        )],
        ..JobSpec::script(&["echo started"])
    });
    let child = setup.start("run");
    let job = setup.fake.wait_for_final(id).await;
    let trace = setup.fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(!trace.contains("job-registry-token"), "{trace}");

    let requests = setup.cluster.requests();
    let secrets = created(&requests, "secrets");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let secret = &secrets[0];
    assert_eq!(secret["type"], "kubernetes.io/dockercfg");
    let encoded = secret["data"][".dockercfg"].as_str().expect("a .dockercfg");
    let document: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64"),
    )
    .expect("JSON");
    // gitlab-runner `setupCredentials`: registry → Docker's AuthConfig, the variable's
    // `auth` decoded and its URL reduced to the host.
    assert_eq!(
        document,
        json!({
            "other.example.com": {
                "username": "deploy",
                "password": "deploy-secret",
                "serveraddress": "https://Other.Example.com/v1/",
            },
            "registry.example.com:5050": {
                "username": "gitlab-ci-token",
                "password": "job-registry-token",
                "serveraddress": "registry.example.com:5050",
            },
        })
    );
    let name = secret["metadata"]["name"].as_str().expect("a name");
    let pods = created(&requests, "pods");
    assert_eq!(
        pods[0]["spec"]["imagePullSecrets"],
        json!([{"name": name}]),
        "the pod pulls with it"
    );
    let owned = requests.iter().any(|r| {
        r.method == "PATCH"
            && r.path.ends_with(&format!("/secrets/{name}"))
            && r.status == 200
            && r.body.as_ref().is_some_and(|b| {
                b["metadata"]["ownerReferences"][0]["name"] == pods[0]["metadata"]["name"]
            })
    });
    assert!(owned, "the pod owns the secret: {requests:?}");
    let deleted = requests
        .iter()
        .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/secrets/{name}")));
    assert!(deleted, "the runner deletes the secret itself");
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_a_failed_pull_is_tried_again_with_the_next_pull_policy() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    // A node that cannot reach its registry: `always` fails, `if-not-present` finds the image.
    let setup = Setup::with_options(
        "    pull_policy = [\"always\", \"if-not-present\"]\n",
        FakeOptions::default().registry_unreachable(),
    )
    .await;
    let falls_back = setup
        .fake
        .add_job(JobSpec::script(&["echo pulled at last"]));
    let only_always = setup.fake.add_job(JobSpec {
        image: Some((TEST_BUSYBOX_IMAGE.to_owned(), vec!["always".to_owned()])),
        ..JobSpec::script(&["echo not reached"])
    });
    let child = setup.start("run");

    let job = setup.fake.wait_for_final(falls_back).await;
    let trace = setup.fake.trace_text(falls_back);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("\npulled at last"), "{trace}");
    let warning =
        format!("WARNING: Failed to pull image \"{TEST_BUSYBOX_IMAGE}\" with policy \"Always\": ");
    assert!(trace.contains(&warning), "{trace}");
    assert!(
        trace.contains(&format!(
            "Trying \"IfNotPresent\" pull policy for \"{TEST_BUSYBOX_IMAGE}\" image"
        )),
        "{trace}"
    );
    assert!(trace.contains("Attempt #2: Trying"), "{trace}");

    let job = setup.fake.wait_for_final(only_always).await;
    let trace = setup.fake.trace_text(only_always);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert_eq!(
        setup.fake.final_field(only_always, "failure_reason"),
        "image_pull_failure"
    );
    assert!(trace.contains(&warning), "{trace}");
    assert!(!trace.contains("not reached\n"), "{trace}");

    // Each try was its own pod; the build container's policy moved from Always on.
    let requests = setup.cluster.requests();
    let id_text = falls_back.to_string();
    let policies: Vec<Value> = created(&requests, "pods")
        .iter()
        .filter(|pod| pod["metadata"]["annotations"]["job.runner.gitlab.com/id"] == id_text)
        .map(|pod| pod["spec"]["containers"][0]["imagePullPolicy"].clone())
        .collect();
    assert_eq!(policies.first(), Some(&json!("Always")), "{policies:?}");
    assert_eq!(
        policies.last(),
        Some(&json!("IfNotPresent")),
        "{policies:?}"
    );
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}
