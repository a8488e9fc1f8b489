//! Shared pieces of the fake's tests: a kube-rs client from the written kubeconfig, and the
//! Docker probe (SKIPPED without an engine, a failure with `CI=true`).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use runnel_kube_fake::{DEFAULT_PAUSE_IMAGE, FakeCluster};

/// A client of `cluster` built the way a user's tooling builds it: from a kubeconfig file.
pub async fn client(cluster: &FakeCluster, dir: &Path, namespace: &str) -> kube::Client {
    let path = dir.join("kubeconfig");
    cluster
        .write_kubeconfig(&path, "fake", namespace)
        .expect("the kubeconfig is written");
    let kubeconfig = Kubeconfig::read_from(&path).expect("the written kubeconfig parses");
    let options = KubeConfigOptions {
        context: Some("fake".to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("the kubeconfig is usable");
    kube::Client::try_from(config).expect("a client")
}

/// Whether the Docker engine answers and has the sandbox image.
pub async fn docker_available() -> bool {
    let reason = match bollard::Docker::connect_with_defaults() {
        Err(error) => format!("cannot connect: {error}"),
        Ok(docker) => match docker.ping().await {
            Err(error) => format!("no answer to ping: {error}"),
            Ok(_) => match docker.inspect_image(DEFAULT_PAUSE_IMAGE).await {
                Ok(_) => return true,
                Err(_) => format!(
                    "the image `{DEFAULT_PAUSE_IMAGE}` is missing: run scripts/test-images.sh"
                ),
            },
        },
    };
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("no Docker engine ({reason}); .ci/run starts one");
    }
    println!("SKIPPED: no Docker engine ({reason}); .ci/run starts one");
    false
}
