//! The fake's API driven by kube-rs, on a cluster without a node (no Docker engine needed):
//! strict decoding, validation, `Status` answers, authentication and authorisation, watches,
//! deletion, garbage collection and the fault switches.

mod support;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use runnel_kube_fake::{FakeCluster, FakeOptions, Fault, Kind};
use serde_json::json;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"job.runner.gitlab.com/id": "42"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "build", "image": "runnel-test/busybox:latest", "command": ["sh"]}]}
    }))
    .expect("a valid pod")
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected a Status answer, got {other:?}"),
    }
}

async fn start() -> (FakeCluster, kube::Client, tempfile::TempDir) {
    let cluster = FakeCluster::start(FakeOptions::without_node().namespace("ci"))
        .await
        .expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = support::client(&cluster, dir.path(), "ci").await;
    (cluster, client, dir)
}

#[tokio::test]
async fn unknown_field_is_rejected_as_strict_field_validation_does() {
    let (cluster, client, _dir) = start().await;
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Pod"), "pods");
    let pods: Api<DynamicObject> = Api::namespaced_with(client, "ci", &resource);
    let mut object = DynamicObject::new("typo", &resource);
    object.data =
        json!({"spec": {"containers": [{"name": "build", "image": "x", "comand": ["sh"]}]}});
    let status = api_error(
        pods.create(&PostParams::default(), &object)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        status.message,
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].comand\""
    );
    assert!(
        cluster.objects(Kind::Pod, Some("ci")).is_empty(),
        "nothing was stored"
    );
    let recorded = cluster
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("the POST was recorded");
    assert_eq!(recorded.status, 400);
    assert_eq!(
        recorded.body.expect("a JSON body")["spec"]["containers"][0]["comand"],
        json!(["sh"])
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn bad_names_are_422_invalid_with_one_cause_per_field() {
    let (cluster, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    let mut bad = pod("Bad_Name");
    bad.spec.as_mut().expect("a spec").containers[0].name = "Build".to_owned();
    let status = api_error(pods.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.starts_with("Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", status.message);
    assert!(
        status.message.contains(
            "spec.containers[0].name: Invalid value: \"Build\": a lowercase RFC 1123 label"
        ),
        "{}",
        status.message
    );
    let causes = status.details.expect("details").causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["metadata.name", "spec.containers[0].name"]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn not_found_already_exists_unauthorized_and_forbidden() {
    let (cluster, client, dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ci");
    let status = api_error(pods.get("missing").await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (404, "NotFound", "pods \"missing\" not found")
    );
    pods.create(&PostParams::default(), &pod("twice"))
        .await
        .expect("the first create");
    let status = api_error(
        pods.create(&PostParams::default(), &pod("twice"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), "nope");
    let status = api_error(
        elsewhere
            .create(&PostParams::default(), &pod("p"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    cluster.forbid_namespace("ci", true);
    let status = api_error(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:default:runnel\" cannot list resource \"pods\" in API group \"\" in the namespace \"ci\""
    );
    cluster.forbid_namespace("ci", false);

    cluster.set_token(Some("rotated"));
    let status = api_error(pods.get("twice").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    cluster.set_token(Some("runnel-fake-token"));
    cluster.set_fault(Fault::Unauthorized).await;
    assert_eq!(api_error(pods.get("twice").await.unwrap_err()).code, 401);
    cluster.set_fault(Fault::None).await;
    assert!(pods.get("twice").await.is_ok());
    drop(dir);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pod_without_a_node_stays_pending_and_is_deleted_at_once() {
    let (cluster, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    let created = pods
        .create(&PostParams::default(), &pod("waits"))
        .await
        .expect("created");
    let spec = created.spec.expect("a spec");
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("Always"),
        "defaulted as a cluster does"
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let pending = cluster
        .wait_for_pod("ci", "waits", Duration::from_secs(30), |p| {
            p.pointer("/status/conditions/0/reason") == Some(&json!("Unschedulable"))
        })
        .await
        .expect("the pod exists");
    assert_eq!(pending["status"]["phase"], "Pending");
    assert_eq!(
        pending["status"]["conditions"][0]["message"],
        "no nodes available to schedule pods"
    );

    let listed = pods
        .list(&ListParams::default().labels("job.runner.gitlab.com/id=42"))
        .await
        .expect("listed");
    assert_eq!(listed.items.len(), 1);
    assert!(
        pods.list(&ListParams::default().labels("job.runner.gitlab.com/id=43"))
            .await
            .expect("listed")
            .items
            .is_empty()
    );

    let mut watch = pods
        .watch(&WatchParams::default().fields("metadata.name=waits"), "0")
        .await
        .expect("a watch")
        .boxed();
    let first = watch
        .try_next()
        .await
        .expect("an event")
        .expect("not the end");
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
    pods.delete("waits", &DeleteParams::default())
        .await
        .expect("deleted");
    let deleted = loop {
        match watch
            .try_next()
            .await
            .expect("an event")
            .expect("not the end")
        {
            WatchEvent::Deleted(pod) => break pod,
            WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(deleted.metadata.name.as_deref(), Some("waits"));
    assert_eq!(api_error(pods.get("waits").await.unwrap_err()).code, 404);
    cluster.shutdown().await;
}

#[tokio::test]
async fn dependents_of_a_deleted_pod_are_garbage_collected() {
    let (cluster, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ci");
    let secrets: Api<Secret> = Api::namespaced(client, "ci");
    let owner = pods
        .create(&PostParams::default(), &pod("owner"))
        .await
        .expect("created");
    let uid = owner.metadata.uid.expect("a uid");
    let secret = |name: &str, uid: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": uid}]},
            "stringData": {"token": "s3cret"}
        }))
        .expect("a valid secret")
    };
    let kept = secrets
        .create(&PostParams::default(), &secret("owned", &uid))
        .await
        .expect("created");
    assert_eq!(
        kept.data.expect("data")["token"].0,
        b"s3cret",
        "stringData went into data"
    );
    // An owner that does not exist: the collector deletes the dependent, as the real one does.
    secrets
        .create(
            &PostParams::default(),
            &secret("dangling", "00000000-0000-4000-8000-000000000000"),
        )
        .await
        .expect("created");
    assert_eq!(
        api_error(secrets.get("dangling").await.unwrap_err()).code,
        404
    );
    assert!(secrets.get("owned").await.is_ok());
    pods.delete("owner", &DeleteParams::default())
        .await
        .expect("deleted");
    assert_eq!(api_error(secrets.get("owned").await.unwrap_err()).code, 404);
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_server_refuses_connections_until_it_is_back() {
    let (cluster, client, _dir) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    let mut watch = pods
        .watch(&WatchParams::default(), "0")
        .await
        .expect("a watch")
        .boxed();
    cluster.set_fault(Fault::Unreachable).await;
    // The open watch ends (cut), and new requests fail without an HTTP answer.
    while let Some(Ok(_)) = watch.next().await {}
    let error = pods.list(&ListParams::default()).await.unwrap_err();
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "no HTTP answer while unreachable: {error:?}"
    );
    cluster.set_fault(Fault::None).await;
    assert!(pods.list(&ListParams::default()).await.is_ok());
    cluster.shutdown().await;
}

#[tokio::test]
async fn tls_with_the_cluster_ca_and_a_token_or_a_client_certificate() {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let cluster = FakeCluster::start(FakeOptions::without_node().namespace("ci").tls(true))
        .await
        .expect("the fake starts");
    assert!(cluster.url().starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The written kubeconfig trusts the cluster's CA and carries the token.
    let client = support::client(&cluster, dir.path(), "ci").await;
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    assert!(
        pods.list(&ListParams::default())
            .await
            .expect("listed over HTTPS")
            .items
            .is_empty()
    );

    // A client certificate instead of the token: authenticated as its common name.
    let (certificate, key) = cluster
        .client_certificate("ci-runner")
        .expect("a client certificate");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: ci}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        cluster.url(),
        engine.encode(cluster.ca_pem().expect("a CA")),
        engine.encode(certificate),
        engine.encode(key)
    );
    let path = dir.path().join("cert-config");
    std::fs::write(&path, kubeconfig).expect("written");
    let config = kube::config::Kubeconfig::read_from(&path).expect("parses");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("usable");
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).expect("a client"), "ci");
    assert!(pods.list(&ListParams::default()).await.is_ok());
    cluster.forbid_namespace("ci", true);
    let status = api_error(pods.list(&ListParams::default()).await.unwrap_err());
    assert!(
        status
            .message
            .contains("User \"ci-runner\" cannot list resource \"pods\""),
        "{}",
        status.message
    );

    // Without the CA the server's certificate is not trusted: no HTTP answer at all.
    let mut untrusting = kube::Config::new(cluster.url().parse().expect("a URL"));
    untrusting.auth_info.token = cluster.token().map(Into::into);
    let pods: Api<Pod> =
        Api::namespaced(kube::Client::try_from(untrusting).expect("a client"), "ci");
    let error = pods.list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(error, kube::Error::Api(_)), "{error:?}");
    cluster.shutdown().await;
}
