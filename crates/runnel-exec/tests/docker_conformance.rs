//! The executor conformance suite (`tests/conformance/`) run against the Docker executor, in
//! the local `python:3.11-slim` (`bash`; `tests/docker.rs` covers `sh`-only images). The process-tree cases read host pids and
//! are the shell executor's; the Docker executor's timeout and cancel are in `tests/docker.rs`.
//!
//! The cases live in `docker::…` so their names contain `docker` (nextest's docker group).

use std::path::PathBuf;
use std::time::Duration;

use runnel_api::JobPayload;
use runnel_exec::docker::{
    DockerConfig, DockerExecutor, PullPolicy, TEST_PYTHON_IMAGE, docker_available,
};
use runnel_exec::test_support::{TestProject, collect_events, output_text};
use runnel_exec::{Executor, JobContext, JobEvent, JobOutcome, run_job_with};
use tokio::sync::mpsc;

#[path = "conformance"]
mod docker {
    mod archives;
    mod jobs;
}

/// Makes a fresh executor for one job.
pub(crate) type MakeExecutor = fn() -> Box<dyn Executor>;

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

/// What one job run produced.
pub(crate) struct Ran {
    pub(crate) outcome: JobOutcome,
    pub(crate) events: Vec<JobEvent>,
    pub(crate) output: String,
    pub(crate) trace: String,
}

pub(crate) async fn run(make: MakeExecutor, project: &TestProject, payload: JobPayload) -> Ran {
    let ctx = project.context(&payload.id.to_string());
    run_with(make, payload, ctx).await
}

pub(crate) async fn run_with(make: MakeExecutor, payload: JobPayload, ctx: JobContext) -> Ran {
    let log = ctx
        .trace_log
        .clone()
        .expect("test contexts have a trace log");
    let (tx, rx) = mpsc::unbounded_channel();
    let mut executor = make();
    let outcome = run_job_with(executor.as_mut(), payload, ctx, tx)
        .await
        .expect("runnel does not break");
    let events = collect_events(rx).await;
    let trace = String::from_utf8_lossy(&std::fs::read(&log).expect("the trace log is written"))
        .into_owned();
    Ran {
        outcome,
        output: output_text(&events),
        events,
        trace,
    }
}

pub(crate) fn project_dir(project: &TestProject) -> PathBuf {
    project.path().join(".runnel/builds/acme/app")
}
