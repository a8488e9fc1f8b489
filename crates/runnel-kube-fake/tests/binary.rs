//! The `runnel-kube-fake` program: it serves, writes a kubeconfig a client can use, and exits
//! cleanly on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[tokio::test]
async fn the_program_serves_writes_a_kubeconfig_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-kube-fake"))
        .args(["--no-node", "--namespace", "ci", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("readable");
    assert!(
        first.starts_with("fake Kubernetes API server at http://127.0.0.1:"),
        "{first}"
    );
    let second = lines.next().expect("a line").expect("readable");
    assert!(second.starts_with("kubeconfig written to "), "{second}");

    let config = Kubeconfig::read_from(&kubeconfig).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .expect("usable");
    assert_eq!(config.default_namespace, "ci");
    let client = kube::Client::try_from(config).expect("a client");
    let namespaces: Api<Namespace> = Api::all(client);
    let ci = namespaces.get("ci").await.expect("the namespace exists");
    assert_eq!(ci.status.and_then(|s| s.phase).as_deref(), Some("Active"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("the program exits");
    assert!(status.success(), "{status:?}");
}
