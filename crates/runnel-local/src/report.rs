//! What a local run tells its reporter: [`Event`]s as they happen, one [`JobRecord`] per job kept
//! up to date, and a [`Summary`] at the end. Printing them is the caller's business (the CLI's
//! console table and `--json` document).

use std::time::Duration;

use crate::trace::TraceLine;

/// Something that happened to one job (`job` indexes [`Summary::jobs`]).
#[derive(Debug, Clone)]
pub enum Event {
    /// The job started (`attempt` counts from 1; more for `retry:`).
    Started {
        /// The job.
        job: usize,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A line of its trace.
    Line {
        /// The job.
        job: usize,
        /// The line.
        line: TraceLine,
    },
    /// It reached a final status, or one that needs a person (`manual`, `skipped`, ...).
    Status {
        /// The job.
        job: usize,
    },
}

/// Everything known about one job, kept up to date by the driver.
#[derive(Debug, Clone, Default)]
pub struct JobRecord {
    /// Its name; a child pipeline's job is `[trigger] -> job`.
    pub name: String,
    /// `CI_JOB_ID`.
    pub id: u64,
    /// Its stage.
    pub stage: String,
    /// `success`, `failed`, `warning`, `skipped`, `manual`, `canceled`, `created`, ...
    pub status: &'static str,
    /// The exit code of its script, when it ran one.
    pub exit_code: Option<i32>,
    /// GitLab's `failure_reason` when it failed.
    pub failure_reason: Option<String>,
    /// Output lines without echoed commands, section markers or ANSI sequences.
    pub output: Vec<String>,
    /// Coverage found by its `coverage:` pattern.
    pub coverage: Option<String>,
    /// When it started, counted in events of the run.
    pub started_seq: Option<u64>,
    /// When it ended, counted in events of the run.
    pub finished_seq: Option<u64>,
    /// How long it ran.
    pub duration: Option<Duration>,
    /// Paths of the files it archived as artifacts.
    pub artifacts: Vec<String>,
    /// `.runnel/logs/<job>.log`.
    pub log_path: Option<String>,
    /// `tests, failures, errors, skipped` from its junit reports.
    pub junit: Option<[u64; 4]>,
}

/// The end of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The pipeline's status (`success`, `failed`, ...).
    pub status: &'static str,
    /// Whether the pipeline passed (success, warning, or nothing to do).
    pub passed: bool,
    /// Every job, in schedule order.
    pub jobs: Vec<JobRecord>,
    /// Manual jobs that hold the pipeline back.
    pub blocking_manual: Vec<String>,
    /// Why the run stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// A consumer of the driver's events.
pub trait Reporter: Send {
    /// Called for every event; `jobs` are the records after it.
    fn event(&mut self, event: &Event, jobs: &[JobRecord]);
    /// Called once, when the run ends.
    fn finish(&mut self, summary: &Summary);
}
