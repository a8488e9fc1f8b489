//! The pipeline state machine: given the jobs of a pipeline and what happened so far, which jobs
//! are ready, skipped, waiting for a person or blocked. Shared by `runnel exec` and `runnel serve`.
//!
//! Pure and synchronous: it starts nothing and waits for nothing. The driver asks
//! [`Schedule::advance`] for transitions, runs the jobs that became [`JobStatus::Pending`], and
//! reports each end with [`Schedule::finish`].
//!
//! The rules are GitLab's, copied from:
//! - `app/services/ci/pipeline_processing/atomic_processing_service.rb`: a `created` job is looked
//!   at only when the status of its previous jobs (all jobs of earlier stages, or its `needs`) is
//!   completed (`success`, `failed`, `canceled`, `skipped`);
//! - `app/services/ci/process_build_service.rb`: which previous status lets a job run for each
//!   `when:` value; any other completed status skips it;
//! - `lib/gitlab/ci/status/composite.rb`: how statuses compose (a failure that is allowed counts
//!   as `success_with_warnings`, a manual job that is allowed to fail is ignored);
//! - `lib/gitlab/ci/build/auto_retry.rb`: `retry:`.

use std::time::Duration;

use crate::when::{AllowFailure, When};

/// A job's status, with GitLab's words (`app/models/concerns/ci/has_status.rb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Not looked at yet, or blocked by an earlier job that has not completed.
    Created,
    /// Ready to run: the driver should start it.
    Pending,
    /// Running.
    Running,
    /// Succeeded.
    Success,
    /// Failed (see [`JobState::allowed_failure`] for `warning`).
    Failed,
    /// Canceled.
    Canceled,
    /// Skipped: its `when:` did not match what happened before.
    Skipped,
    /// A manual job waiting for a person.
    Manual,
    /// A delayed job waiting for its `start_in`.
    Scheduled,
}

impl JobStatus {
    /// GitLab's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "created",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::Skipped => "skipped",
            JobStatus::Manual => "manual",
            JobStatus::Scheduled => "scheduled",
        }
    }

    /// `COMPLETED_STATUSES` in GitLab's `Ci::HasStatus`.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped
        )
    }
}

/// `retry:`. GitLab: lib/gitlab/ci/config/entry/retry.rb, lib/gitlab/ci/build/auto_retry.rb.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `retry:max` (0 to 2); 0 means no retry.
    pub max: u32,
    /// `retry:when`: failure reasons (`script_failure`, `always`, ...). Empty means `always`.
    pub when: Vec<String>,
    /// `retry:exit_codes`: retry only for these exit codes.
    pub exit_codes: Option<Vec<i32>>,
}

impl RetryPolicy {
    /// Whether a job that failed for `failure_reason` with `exit_code` after `retries` retries is
    /// retried once more.
    pub fn allows(&self, failure_reason: &str, exit_code: Option<i32>, retries: u32) -> bool {
        // GitLab: auto_retry.rb `RETRY_OVERRIDES` — these reasons are never retried.
        const NEVER: [&str; 5] = [
            "ci_quota_exceeded",
            "no_matching_runner",
            "missing_dependency_failure",
            "forward_deployment_failure",
            "environment_creation_failure",
        ];
        if NEVER.contains(&failure_reason) {
            return false;
        }
        let reason_matches = self.when.is_empty()
            || self
                .when
                .iter()
                .any(|w| w == "always" || w == failure_reason);
        let exit_code_matches = match &self.exit_codes {
            None => true,
            Some(codes) => exit_code.is_some_and(|code| codes.contains(&code)),
        };
        let max = if reason_matches && exit_code_matches {
            self.max
        } else if failure_reason == "scheduler_failure" {
            // GitLab: auto_retry.rb `DEFAULT_RETRIES`.
            2
        } else {
            0
        };
        max > retries
    }
}

/// A job as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct ScheduleJob {
    /// The job's name, for messages.
    pub name: String,
    /// Index of the job's stage in the pipeline's `stages:` (`.pre` is 0).
    pub stage_index: usize,
    /// `None`: the job waits for every job of earlier stages. `Some`: the jobs it `needs`, as
    /// indices into the schedule's job list (`Some(vec![])` for `needs: []`).
    pub needs: Option<Vec<usize>>,
    /// `when:` after `rules:`.
    pub when: When,
    /// `allow_failure:` after `rules:`.
    pub allow_failure: AllowFailure,
    /// `retry:`.
    pub retry: RetryPolicy,
    /// The pipeline the job belongs to: 0 for the pipeline itself, others for child pipelines.
    /// Stage ordering only looks at jobs of the same pipeline.
    pub pipeline: usize,
    /// For a job of a child pipeline: the trigger job that creates that pipeline. The job is not
    /// looked at before the trigger job succeeded.
    pub trigger: Option<usize>,
}

/// What the scheduler knows about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// The current status.
    pub status: JobStatus,
    /// For a failed job: its failure is allowed (`allow_failure`, `exit_codes`): GitLab shows it
    /// as passed with warnings.
    pub allowed_failure: bool,
    /// How many times the job was retried.
    pub retries: u32,
    /// Whether a person started it (`--manual`, or the job was named on the command line).
    pub played: bool,
}

impl JobState {
    /// The word `runnel exec` reports: GitLab's status, with `warning` for an allowed failure.
    pub fn report_status(&self) -> &'static str {
        if self.status == JobStatus::Failed && self.allowed_failure {
            "warning"
        } else {
            self.status.as_str()
        }
    }
}

/// How a job ended, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// The job succeeded.
    Success,
    /// The job failed.
    Failed {
        /// GitLab's `failure_reason` (`script_failure`, `job_execution_timeout`, ...).
        failure_reason: String,
        /// The script's exit code, when it exited.
        exit_code: Option<i32>,
    },
    /// The job was canceled.
    Canceled,
}

/// A change of status that [`Schedule::advance`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The job is ready: start it, then call [`Schedule::start`].
    Ready(usize),
    /// The job will not run.
    Skipped(usize),
    /// The job waits for a person ([`Schedule::play`]).
    Manual(usize),
    /// The job waits for `start_in`; then call [`Schedule::play`].
    Delayed(usize, Duration),
}

/// What [`Schedule::finish`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The job is pending again (`retry:`): start it once more.
    Retry,
    /// The job has its final status.
    Done(JobStatus),
}

/// The state of one pipeline run.
#[derive(Debug, Clone)]
pub struct Schedule {
    jobs: Vec<ScheduleJob>,
    states: Vec<JobState>,
}

impl Schedule {
    /// A schedule where every job is `created`. Needs that point outside `jobs` are dropped.
    pub fn new(mut jobs: Vec<ScheduleJob>) -> Self {
        let count = jobs.len();
        for job in &mut jobs {
            if let Some(needs) = &mut job.needs {
                needs.retain(|&i| i < count);
            }
        }
        let states = jobs
            .iter()
            .map(|_| JobState {
                status: JobStatus::Created,
                allowed_failure: false,
                retries: 0,
                played: false,
            })
            .collect();
        Schedule { jobs, states }
    }

    /// The jobs, in the order given to [`Schedule::new`].
    pub fn jobs(&self) -> &[ScheduleJob] {
        &self.jobs
    }

    /// The state of job `index`.
    pub fn state(&self, index: usize) -> &JobState {
        &self.states[index]
    }

    /// All states, indexed like [`Schedule::jobs`].
    pub fn states(&self) -> &[JobState] {
        &self.states
    }

    /// A person starts a manual job, or runs a delayed job now. A job that has not been reached
    /// yet is remembered as played and becomes pending when its turn comes. Returns `false` when
    /// the job cannot be played (it already ran or was skipped).
    pub fn play(&mut self, index: usize) -> bool {
        let Some(state) = self.states.get_mut(index) else {
            return false;
        };
        match state.status {
            JobStatus::Created => {
                state.played = true;
                true
            }
            JobStatus::Manual | JobStatus::Scheduled => {
                state.played = true;
                state.status = JobStatus::Pending;
                true
            }
            _ => false,
        }
    }

    /// Processes every `created` job whose previous jobs have completed, until nothing changes.
    /// GitLab: atomic_processing_service.rb `update_job!` and process_build_service.rb.
    pub fn advance(&mut self) -> Vec<Transition> {
        let mut transitions = Vec::new();
        loop {
            let before = transitions.len();
            for index in 0..self.jobs.len() {
                if self.states[index].status != JobStatus::Created {
                    continue;
                }
                if let Some(trigger) = self.jobs[index].trigger
                    && self.states[trigger].status != JobStatus::Success
                    && self.states[trigger].status != JobStatus::Running
                {
                    continue;
                }
                let previous = self.previous_status(index);
                if !previous.is_completed() {
                    continue;
                }
                transitions.push(self.process(index, previous));
            }
            if transitions.len() == before {
                return transitions;
            }
        }
    }

    fn process(&mut self, index: usize, previous: JobStatus) -> Transition {
        let job = &self.jobs[index];
        let dag = job.needs.is_some();
        let valid: &[JobStatus] = match job.when {
            When::OnSuccess | When::Manual | When::Delayed { .. } if dag => &[JobStatus::Success],
            When::OnSuccess | When::Manual | When::Delayed { .. } => {
                &[JobStatus::Success, JobStatus::Skipped]
            }
            When::OnFailure => &[JobStatus::Failed],
            When::Always => &[JobStatus::Success, JobStatus::Failed, JobStatus::Skipped],
            When::Never => &[],
        };
        let state = &mut self.states[index];
        if !valid.contains(&previous) {
            state.status = JobStatus::Skipped;
            return Transition::Skipped(index);
        }
        match &job.when {
            When::Manual if !state.played => {
                state.status = JobStatus::Manual;
                Transition::Manual(index)
            }
            When::Delayed { duration, .. } if !state.played => {
                state.status = JobStatus::Scheduled;
                Transition::Delayed(index, *duration)
            }
            _ => {
                state.status = JobStatus::Pending;
                Transition::Ready(index)
            }
        }
    }

    /// The composite status of a job's previous jobs: its needs, or all jobs of earlier stages.
    /// No previous job counts as `success`. GitLab: status_collection.rb `status_for_array`.
    pub fn previous_status(&self, index: usize) -> JobStatus {
        let job = &self.jobs[index];
        let composite = match &job.needs {
            Some(needs) => composite(needs.iter().map(|&i| self.composite_input(i)), true),
            None => composite(
                (0..self.jobs.len())
                    .filter(|&i| {
                        self.jobs[i].pipeline == job.pipeline
                            && self.jobs[i].stage_index < job.stage_index
                    })
                    .map(|i| self.composite_input(i)),
                false,
            ),
        };
        composite.unwrap_or(JobStatus::Success)
    }

    fn composite_input(&self, index: usize) -> (JobStatus, bool) {
        let state = &self.states[index];
        let allow = match state.status {
            JobStatus::Failed => state.allowed_failure,
            JobStatus::Manual | JobStatus::Canceled => self.jobs[index].allow_failure.allows(None),
            _ => false,
        };
        (state.status, allow)
    }

    /// The driver started job `index` (it was pending).
    pub fn start(&mut self, index: usize) {
        self.states[index].status = JobStatus::Running;
    }

    /// Job `index` ended with `result`. A failure that `retry:` covers makes it pending again.
    pub fn finish(&mut self, index: usize, result: &JobResult) -> Finished {
        let job = &self.jobs[index];
        let state = &mut self.states[index];
        match result {
            JobResult::Success => state.status = JobStatus::Success,
            JobResult::Canceled => state.status = JobStatus::Canceled,
            JobResult::Failed {
                failure_reason,
                exit_code,
            } => {
                if job.retry.allows(failure_reason, *exit_code, state.retries) {
                    state.retries += 1;
                    state.status = JobStatus::Pending;
                    return Finished::Retry;
                }
                state.status = JobStatus::Failed;
                // GitLab: a failure of a job with `allow_failure: true` is always allowed; with
                // `exit_codes` only a script exit with one of them (app/models/ci/build.rb
                // `allowed_to_fail_with_code?`).
                state.allowed_failure = job.allow_failure.allows(*exit_code);
            }
        }
        Finished::Done(state.status)
    }

    /// Cancels the pipeline: jobs that have not started become `canceled` (manual jobs stay
    /// manual, as in GitLab, whose `CANCELABLE_STATUSES` exclude them). Running jobs are the
    /// driver's to stop; it reports them with [`Schedule::finish`].
    pub fn cancel(&mut self) {
        for state in &mut self.states {
            if matches!(
                state.status,
                JobStatus::Created | JobStatus::Pending | JobStatus::Scheduled
            ) {
                state.status = JobStatus::Canceled;
            }
        }
    }

    /// Whether nothing can happen any more without a person: no job is pending, running or
    /// scheduled.
    pub fn is_idle(&self) -> bool {
        !self.states.iter().any(|s| {
            matches!(
                s.status,
                JobStatus::Pending | JobStatus::Running | JobStatus::Scheduled
            )
        })
    }

    /// The pipeline's status: the composite of all its jobs (child pipelines count through their
    /// trigger jobs). `manual` means blocked by a manual job; `running` when jobs were left
    /// waiting.
    pub fn pipeline_status(&self) -> PipelineStatus {
        self.status_of_pipeline(0)
    }

    /// The status of pipeline `pipeline` (0: the pipeline itself, others: child pipelines).
    pub fn status_of_pipeline(&self, pipeline: usize) -> PipelineStatus {
        let members = || (0..self.jobs.len()).filter(move |&i| self.jobs[i].pipeline == pipeline);
        let status = composite(members().map(|i| self.composite_input(i)), false);
        let warnings = members()
            .any(|i| self.states[i].status == JobStatus::Failed && self.states[i].allowed_failure);
        match status {
            None => PipelineStatus::Success,
            Some(JobStatus::Success) if warnings => PipelineStatus::Warning,
            Some(JobStatus::Success) => PipelineStatus::Success,
            Some(JobStatus::Skipped) => PipelineStatus::Skipped,
            Some(JobStatus::Failed) => PipelineStatus::Failed,
            Some(JobStatus::Canceled) => PipelineStatus::Canceled,
            Some(JobStatus::Manual) => PipelineStatus::Blocked,
            Some(_) => PipelineStatus::Running,
        }
    }

    /// Whether nothing more can happen in pipeline `pipeline` without a person: none of its jobs
    /// is pending, running or scheduled, and none can be reached by [`Schedule::advance`].
    pub fn pipeline_is_idle(&self, pipeline: usize) -> bool {
        (0..self.jobs.len())
            .filter(|&i| self.jobs[i].pipeline == pipeline)
            .all(|i| {
                let status = self.states[i].status;
                match status {
                    JobStatus::Pending | JobStatus::Running | JobStatus::Scheduled => false,
                    JobStatus::Created => !self.previous_status(i).is_completed(),
                    _ => true,
                }
            })
    }

    /// Manual jobs that hold others back: they are not allowed to fail and at least one
    /// `created` job is still waiting.
    pub fn blocking_manual_jobs(&self) -> Vec<usize> {
        if !self.states.iter().any(|s| s.status == JobStatus::Created) {
            return Vec::new();
        }
        (0..self.jobs.len())
            .filter(|&i| {
                self.states[i].status == JobStatus::Manual
                    && !self.jobs[i].allow_failure.allows(None)
            })
            .collect()
    }
}

/// The status of a whole pipeline run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStatus {
    /// Every job succeeded or was skipped.
    Success,
    /// Passed, with failures that were allowed.
    Warning,
    /// A job failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Nothing ran: every job was skipped.
    Skipped,
    /// A manual job that is not allowed to fail holds later jobs back (GitLab: `manual`,
    /// shown as "blocked").
    Blocked,
    /// Jobs are still waiting or running.
    Running,
}

impl PipelineStatus {
    /// The word `runnel exec --json` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Success => "success",
            PipelineStatus::Warning => "warning",
            PipelineStatus::Failed => "failed",
            PipelineStatus::Canceled => "canceled",
            PipelineStatus::Skipped => "skipped",
            PipelineStatus::Blocked => "manual",
            PipelineStatus::Running => "running",
        }
    }

    /// Whether the pipeline passed (with or without warnings, or with nothing to do).
    pub fn passed(self) -> bool {
        matches!(
            self,
            PipelineStatus::Success | PipelineStatus::Warning | PipelineStatus::Skipped
        )
    }
}

/// One composed status. GitLab: composite.rb `consume_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Composed {
    Status(JobStatus),
    SuccessWithWarnings,
    Ignored,
}

/// Composes statuses the way GitLab does (lib/gitlab/ci/status/composite.rb `status`). Each
/// item is a status and whether the job is allowed to fail. `None` when there are no items.
pub fn composite(
    statuses: impl IntoIterator<Item = (JobStatus, bool)>,
    dag: bool,
) -> Option<JobStatus> {
    use JobStatus as S;
    let mut set: Vec<Composed> = Vec::new();
    for (status, allow_failure) in statuses {
        let composed = match status {
            S::Failed | S::Canceled if allow_failure => Composed::SuccessWithWarnings,
            S::Manual if allow_failure => Composed::Ignored,
            other => Composed::Status(other),
        };
        if !set.contains(&composed) {
            set.push(composed);
        }
    }
    if set.is_empty() {
        return None;
    }
    let has = |s: S| set.contains(&Composed::Status(s));
    let only = |allowed: &[Composed]| set.iter().all(|c| allowed.contains(c));
    let st = Composed::Status;
    let (warn, ignored) = (Composed::SuccessWithWarnings, Composed::Ignored);
    let status = if dag && (has(S::Skipped) || set.contains(&ignored)) {
        // GitLab: "The DAG job is skipped if one of the needs does not run at all."
        S::Skipped
    } else if dag
        && !only(&[
            st(S::Success),
            st(S::Failed),
            st(S::Canceled),
            st(S::Skipped),
            warn,
        ])
    {
        // GitLab: "DAG is blocked from executing if a dependent is not complete".
        S::Pending
    } else if only(&[st(S::Skipped), ignored]) {
        S::Skipped
    } else if only(&[st(S::Success), st(S::Skipped), warn, ignored]) {
        S::Success
    } else if only(&[st(S::Created), warn, ignored]) {
        S::Created
    } else if only(&[
        st(S::Canceled),
        st(S::Success),
        st(S::Skipped),
        warn,
        ignored,
    ]) {
        S::Canceled
    } else if only(&[
        st(S::Pending),
        st(S::Created),
        st(S::Skipped),
        warn,
        ignored,
    ]) {
        S::Pending
    } else if has(S::Running) || has(S::Pending) {
        S::Running
    } else if has(S::Manual) {
        S::Manual
    } else if has(S::Scheduled) {
        S::Scheduled
    } else if has(S::Created) {
        S::Running
    } else {
        S::Failed
    };
    Some(status)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        JobResult, JobStatus, PipelineStatus, RetryPolicy, Schedule, ScheduleJob, Transition,
        composite,
    };
    use crate::when::{AllowFailure, When};

    fn job(name: &str, stage: usize) -> ScheduleJob {
        ScheduleJob {
            name: name.to_owned(),
            stage_index: stage,
            needs: None,
            when: When::OnSuccess,
            allow_failure: AllowFailure::Bool(false),
            retry: RetryPolicy::default(),
            pipeline: 0,
            trigger: None,
        }
    }

    fn with_when(mut j: ScheduleJob, when: When) -> ScheduleJob {
        j.when = when;
        j
    }

    fn with_needs(mut j: ScheduleJob, needs: &[usize]) -> ScheduleJob {
        j.needs = Some(needs.to_vec());
        j
    }

    fn with_allow(mut j: ScheduleJob, allow: AllowFailure) -> ScheduleJob {
        j.allow_failure = allow;
        j
    }

    fn failed(code: i32) -> JobResult {
        JobResult::Failed {
            failure_reason: "script_failure".to_owned(),
            exit_code: Some(code),
        }
    }

    /// Runs the schedule to the end: every ready job ends with `result(index)`.
    fn run(schedule: &mut Schedule, result: impl Fn(usize, u32) -> JobResult) -> Vec<usize> {
        let mut order = Vec::new();
        loop {
            let ready: Vec<usize> = schedule
                .advance()
                .into_iter()
                .filter_map(|t| {
                    if let Transition::Ready(i) = t {
                        Some(i)
                    } else {
                        None
                    }
                })
                .collect();
            let pending: Vec<usize> = (0..schedule.jobs().len())
                .filter(|&i| schedule.state(i).status == JobStatus::Pending)
                .collect();
            if ready.is_empty() && pending.is_empty() {
                return order;
            }
            for i in pending {
                schedule.start(i);
                order.push(i);
                let retries = schedule.state(i).retries;
                schedule.finish(i, &result(i, retries));
            }
        }
    }

    /// A [`run`] result: the first job fails with exit code 1, every other succeeds.
    fn first_fails(index: usize, _retries: u32) -> JobResult {
        if index == 0 {
            failed(1)
        } else {
            JobResult::Success
        }
    }

    fn statuses(schedule: &Schedule) -> Vec<&'static str> {
        schedule
            .states()
            .iter()
            .map(|s| s.report_status())
            .collect()
    }

    #[test]
    fn stages_run_in_order() {
        let mut s = Schedule::new(vec![job("test", 2), job("build", 1), job("deploy", 3)]);
        let order = run(&mut s, |_, _| JobResult::Success);
        assert_eq!(order, vec![1, 0, 2]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Success);
    }

    #[test]
    fn jobs_of_one_stage_are_ready_together() {
        let mut s = Schedule::new(vec![job("a", 1), job("b", 1), job("c", 2)]);
        assert_eq!(
            s.advance(),
            vec![Transition::Ready(0), Transition::Ready(1)]
        );
        s.start(0);
        s.finish(0, &JobResult::Success);
        assert!(s.advance().is_empty(), "c waits for b");
        s.start(1);
        s.finish(1, &JobResult::Success);
        assert_eq!(s.advance(), vec![Transition::Ready(2)]);
    }

    #[test]
    fn dag_job_starts_when_its_needs_are_done() {
        let mut s = Schedule::new(vec![
            job("build", 1),
            job("slow", 1),
            with_needs(job("test", 2), &[0]),
        ]);
        assert_eq!(
            s.advance(),
            vec![Transition::Ready(0), Transition::Ready(1)]
        );
        s.start(0);
        s.finish(0, &JobResult::Success);
        assert_eq!(
            s.advance(),
            vec![Transition::Ready(2)],
            "test does not wait for slow"
        );
    }

    #[test]
    fn empty_needs_start_at_once() {
        let mut s = Schedule::new(vec![job("build", 1), with_needs(job("lint", 3), &[])]);
        assert_eq!(
            s.advance(),
            vec![Transition::Ready(0), Transition::Ready(1)]
        );
    }

    #[test]
    fn needs_in_the_same_stage_are_ordered() {
        let mut s = Schedule::new(vec![with_needs(job("b", 1), &[1]), job("a", 1)]);
        let order = run(&mut s, |_, _| JobResult::Success);
        assert_eq!(order, vec![1, 0]);
    }

    #[test]
    fn failure_skips_later_stages_and_dag_dependents() {
        let mut s = Schedule::new(vec![
            job("build", 1),
            job("test", 2),
            with_needs(job("dag", 2), &[0]),
        ]);
        run(&mut s, first_fails);
        assert_eq!(statuses(&s), vec!["failed", "skipped", "skipped"]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Failed);
    }

    #[test]
    fn skipped_jobs_let_later_stages_run_but_skip_dag_dependents() {
        let mut s = Schedule::new(vec![
            with_when(job("on_failure", 1), When::OnFailure),
            job("next_stage", 2),
            with_needs(job("dag", 2), &[0]),
        ]);
        run(&mut s, |_, _| JobResult::Success);
        assert_eq!(statuses(&s), vec!["skipped", "success", "skipped"]);
    }

    #[test]
    fn on_failure_runs_only_after_a_failure() {
        let mut s = Schedule::new(vec![
            job("build", 1),
            with_when(job("cleanup", 2), When::OnFailure),
            job("test", 2),
        ]);
        run(&mut s, first_fails);
        assert_eq!(statuses(&s), vec!["failed", "success", "skipped"]);
    }

    #[test]
    fn always_runs_after_success_and_failure() {
        for first in [JobResult::Success, failed(1)] {
            let mut s = Schedule::new(vec![
                job("build", 1),
                with_when(job("report", 2), When::Always),
            ]);
            let first = first.clone();
            run(&mut s, move |i, _| {
                if i == 0 {
                    first.clone()
                } else {
                    JobResult::Success
                }
            });
            assert_eq!(s.state(1).status, JobStatus::Success);
        }
    }

    #[test]
    fn allowed_failure_is_a_warning_and_does_not_stop_the_pipeline() {
        let mut s = Schedule::new(vec![
            with_allow(job("lint", 1), AllowFailure::Bool(true)),
            job("test", 2),
            with_needs(job("dag", 2), &[0]),
        ]);
        run(&mut s, first_fails);
        assert_eq!(statuses(&s), vec!["warning", "success", "success"]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Warning);
        assert!(s.pipeline_status().passed());
    }

    #[test]
    fn exit_codes_allow_only_the_listed_codes() {
        let allow = AllowFailure::ExitCodes {
            exit_codes: vec![1, 3],
        };
        let mut s = Schedule::new(vec![
            with_allow(job("a", 1), allow.clone()),
            with_allow(job("b", 1), allow),
        ]);
        run(&mut s, |i, _| if i == 0 { failed(3) } else { failed(2) });
        assert_eq!(statuses(&s), vec!["warning", "failed"]);
        let timeout = JobResult::Failed {
            failure_reason: "job_execution_timeout".to_owned(),
            exit_code: None,
        };
        let mut s = Schedule::new(vec![with_allow(
            job("a", 1),
            AllowFailure::ExitCodes {
                exit_codes: vec![1],
            },
        )]);
        run(&mut s, |_, _| timeout.clone());
        assert_eq!(statuses(&s), vec!["failed"]);
    }

    #[test]
    fn blocking_manual_job_holds_later_stages_back() {
        let mut s = Schedule::new(vec![
            with_when(job("approve", 1), When::Manual),
            job("deploy", 2),
            with_needs(job("dag", 2), &[]),
        ]);
        run(&mut s, |_, _| JobResult::Success);
        assert_eq!(statuses(&s), vec!["manual", "created", "success"]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Blocked);
        assert_eq!(s.blocking_manual_jobs(), vec![0]);
    }

    #[test]
    fn manual_job_allowed_to_fail_does_not_block() {
        let mut s = Schedule::new(vec![
            with_allow(
                with_when(job("optional", 1), When::Manual),
                AllowFailure::Bool(true),
            ),
            job("deploy", 2),
        ]);
        run(&mut s, |_, _| JobResult::Success);
        assert_eq!(statuses(&s), vec!["manual", "success"]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Success);
    }

    #[test]
    fn dag_job_needing_an_unstarted_manual_job_is_skipped_or_waits() {
        // GitLab: composite.rb — an ignored (non-blocking) manual need skips the DAG job; a
        // blocking one keeps it waiting.
        let mut s = Schedule::new(vec![
            with_allow(
                with_when(job("optional", 1), When::Manual),
                AllowFailure::Bool(true),
            ),
            with_when(job("gate", 1), When::Manual),
            with_needs(job("after_optional", 2), &[0]),
            with_needs(job("after_gate", 2), &[1]),
        ]);
        run(&mut s, |_, _| JobResult::Success);
        assert_eq!(statuses(&s), vec!["manual", "manual", "skipped", "created"]);
    }

    #[test]
    fn played_manual_job_runs_and_unblocks() {
        let mut s = Schedule::new(vec![
            with_when(job("approve", 1), When::Manual),
            job("deploy", 2),
        ]);
        assert!(s.play(0), "a job not reached yet can be played in advance");
        let order = run(&mut s, |_, _| JobResult::Success);
        assert_eq!(order, vec![0, 1]);
        let mut s = Schedule::new(vec![
            with_when(job("approve", 1), When::Manual),
            job("deploy", 2),
        ]);
        assert_eq!(s.advance(), vec![Transition::Manual(0)]);
        assert!(s.play(0));
        run(&mut s, |_, _| JobResult::Success);
        assert_eq!(statuses(&s), vec!["success", "success"]);
    }

    #[test]
    fn manual_job_after_a_failure_is_skipped() {
        let mut s = Schedule::new(vec![
            job("build", 1),
            with_when(job("deploy", 2), When::Manual),
        ]);
        s.play(1);
        run(&mut s, |_, _| failed(1));
        assert_eq!(statuses(&s), vec!["failed", "skipped"]);
    }

    #[test]
    fn delayed_job_waits_until_played() {
        let delayed = When::Delayed {
            start_in: "1 second".to_owned(),
            duration: Duration::from_secs(1),
        };
        let mut s = Schedule::new(vec![with_when(job("later", 1), delayed), job("next", 2)]);
        assert_eq!(
            s.advance(),
            vec![Transition::Delayed(0, Duration::from_secs(1))]
        );
        assert!(s.advance().is_empty(), "next waits for the scheduled job");
        assert!(!s.is_idle());
        s.play(0);
        let order = run(&mut s, |_, _| JobResult::Success);
        assert_eq!(order, vec![0, 1]);
    }

    #[test]
    fn retry_reruns_until_max() {
        let mut j = job("flaky", 1);
        j.retry = RetryPolicy {
            max: 2,
            ..RetryPolicy::default()
        };
        let mut s = Schedule::new(vec![j]);
        let order = run(&mut s, |_, retries| {
            if retries < 2 {
                failed(1)
            } else {
                JobResult::Success
            }
        });
        assert_eq!(order, vec![0, 0, 0]);
        assert_eq!(statuses(&s), vec!["success"]);
        let mut j = job("broken", 1);
        j.retry = RetryPolicy {
            max: 1,
            ..RetryPolicy::default()
        };
        let mut s = Schedule::new(vec![j]);
        let order = run(&mut s, |_, _| failed(1));
        assert_eq!(order, vec![0, 0]);
        assert_eq!(statuses(&s), vec!["failed"]);
    }

    #[test]
    fn retry_when_and_exit_codes_select_failures() {
        let policy = RetryPolicy {
            max: 2,
            when: vec!["runner_system_failure".to_owned()],
            exit_codes: None,
        };
        assert!(!policy.allows("script_failure", Some(1), 0));
        assert!(policy.allows("runner_system_failure", None, 1));
        assert!(!policy.allows("runner_system_failure", None, 2));
        let policy = RetryPolicy {
            max: 1,
            when: Vec::new(),
            exit_codes: Some(vec![137]),
        };
        assert!(policy.allows("script_failure", Some(137), 0));
        assert!(!policy.allows("script_failure", Some(1), 0));
        assert!(!policy.allows("job_execution_timeout", None, 0));
        let always = RetryPolicy {
            max: 2,
            when: vec!["always".to_owned()],
            exit_codes: None,
        };
        assert!(always.allows("job_execution_timeout", None, 0));
        assert!(!always.allows("missing_dependency_failure", None, 0));
    }

    #[test]
    fn cancel_marks_waiting_jobs_canceled_and_skips_on_success_jobs() {
        let mut s = Schedule::new(vec![
            job("build", 1),
            job("test", 2),
            with_when(job("cleanup", 3), When::Always),
        ]);
        s.advance();
        s.start(0);
        s.cancel();
        s.finish(0, &JobResult::Canceled);
        s.advance();
        assert_eq!(statuses(&s), vec!["canceled", "canceled", "canceled"]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Canceled);
    }

    #[test]
    fn child_pipeline_jobs_wait_for_their_trigger_and_order_by_their_own_stages() {
        let child = |name: &str, stage: usize| ScheduleJob {
            pipeline: 1,
            trigger: Some(1),
            ..job(name, stage)
        };
        let mut s = Schedule::new(vec![
            job("build", 1),
            job("trigger", 2),
            child("child-build", 0),
            child("child-test", 1),
            job("deploy", 3),
        ]);
        assert_eq!(s.advance(), vec![Transition::Ready(0)]);
        s.start(0);
        s.finish(0, &JobResult::Success);
        assert_eq!(s.advance(), vec![Transition::Ready(1)]);
        s.start(1);
        assert_eq!(
            s.advance(),
            vec![Transition::Ready(2)],
            "a running trigger creates the child"
        );
        assert!(!s.pipeline_is_idle(1));
        s.start(2);
        s.finish(2, &failed(1));
        assert_eq!(s.advance(), vec![Transition::Skipped(3)]);
        assert!(s.pipeline_is_idle(1));
        assert_eq!(s.status_of_pipeline(1), PipelineStatus::Failed);
        s.finish(1, &failed(1));
        assert_eq!(s.advance(), vec![Transition::Skipped(4)]);
        assert_eq!(s.pipeline_status(), PipelineStatus::Failed);
    }

    #[test]
    fn composite_follows_gitlab() {
        use JobStatus as S;
        /// Statuses with their allow_failure, whether the composite is a DAG need's, and it.
        type Case = (&'static [(S, bool)], bool, Option<S>);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&[], false, None),
            (&[(S::Success, false), (S::Skipped, false)], false, Some(S::Success)),
            (&[(S::Skipped, false)], false, Some(S::Skipped)),
            (&[(S::Failed, true), (S::Success, false)], false, Some(S::Success)),
            (&[(S::Failed, false), (S::Success, false)], false, Some(S::Failed)),
            (&[(S::Manual, true), (S::Success, false)], false, Some(S::Success)),
            (&[(S::Manual, false), (S::Success, false)], false, Some(S::Manual)),
            (&[(S::Manual, true)], false, Some(S::Skipped)),
            (&[(S::Success, false), (S::Skipped, false)], true, Some(S::Skipped)),
            (&[(S::Running, false), (S::Success, false)], true, Some(S::Pending)),
            (&[(S::Canceled, false), (S::Success, false)], false, Some(S::Canceled)),
            (&[(S::Failed, false), (S::Running, false)], false, Some(S::Running)),
        ];
        for (statuses, dag, expected) in cases {
            assert_eq!(
                composite(statuses.iter().copied(), *dag),
                *expected,
                "{statuses:?} dag={dag}"
            );
        }
    }
}
