//! Executor conformance suite, modelled on gitlab-runner's `common/buildtest`: every executor
//! must pass every case. Add an executor to [`executors`] to run the suite against it.

mod archives;
mod jobs;
mod processes;
mod sources;

use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_api::JobPayload;
use runnel_exec::test_support::{TestProject, collect_events, output_text};
use runnel_exec::{
    Executor, JobContext, JobEvent, JobOutcome, ShellConfig, ShellExecutor, run_job_with,
};
use tokio::sync::mpsc;

/// Makes a fresh executor for one job.
pub(crate) type MakeExecutor = fn() -> Box<dyn Executor>;

/// The executors under test.
pub(crate) fn executors() -> Vec<(&'static str, MakeExecutor)> {
    vec![("shell", || {
        Box::new(ShellExecutor::new(ShellConfig {
            shell: None,
            kill_grace: Duration::from_secs(2),
        }))
    })]
}

/// What one job run produced.
pub(crate) struct Ran {
    pub(crate) outcome: JobOutcome,
    pub(crate) events: Vec<JobEvent>,
    /// The output lines of the events.
    pub(crate) output: String,
    /// The full trace as written to the log file.
    pub(crate) trace: String,
}

/// Runs `payload` in `project` with a fresh executor from `make`.
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

/// The project directory of a job of `project` (`<project>/.runnel/builds/acme/app`).
pub(crate) fn project_dir(project: &TestProject) -> PathBuf {
    project.path().join(".runnel/builds/acme/app")
}

/// Whether process `pid` is alive and not a zombie.
pub(crate) fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state.is_some_and(|s| s != "Z")
}

/// Reads a pid written by a job.
pub(crate) fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}
