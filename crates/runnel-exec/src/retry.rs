//! Running a build stage up to `*_ATTEMPTS` times: `get_sources`, `restore_cache` and
//! `download_artifacts`.
//!
//! GitLab: gitlab-runner `common/build.go` `attemptExecuteStage`. An attempt count outside 1–10
//! fails the job before the stage runs ("number of attempts out of the range [1, 10] for stage:
//! get_sources", a system failure). Each attempt runs the whole stage again, section and header
//! included; nothing else marks a retry in the trace, except that with
//! `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY` (on by default) the runner prints `Retrying in 5s`
//! and waits: 5 s, then a random time up to 1.5 times longer per attempt (jitter), at most
//! 5 min. Unlike gitlab-runner, a cancel or abort ends the wait at once and cancels the job, and
//! the wait ends at the job's deadline with a timeout.

use std::time::Duration;

use runnel_api::FailureReason;

use crate::build::Run;
use crate::context::JobContext;
use crate::error::ExecError;
use crate::outcome::{JobOutcome, JobStatus};
use crate::settings::attempts_in_range;
use crate::steps::go_duration;
use crate::trace::Trace;

/// The backoff between attempts: jpillora/backoff with Min 5 s, Max 5 min, Factor 1.5, Jitter,
/// as gitlab-runner configures it.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    attempt: i32,
}

const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
const BACKOFF_FACTOR: f64 = 1.5;

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { attempt: 0 }
    }

    /// The next wait; `unit` in [0, 1) is the jitter draw.
    pub(crate) fn next(&mut self, unit: f64) -> Duration {
        let min = BACKOFF_MIN.as_secs_f64();
        let full = min * BACKOFF_FACTOR.powi(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let secs = unit * (full - min) + min;
        Duration::try_from_secs_f64(secs)
            .unwrap_or(BACKOFF_MAX)
            .clamp(BACKOFF_MIN, BACKOFF_MAX)
    }
}

/// A draw in [0, 1) for the jitter; no cryptographic quality needed.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How one stage is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageAttempts {
    /// The build stage, for the range error.
    pub(crate) stage: &'static str,
    /// The `*_ATTEMPTS` value as read, not yet range-checked.
    pub(crate) attempts: i64,
    /// `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY`.
    pub(crate) backoff: bool,
}

/// The attempts of one stage, driven by the caller's loop:
///
/// ```ignore
/// let mut attempts = Attempts::start(spec, &run)?;
/// loop {
///     let result = stage(attempts.attempt()).await;
///     if !attempts.again(result, ctx, trace, &mut run).await? { break; }
/// }
/// ```
///
/// An attempt fails when it returns `Err` or leaves the job failed; before the next one the
/// job's result is reset. The last attempt's failure is the stage's.
#[derive(Debug)]
pub(crate) struct Attempts {
    spec: StageAttempts,
    total: u32,
    attempt: u32,
    before: JobOutcome,
    backoff: Backoff,
}

impl Attempts {
    /// Checks the attempt count (out of 1–10 is [`ExecError::Attempts`]) and remembers the
    /// job's result to reset it to.
    pub(crate) fn start(spec: StageAttempts, run: &Run) -> Result<Self, ExecError> {
        let Some(total) = attempts_in_range(spec.attempts) else {
            return Err(ExecError::Attempts { stage: spec.stage });
        };
        Ok(Self {
            spec,
            total,
            attempt: 0,
            before: run.outcome.clone(),
            backoff: Backoff::new(),
        })
    }

    /// The current attempt, from 0.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Takes the result of the attempt that just ended. `Ok(true)`: run the stage again (the
    /// job's result was reset and the backoff waited); `Ok(false)`: done, `run` holds the
    /// stage's result; `Err`: the last attempt's error.
    pub(crate) async fn again(
        &mut self,
        result: Result<(), ExecError>,
        ctx: &JobContext,
        trace: &mut Trace,
        run: &mut Run,
    ) -> Result<bool, ExecError> {
        let failed = result.is_err() || !run.succeeded();
        if !failed || self.attempt + 1 >= self.total || stopped(ctx, run) {
            return result.map(|()| false);
        }
        if let Err(err) = &result {
            // A stage that broke leaves its section open; the next attempt opens it anew.
            trace.close_sections();
            trace.warning(&crate::build::error_chain(err));
        }
        run.outcome = self.before.clone();
        self.attempt += 1;
        if self.spec.backoff && !wait(self.backoff.next(jitter_unit()), ctx, trace, run).await {
            // The wait's end is the stage's: canceled, or out of time.
            return Ok(false);
        }
        Ok(true)
    }
}

/// Whether the job was stopped, so another attempt would be pointless.
fn stopped(ctx: &JobContext, run: &Run) -> bool {
    ctx.cancel.is_cancelled()
        || ctx.abort.is_cancelled()
        || run.outcome.status == JobStatus::Canceled
        || run.outcome.failure_reason == Some(FailureReason::JobExecutionTimeout)
}

/// Prints `Retrying in <duration>` and waits; `false`, with the job's result set, when a cancel
/// or abort came meanwhile or the job ran out of time (the wait ends at the job's deadline).
async fn wait(duration: Duration, ctx: &JobContext, trace: &mut Trace, run: &mut Run) -> bool {
    trace.info(&format!("Retrying in {}", go_duration(duration)));
    let until = run.deadline.min(tokio::time::Instant::now() + duration);
    tokio::select! {
        () = tokio::time::sleep_until(until) => {}
        () = ctx.cancel.cancelled() => {}
        () = ctx.abort.cancelled() => {}
    }
    if ctx.cancel.is_cancelled() || ctx.abort.is_cancelled() {
        run.fail(JobStatus::Canceled, Some(FailureReason::JobCanceled), None);
        return false;
    }
    if until == run.deadline {
        run.fail(
            JobStatus::Failed,
            Some(FailureReason::JobExecutionTimeout),
            None,
        );
        return false;
    }
    true
}

/// The `clear_worktree` stage, run once before the second `get_sources` attempt: deletes every
/// tracked and untracked file of the project directory, keeping `.git` (GitLab:
/// `shells/abstract.go` `writeClearWorktreeScript`, `git rm -rf --ignore-unmatch .` and
/// `git clean -ffdx`, "because Git's submodule support has various bugs").
pub(crate) async fn clear_worktree(
    project_dir: &std::path::Path,
    trace: &mut Trace,
) -> Result<(), ExecError> {
    trace.section_start(
        "clear_worktree",
        "Deleting all tracked and untracked files due to source fetch failure",
    );
    trace.info("Deleting tracked and untracked files...");
    let dir = project_dir.to_owned();
    let result = tokio::task::spawn_blocking(move || -> Result<(), ExecError> {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            removed.map_err(ExecError::io("remove", &path))?;
        }
        Ok(())
    })
    .await
    .map_err(ExecError::Join)?;
    trace.section_end();
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use runnel_api::{FailureReason, JobId};

    use super::{Attempts, Backoff, StageAttempts};
    use crate::build::Run;
    use crate::context::JobContext;
    use crate::error::ExecError;
    use crate::outcome::{JobOutcome, JobStatus};
    use crate::trace::Trace;

    /// A context, a trace and a job due at `deadline`, and attempts of a stage with the
    /// backoff on.
    fn setup(
        deadline: tokio::time::Instant,
    ) -> (tempfile::TempDir, JobContext, Trace, Run, Attempts) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ctx = JobContext::local(dir.path(), crate::WorkingTree::new(dir.path()));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let trace = Trace::new(JobId(1), tx, Default::default(), true, 1 << 20);
        let run = Run {
            outcome: JobOutcome::new(JobStatus::Success),
            deadline,
        };
        let spec = StageAttempts {
            stage: "download_artifacts",
            attempts: 3,
            backoff: true,
        };
        let attempts = Attempts::start(spec, &run).expect("in range");
        (dir, ctx, trace, run, attempts)
    }

    fn broken() -> Result<(), ExecError> {
        Err(ExecError::io("read", std::path::Path::new("/x"))(
            std::io::Error::other("broken"),
        ))
    }

    #[tokio::test]
    async fn a_cancel_during_the_backoff_cancels_the_job_instead_of_failing_the_stage() {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let (_dir, ctx, mut trace, mut run, mut attempts) = setup(far);
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        let again = attempts.again(broken(), &ctx, &mut trace, &mut run).await;
        assert!(matches!(again, Ok(false)), "{again:?}");
        assert_eq!(run.outcome.status, JobStatus::Canceled);
        assert_eq!(run.outcome.failure_reason, Some(FailureReason::JobCanceled));
    }

    #[tokio::test]
    async fn the_backoff_ends_at_the_job_deadline_with_a_timeout() {
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        let (_dir, ctx, mut trace, mut run, mut attempts) = setup(soon);
        let again = attempts.again(broken(), &ctx, &mut trace, &mut run).await;
        assert!(matches!(again, Ok(false)), "{again:?}");
        assert_eq!(run.outcome.status, JobStatus::Failed);
        assert_eq!(
            run.outcome.failure_reason,
            Some(FailureReason::JobExecutionTimeout)
        );
    }

    #[test]
    fn the_first_wait_is_five_seconds_and_later_ones_grow_by_half() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.next(0.7), Duration::from_secs(5));
        assert_eq!(backoff.next(1.0), Duration::from_millis(7500));
        assert_eq!(backoff.next(0.0), Duration::from_secs(5));
        assert_eq!(
            backoff.next(1.0),
            Duration::from_secs_f64(5.0 * 1.5f64.powi(3))
        );
        for _ in 0..20 {
            backoff.next(1.0);
        }
        assert_eq!(backoff.next(1.0), Duration::from_secs(300));
    }
}
