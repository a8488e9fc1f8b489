//! A created pipeline and its child pipelines as one schedule, advanced step by step: which jobs
//! are ready, what trigger jobs do, what a finished job leaves to later jobs. Synchronous and
//! free of processes, so a coordinator can drive it as well as [`crate::driver`] does.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use runnel_api::JobPayload;
use runnel_pipeline::job::Job;
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::plan::{self, RunContext};
use runnel_pipeline::schedule::{
    Finished, JobResult, JobStatus, PipelineStatus, Schedule, Transition,
};

use crate::options::PipelineOptions;
use crate::report::JobRecord;

/// How one job attempt ended, with what later jobs need from it.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// Its result, as the schedule takes it.
    pub result: JobResult,
    /// The exit code of its script.
    pub exit_code: Option<i32>,
    /// Variables from its `dotenv` reports.
    pub dotenv: Vec<(String, String)>,
    /// Whether it stored artifacts that dependent jobs can download.
    pub has_artifacts: bool,
    /// Paths of the files it archived.
    pub artifacts: Vec<String>,
    /// `tests, failures, errors, skipped` from its junit reports.
    pub junit: Option<[u64; 4]>,
}

/// A trigger job (GitLab's bridge).
#[derive(Debug, Clone)]
pub(crate) struct Bridge {
    /// The child pipeline it creates (`None`: a downstream project's pipeline, which a local run
    /// cannot create).
    pub(crate) child: Option<usize>,
    /// `strategy: depend`: it ends with its child pipeline's status; otherwise it succeeds as
    /// soon as the child pipeline is created (GitLab: app/models/ci/bridge.rb).
    pub(crate) depend: bool,
    /// `needs:pipeline` without `job`: the upstream project whose pipeline status the job
    /// mirrors (GitLab: lib/gitlab/ci/config/entry/bridge.rb), which a local run cannot see.
    pub(crate) upstream: Option<String>,
}

/// One scheduled job: the pipeline it belongs to (0 is the pipeline itself, the others its
/// child pipelines) and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unit {
    pub(crate) pipeline: usize,
    pub(crate) job: usize,
}

/// What [`LocalPipeline::advance`] changed, in order. Jobs are indices of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The job can run: plan it with [`LocalPipeline::start`] when a slot is free.
    Ready(usize),
    /// The job waits for `start_in`: call [`LocalPipeline::play`] when it has passed.
    Delayed(usize, Duration),
    /// The job got a status without running (skipped, manual).
    Status(usize),
    /// A trigger job started (it does not run a script); `note` says what a local run cannot
    /// do for it.
    BridgeStarted {
        /// The trigger job.
        job: usize,
        /// A line for its trace.
        note: Option<String>,
    },
    /// A trigger job ended.
    BridgeFinished(usize),
}

/// A pipeline with its child pipelines, as one schedule.
#[derive(Debug)]
pub struct LocalPipeline {
    pub(crate) options: PipelineOptions,
    pub(crate) schedule: Schedule,
    /// The pipeline itself, then its child pipelines.
    pub(crate) pipelines: Vec<Pipeline>,
    /// One context per pipeline, in the same order.
    pub(crate) ctxs: Vec<RunContext>,
    pub(crate) units: Vec<Unit>,
    /// Each scheduled job's name; a child pipeline's job is `[trigger] -> job`.
    pub(crate) names: Vec<String>,
    /// Trigger jobs, by schedule index: they create a child pipeline instead of running.
    pub(crate) bridges: HashMap<usize, Bridge>,
}

impl LocalPipeline {
    /// The project and variables it was created with.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// The project's working tree.
    pub fn project_dir(&self) -> &Path {
        &self.options.project_dir
    }

    /// How many jobs are scheduled.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether no job is scheduled.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The scheduled job `i` as its pipeline defines it.
    pub fn job(&self, i: usize) -> &Job {
        let unit = self.units[i];
        &self.pipelines[unit.pipeline].jobs[unit.job]
    }

    /// The scheduled jobs of the pipeline itself (not of its child pipelines).
    pub fn root_jobs(&self) -> impl Iterator<Item = &Job> {
        self.units
            .iter()
            .filter(|u| u.pipeline == 0)
            .map(|u| &self.pipelines[0].jobs[u.job])
    }

    /// A record per scheduled job, all `created`.
    pub fn records(&self) -> Vec<JobRecord> {
        self.units
            .iter()
            .zip(&self.names)
            .map(|(&unit, name)| JobRecord {
                name: name.clone(),
                stage: self.pipelines[unit.pipeline].jobs[unit.job].stage.clone(),
                status: "created",
                id: self.ctxs[unit.pipeline].job_id(unit.job),
                ..JobRecord::default()
            })
            .collect()
    }

    /// The `resource_group` of job `i` (variables expanded).
    pub fn resource_group(&self, i: usize) -> Option<&str> {
        self.job(i).resource_group.as_deref()
    }

    /// The coverage that job `i`'s `coverage:` pattern finds in its output.
    pub fn coverage(&self, i: usize, output: &[String]) -> Option<String> {
        let pattern = self.job(i).coverage.as_deref()?;
        runnel_exec::extract_coverage(pattern, &output.join("\n"))
    }

    /// Whether job `i` is a trigger job (it creates a pipeline instead of running a script).
    pub fn is_bridge(&self, i: usize) -> bool {
        self.bridges.contains_key(&i)
    }

    /// Applies the schedule's transitions until nothing changes: trigger jobs create their child
    /// pipelines, and `strategy: depend` trigger jobs end with theirs.
    pub fn advance(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let mut changed = false;
            for transition in self.schedule.advance() {
                changed = true;
                match transition {
                    Transition::Ready(i) if self.bridges.contains_key(&i) => {
                        self.start_bridge(i, &mut changes);
                    }
                    Transition::Ready(i) => changes.push(Change::Ready(i)),
                    Transition::Delayed(i, wait) => changes.push(Change::Delayed(i, wait)),
                    Transition::Skipped(i) | Transition::Manual(i) => {
                        changes.push(Change::Status(i));
                    }
                }
            }
            let waiting: Vec<(usize, usize)> = self
                .bridges
                .iter()
                .filter(|(i, b)| b.depend && self.schedule.state(**i).status == JobStatus::Running)
                .filter_map(|(i, b)| b.child.map(|c| (*i, c)))
                .collect();
            for (i, child) in waiting {
                if self.schedule.pipeline_is_idle(child) {
                    let result = if self.schedule.status_of_pipeline(child).passed() {
                        JobResult::Success
                    } else {
                        JobResult::Failed {
                            failure_reason: "downstream_pipeline_failure".into(),
                            exit_code: None,
                        }
                    };
                    self.schedule.finish(i, &result);
                    changes.push(Change::BridgeFinished(i));
                    changed = true;
                }
            }
            if !changed {
                return changes;
            }
        }
    }

    /// A trigger job creates its child pipeline; without `strategy: depend` that is all it does.
    fn start_bridge(&mut self, i: usize, changes: &mut Vec<Change>) {
        self.schedule.start(i);
        let bridge = &self.bridges[&i];
        let note = match (&bridge.child, &bridge.upstream) {
            (Some(_), _) => None,
            (None, Some(project)) => Some(format!(
                "the status of {project}'s upstream pipeline is not mirrored locally"
            )),
            (None, None) => Some("downstream project pipelines are not run locally".to_owned()),
        };
        let ends_now = !bridge.depend || bridge.child.is_none();
        changes.push(Change::BridgeStarted { job: i, note });
        if ends_now {
            self.schedule.finish(i, &JobResult::Success);
            changes.push(Change::BridgeFinished(i));
        }
    }

    /// Plans job `i` against what earlier jobs left (dotenv variables, artifacts) and marks it
    /// running. Returns the payload and the attempt (from 1).
    pub fn start(&mut self, i: usize) -> (JobPayload, u32) {
        let unit = self.units[i];
        let payload = plan::plan_job(
            &self.pipelines[unit.pipeline].jobs,
            unit.job,
            &self.ctxs[unit.pipeline],
        );
        self.schedule.start(i);
        (payload, self.schedule.state(i).retries + 1)
    }

    /// Job `i`'s id (`CI_JOB_ID`, the id its artifacts are stored under).
    pub fn job_id(&self, i: usize) -> u64 {
        let unit = self.units[i];
        self.ctxs[unit.pipeline].job_id(unit.job)
    }

    /// Takes job `i`'s end: what it leaves to later jobs (dotenv variables, artifacts) is
    /// recorded unless it is retried.
    pub fn finish(&mut self, i: usize, end: &JobEnd) -> Finished {
        let name = self.schedule.jobs()[i].name.clone();
        let id = self.job_id(i);
        let finished = self.schedule.finish(i, &end.result);
        if finished != Finished::Retry {
            let ctx = &mut self.ctxs[self.units[i].pipeline];
            ctx.dotenv.insert(name.clone(), end.dotenv.clone());
            if end.has_artifacts {
                ctx.finished.insert(name, id);
            }
        }
        finished
    }

    /// Plays manual job `i`, or a delayed job whose wait has passed. Whether it is ready now.
    pub fn play(&mut self, i: usize) -> bool {
        self.schedule.play(i)
    }

    /// Cancels every job that has not ended, running trigger jobs included.
    pub fn cancel(&mut self) {
        self.schedule.cancel();
        let running_bridges: Vec<usize> = self
            .bridges
            .keys()
            .copied()
            .filter(|&i| self.schedule.state(i).status == JobStatus::Running)
            .collect();
        for i in running_bridges {
            self.schedule.finish(i, &JobResult::Canceled);
        }
    }

    /// The status `runnel exec` reports for job `i`.
    pub fn report_status(&self, i: usize) -> &'static str {
        self.schedule.state(i).report_status()
    }

    /// The pipeline's status.
    pub fn status(&self) -> PipelineStatus {
        self.schedule.pipeline_status()
    }

    /// The manual jobs that hold the pipeline back.
    pub fn blocking_manual(&self) -> Vec<usize> {
        self.schedule.blocking_manual_jobs()
    }
}
