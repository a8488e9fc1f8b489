//! What a running job reports to its consumers (the console, `--json`, the coordinator updater).

use std::time::{Duration, SystemTime};

use runnel_api::JobId;

use crate::outcome::JobOutcome;

/// One thing that happened in a job, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A build stage (trace section) started.
    SectionStart {
        /// The job.
        job: JobId,
        /// The section name (`step_script`, …).
        name: String,
        /// The header line shown for the section ("Executing "step_script" stage of the job script").
        header: String,
        /// When it started.
        at: SystemTime,
    },
    /// A build stage ended.
    SectionEnd {
        /// The job.
        job: JobId,
        /// The section name.
        name: String,
        /// How long it took.
        duration: Duration,
    },
    /// One line of the (masked) trace, without its line ending; ANSI colours are kept.
    Output {
        /// The job.
        job: JobId,
        /// The line.
        line: String,
    },
    /// The job finished; always the last event of a job.
    Finished {
        /// The job.
        job: JobId,
        /// How it ended.
        outcome: JobOutcome,
    },
}
