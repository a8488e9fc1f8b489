//! What `runnel exec` shows: the console reporter (live, coloured lines and a final table) and
//! the `--json` document. Both consume the same [`Event`]s and [`JobRecord`]s from the driver.

mod console;
mod json;
pub(crate) mod trace;

use std::time::Duration;

pub(crate) use console::Console;
pub(crate) use json::Json;
use trace::TraceLine;

/// Something that happened to one job (`job` indexes [`Summary::jobs`]).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The job started (`attempt` counts from 1; more for `retry:`).
    Started { job: usize, attempt: u32 },
    /// A line of its trace.
    Line { job: usize, line: TraceLine },
    /// It reached a final status, or one that needs a person (`manual`, `skipped`, ...).
    Status { job: usize },
}

/// Everything known about one job, kept up to date by the driver.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobRecord {
    pub(crate) name: String,
    /// `CI_JOB_ID`.
    pub(crate) id: u64,
    pub(crate) stage: String,
    /// `success`, `failed`, `warning`, `skipped`, `manual`, `canceled`, `created`, ...
    pub(crate) status: &'static str,
    pub(crate) exit_code: Option<i32>,
    pub(crate) failure_reason: Option<String>,
    /// Output lines without echoed commands, section markers or ANSI sequences.
    pub(crate) output: Vec<String>,
    pub(crate) coverage: Option<String>,
    pub(crate) started_seq: Option<u64>,
    pub(crate) finished_seq: Option<u64>,
    pub(crate) duration: Option<Duration>,
    pub(crate) artifacts: Vec<String>,
    /// `.runnel/logs/<job>.log`.
    pub(crate) log_path: Option<String>,
    /// `tests, failures, errors, skipped` from its junit reports.
    pub(crate) junit: Option<[u64; 4]>,
}

/// The end of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) status: &'static str,
    /// Whether the pipeline passed (success, warning, or nothing to do).
    pub(crate) passed: bool,
    pub(crate) jobs: Vec<JobRecord>,
    /// Manual jobs that hold the pipeline back.
    pub(crate) blocking_manual: Vec<String>,
    /// The command line that re-runs one job, without the job name (`runnel exec -C dir`).
    pub(crate) rerun_prefix: String,
    /// Why the run stopped early (Ctrl-C).
    pub(crate) interrupted: bool,
}

/// A consumer of the driver's events.
pub(crate) trait Reporter: Send {
    fn event(&mut self, event: &Event, jobs: &[JobRecord]);
    fn finish(&mut self, summary: &Summary);
}

/// Seconds with two decimals, as the table and `--json` show durations.
pub(crate) fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100.0).round() / 100.0
}

/// Quotes a job name for a shell command line when needed.
pub(crate) fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
