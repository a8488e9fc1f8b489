//! The executor conformance suite (`tests/conformance/`) run against the Docker executor, in
//! the local `python:3.11-slim` (`bash`; `tests/docker.rs` covers `sh`-only images). The process-tree cases read host pids and
//! are the shell executor's; the Docker executor's timeout and cancel are in `tests/docker.rs`.
//!
//! The cases live in `docker::…` so their names contain `docker` (nextest's docker group).

use std::time::Duration;

use runnel_exec::docker::{
    DockerConfig, DockerExecutor, PullPolicy, TEST_PYTHON_IMAGE, docker_available,
};
use runnel_exec::test_support::MakeExecutor;
pub(crate) use runnel_exec::test_support::{project_dir, run, run_with};

/// The project directory as the scripts see it: the same path.
pub(crate) fn script_project_dir(
    project: &runnel_exec::test_support::TestProject,
) -> std::path::PathBuf {
    project_dir(project)
}

#[path = "conformance"]
mod docker {
    mod archives;
    mod jobs;
}

/// The Docker executor, when an engine and the test image are there.
pub(crate) fn executors() -> Vec<(&'static str, MakeExecutor)> {
    if !docker_available(&[TEST_PYTHON_IMAGE]) {
        return Vec::new();
    }
    vec![("docker", || {
        Box::new(DockerExecutor::new(DockerConfig {
            image: Some(TEST_PYTHON_IMAGE.to_owned()),
            pull_policy: vec![PullPolicy::IfNotPresent],
            stop_timeout: Duration::from_secs(2),
            ..DockerConfig::default()
        }))
    })]
}
