//! What the Docker executor's test files share: the runner settings, the engine probe, running
//! a job, and the containers and networks a job left behind.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use runnel_api::JobPayload;
use runnel_exec::docker::{
    DockerConfig, DockerExecutor, JOB_LABEL, PullPolicy, TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE,
    docker_available,
};
use runnel_exec::test_support::{Ran, TestProject, run_to_end};

/// Prints the body fetched from the URL given as the script's argument (the Python image).
pub(crate) const FETCH: &str = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())'";

/// The runner settings of these tests: local images only, a short stop grace period.
pub(crate) fn config() -> DockerConfig {
    DockerConfig {
        image: Some(TEST_BUSYBOX_IMAGE.to_owned()),
        pull_policy: vec![PullPolicy::IfNotPresent],
        stop_timeout: Duration::from_secs(1),
        ..DockerConfig::default()
    }
}

/// Whether the engine answers and has the local test images (else `SKIPPED`, or a panic with
/// `CI=true`).
pub(crate) fn available() -> bool {
    docker_available(&[TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE])
}

/// Runs `payload` to its end in `project` with the Docker executor of `config`.
pub(crate) async fn run_in(
    project: &TestProject,
    config: DockerConfig,
    payload: JobPayload,
) -> Ran {
    let ctx = project.context(&payload.id.to_string());
    run_to_end(&mut DockerExecutor::new(config), payload, ctx).await
}

/// The containers and networks of job `id` that still exist.
pub(crate) async fn leftovers(id: u64) -> Vec<String> {
    let docker = Docker::connect_with_defaults().expect("the engine answers");
    let filters = HashMap::from([("label", vec![format!("{JOB_LABEL}={id}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("containers can be listed");
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("networks can be listed");
    containers
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .chain(networks.into_iter().filter_map(|n| n.name))
        .collect()
}
