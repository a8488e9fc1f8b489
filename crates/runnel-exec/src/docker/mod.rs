//! The Docker executor: jobs run in containers of the image they name, with `services:` as
//! sibling containers on a per-job network, through the Docker Engine API (bollard).
//!
//! GitLab: gitlab-runner `executors/docker`. Differences: helper work happens on the host
//! against bind-mounted build directories (no helper image), and services are waited for by
//! connecting from the host.

mod config;
mod container;
mod error;
mod executor;
mod image;
mod names;
mod policy;
#[cfg(feature = "test-support")]
mod probe;
mod services;
mod terminal;

pub use config::{ConfigError, DEFAULT_WAIT_FOR_SERVICES_TIMEOUT, DockerConfig, PullPolicy};
pub use executor::{DockerExecutor, remove_leftovers};
pub use names::{JOB_LABEL, MANAGED_LABEL};
#[cfg(feature = "test-support")]
pub use probe::{TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE, docker_available};
