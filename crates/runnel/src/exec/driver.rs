//! The run loop of `runnel exec`: asks the [`Schedule`] which jobs are ready, plans and starts
//! them (at most `concurrency` at once), turns their traces into report events, and feeds each
//! end back to the schedule, until nothing can move. Ctrl-C cancels every job.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use runnel_api::JobPayload;
use runnel_pipeline::plan::RunContext;
use runnel_pipeline::schedule::{Finished, JobResult, JobStatus, Schedule, Transition};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::report::trace::TraceLine;
use crate::report::{Event, JobRecord, Reporter, Summary};

/// How one job attempt ended, with what later jobs need from it.
#[derive(Debug, Clone)]
pub(crate) struct JobEnd {
    pub(crate) result: JobResult,
    pub(crate) exit_code: Option<i32>,
    /// Variables from its `dotenv` reports.
    pub(crate) dotenv: Vec<(String, String)>,
    /// Whether it stored artifacts that dependent jobs can download.
    pub(crate) has_artifacts: bool,
    /// Paths of the files it archived.
    pub(crate) artifacts: Vec<String>,
    /// `tests, failures, errors, skipped` from its junit reports.
    pub(crate) junit: Option<[u64; 4]>,
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

/// Where and how one job attempt runs.
pub(crate) struct JobRun {
    /// The lowest slot no other running job uses (gitlab-runner's `CI_CONCURRENT_ID`): jobs
    /// running at the same time get different directories.
    pub(crate) slot: usize,
    /// Where the full (masked) trace is written.
    pub(crate) log: Option<PathBuf>,
    /// Graceful cancel: the script stops, `after_script` runs with `CI_JOB_STATUS=canceled`.
    pub(crate) cancel: CancellationToken,
    /// Abort: everything stops at once. `cancel` is its child.
    pub(crate) abort: CancellationToken,
}

/// Runs one planned job to its end (implemented over runnel-exec's shell executor).
pub(crate) trait JobRunner: Send + Sync + 'static {
    /// Runs `payload`, sending its trace lines to `trace` as they come. Returns when the job
    /// and every process it started are gone, also after a cancel or an abort.
    fn run(
        &self,
        payload: JobPayload,
        run: JobRun,
        trace: mpsc::UnboundedSender<TraceLine>,
    ) -> impl Future<Output = JobEnd> + Send;
}

/// Plans job `index` (of the schedule) against the current context.
pub(crate) type Planner<'a> = dyn Fn(usize, &RunContext) -> JobPayload + 'a;

/// Runs everything the schedule lets run.
pub(crate) struct Driver<'a, R: JobRunner> {
    pub(crate) runner: Arc<R>,
    pub(crate) schedule: Schedule,
    pub(crate) records: Vec<JobRecord>,
    /// One context per pipeline: 0 is the pipeline itself, the others its child pipelines.
    pub(crate) ctxs: Vec<RunContext>,
    /// The pipeline of each scheduled job.
    pub(crate) unit_pipeline: Vec<usize>,
    /// Trigger jobs, by schedule index: they create a child pipeline instead of running.
    pub(crate) bridges: HashMap<usize, Bridge>,
    /// The `resource_group` of each scheduled job (variables expanded).
    pub(crate) resource_groups: Vec<Option<String>>,
    pub(crate) planner: &'a Planner<'a>,
    pub(crate) coverage: &'a (dyn Fn(usize, &[String]) -> Option<String> + 'a),
    pub(crate) concurrency: usize,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) reporter: &'a mut dyn Reporter,
}

enum Message {
    Trace(usize, TraceLine),
}

struct Running {
    started: Instant,
    slot: usize,
    /// The open trace section and whether its header line is still to come.
    section: Option<(String, bool)>,
    /// Whether a section has ended (the lines after the last one are the job's verdict).
    any_section_ended: bool,
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to for the whole run so none is lost between polls.
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next signal (forever when none could be installed).
    async fn next(&mut self) {
        match (&mut self.interrupt, &mut self.terminate) {
            (Some(interrupt), Some(terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Some(only), None) | (None, Some(only)) => {
                only.recv().await;
            }
            (None, None) => std::future::pending().await,
        }
    }
}

/// Where a trace line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    /// The job's own output: recorded and shown.
    JobOutput,
    /// Shown on the console only.
    Shown,
    /// A runner message inside a build stage: summarised by the stage's line.
    Hidden,
}

/// The cancellation roots of a run: the first Ctrl-C cancels gracefully, the second aborts.
struct Cancel {
    graceful: CancellationToken,
    abort: CancellationToken,
}

impl<R: JobRunner> Driver<'_, R> {
    pub(crate) async fn run(mut self) -> Summary {
        let cancel = Cancel {
            graceful: CancellationToken::new(),
            abort: CancellationToken::new(),
        };
        let mut slots: BTreeSet<usize> = (0..self.concurrency).collect();
        let mut busy_groups: HashSet<String> = HashSet::new();
        let mut signals = Signals::new();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let mut tasks: JoinSet<(usize, JobEnd)> = JoinSet::new();
        let mut timers: JoinSet<usize> = JoinSet::new();
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut running: Vec<Option<Running>> = self.records.iter().map(|_| None).collect();
        let mut seq = 0u64;
        let mut interrupted = false;
        loop {
            if !interrupted {
                self.advance(&mut queue, &mut timers, &mut seq);
            }
            while !interrupted && tasks.len() < self.concurrency {
                // GitLab: a job waits while another job of its `resource_group` runs
                // (app/models/ci/resource_group.rb).
                let free = |i: &usize| {
                    self.resource_groups[*i]
                        .as_ref()
                        .is_none_or(|g| !busy_groups.contains(g))
                };
                let Some(position) = queue.iter().position(free) else {
                    break;
                };
                let Some(i) = queue.remove(position) else {
                    break;
                };
                if let Some(group) = &self.resource_groups[i] {
                    busy_groups.insert(group.clone());
                }
                seq += 1;
                let slot = slots.pop_first().unwrap_or(self.concurrency);
                self.start(i, seq, slot, &mut running, &tx, &cancel, &mut tasks);
            }
            if tasks.is_empty() && (timers.is_empty() || interrupted) {
                break;
            }
            tokio::select! {
                Some(message) = rx.recv() => {
                    let Message::Trace(i, line) = message;
                    self.trace(i, line, &mut running);
                }
                Some(Ok((i, end))) = tasks.join_next() => {
                    while let Ok(Message::Trace(j, line)) = rx.try_recv() {
                        self.trace(j, line, &mut running);
                    }
                    seq += 1;
                    if let Some(state) = &running[i] {
                        slots.insert(state.slot);
                    }
                    if let Some(group) = &self.resource_groups[i] {
                        busy_groups.remove(group);
                    }
                    if self.finish(i, seq, end, &mut running) == Finished::Retry {
                        queue.push_front(i);
                    }
                }
                Some(Ok(i)) = timers.join_next(), if !interrupted => {
                    if self.schedule.play(i) {
                        queue.push_back(i);
                    }
                }
                () = signals.next(), if !cancel.abort.is_cancelled() => {
                    if interrupted {
                        cancel.abort.cancel();
                        continue;
                    }
                    interrupted = true;
                    cancel.graceful.cancel();
                    self.schedule.cancel();
                    queue.clear();
                    timers.abort_all();
                }
            }
        }
        if interrupted {
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
        for i in 0..self.records.len() {
            self.records[i].status = self.schedule.state(i).report_status();
        }
        let blocking_manual = self
            .schedule
            .blocking_manual_jobs()
            .into_iter()
            .map(|i| self.records[i].name.clone())
            .collect();
        let status = self.schedule.pipeline_status();
        Summary {
            status: status.as_str(),
            passed: status.passed(),
            jobs: self.records,
            blocking_manual,
            rerun_prefix: String::new(),
            interrupted,
        }
    }

    /// Applies the schedule's transitions until nothing changes: ready jobs are queued, trigger
    /// jobs create their child pipelines, and `strategy: depend` trigger jobs end with theirs.
    fn advance(&mut self, queue: &mut VecDeque<usize>, timers: &mut JoinSet<usize>, seq: &mut u64) {
        loop {
            let mut changed = false;
            for transition in self.schedule.advance() {
                changed = true;
                match transition {
                    Transition::Ready(i) if self.bridges.contains_key(&i) => {
                        self.start_bridge(i, seq)
                    }
                    Transition::Ready(i) => queue.push_back(i),
                    Transition::Delayed(i, wait) => {
                        timers.spawn(async move {
                            tokio::time::sleep(wait).await;
                            i
                        });
                        self.set_status(i);
                    }
                    Transition::Skipped(i) | Transition::Manual(i) => self.set_status(i),
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
                    *seq += 1;
                    self.end_bridge(i, *seq, &result);
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// A trigger job creates its child pipeline; without `strategy: depend` that is all it does.
    fn start_bridge(&mut self, i: usize, seq: &mut u64) {
        *seq += 1;
        self.schedule.start(i);
        let record = &mut self.records[i];
        record.status = "running";
        record.started_seq = Some(*seq);
        self.reporter
            .event(&Event::Started { job: i, attempt: 1 }, &self.records);
        let bridge = &self.bridges[&i];
        let (child, depend) = (bridge.child, bridge.depend);
        if child.is_none() {
            let text = match &bridge.upstream {
                Some(project) => {
                    format!("the status of {project}'s upstream pipeline is not mirrored locally")
                }
                None => "downstream project pipelines are not run locally".to_owned(),
            };
            let line = TraceLine::Output(text);
            self.reporter
                .event(&Event::Line { job: i, line }, &self.records);
        }
        if !depend || child.is_none() {
            *seq += 1;
            self.end_bridge(i, *seq, &JobResult::Success);
        }
    }

    fn end_bridge(&mut self, i: usize, seq: u64, result: &JobResult) {
        self.schedule.finish(i, result);
        let record = &mut self.records[i];
        record.finished_seq = Some(seq);
        record.duration = Some(std::time::Duration::ZERO);
        record.status = self.schedule.state(i).report_status();
        self.reporter
            .event(&Event::Status { job: i }, &self.records);
    }

    fn set_status(&mut self, i: usize) {
        self.records[i].status = self.schedule.state(i).report_status();
        self.reporter
            .event(&Event::Status { job: i }, &self.records);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the loop's state, passed down once"
    )]
    fn start(
        &mut self,
        i: usize,
        seq: u64,
        slot: usize,
        running: &mut [Option<Running>],
        tx: &mpsc::UnboundedSender<Message>,
        cancel: &Cancel,
        tasks: &mut JoinSet<(usize, JobEnd)>,
    ) {
        let payload = (self.planner)(i, &self.ctxs[self.unit_pipeline[i]]);
        self.schedule.start(i);
        let attempt = self.schedule.state(i).retries + 1;
        let record = &mut self.records[i];
        record.status = "running";
        record.started_seq = Some(seq);
        record.output.clear();
        let log = self.log_dir.as_ref().map(|dir| {
            let name = runnel_pipeline::plan::slugify(&record.name);
            dir.join(format!(
                "{}.log",
                if name.is_empty() {
                    record.id.to_string()
                } else {
                    name
                }
            ))
        });
        record.log_path = log.as_ref().map(|p| p.display().to_string());
        running[i] = Some(Running {
            started: Instant::now(),
            slot,
            section: None,
            any_section_ended: false,
        });
        self.reporter
            .event(&Event::Started { job: i, attempt }, &self.records);
        let (trace_tx, mut trace_rx) = mpsc::unbounded_channel::<TraceLine>();
        let forward = tx.clone();
        let runner = Arc::clone(&self.runner);
        let abort = cancel.abort.child_token();
        let job_cancel = abort.child_token();
        let graceful = cancel.graceful.clone();
        let run = JobRun {
            slot,
            log,
            cancel: job_cancel.clone(),
            abort,
        };
        tasks.spawn(async move {
            let pump = async {
                while let Some(line) = trace_rx.recv().await {
                    let _ = forward.send(Message::Trace(i, line));
                }
            };
            let job = async {
                let run = runner.run(payload, run, trace_tx);
                tokio::pin!(run);
                tokio::select! {
                    end = &mut run => end,
                    () = graceful.cancelled() => {
                        job_cancel.cancel();
                        run.await
                    }
                }
            };
            let (end, ()) = tokio::join!(job, pump);
            (i, end)
        });
    }

    /// Takes one trace line of job `i`: the job's own output (lines of `step_*` and
    /// `after_script` sections, without the runner's headers) goes to its record; the runner's
    /// messages are shown only outside sections, after the first one.
    fn trace(&mut self, i: usize, line: TraceLine, running: &mut [Option<Running>]) {
        let Some(state) = running[i].as_mut() else {
            return;
        };
        let visibility = match &line {
            TraceLine::SectionStart { name, .. } => {
                state.section = Some((name.clone(), true));
                Visibility::Shown
            }
            TraceLine::SectionEnd { .. } => {
                state.section = None;
                state.any_section_ended = true;
                Visibility::Shown
            }
            TraceLine::Command(_) => Visibility::Shown,
            TraceLine::Output(text) => match &mut state.section {
                Some((_, header @ true)) => {
                    *header = false;
                    Visibility::Hidden
                }
                Some((name, false))
                    if name == "after_script" && text == "Running after script..." =>
                {
                    Visibility::Hidden
                }
                Some((name, false)) if name.starts_with("step_") || name == "after_script" => {
                    Visibility::JobOutput
                }
                Some(_) => Visibility::Hidden,
                None if state.any_section_ended => Visibility::Shown,
                None => Visibility::Hidden,
            },
        };
        if let (Visibility::JobOutput, TraceLine::Output(text)) = (visibility, &line) {
            self.records[i].output.push(text.trim_end().to_owned());
        }
        if visibility != Visibility::Hidden {
            self.reporter
                .event(&Event::Line { job: i, line }, &self.records);
        }
    }

    fn finish(
        &mut self,
        i: usize,
        seq: u64,
        end: JobEnd,
        running: &mut [Option<Running>],
    ) -> Finished {
        if let Some(state) = running[i].take() {
            self.records[i].duration = Some(state.started.elapsed());
        }
        let name = self.schedule.jobs()[i].name.clone();
        let finished = self.schedule.finish(i, &end.result);
        let record = &mut self.records[i];
        record.finished_seq = Some(seq);
        record.exit_code = end.exit_code;
        record.failure_reason = match &end.result {
            JobResult::Failed { failure_reason, .. } => Some(failure_reason.clone()),
            _ => None,
        };
        record.artifacts = end.artifacts;
        record.junit = end.junit;
        record.coverage = (self.coverage)(i, &record.output);
        if finished == Finished::Retry {
            record.status = "retried";
        } else {
            record.status = self.schedule.state(i).report_status();
            let ctx = &mut self.ctxs[self.unit_pipeline[i]];
            ctx.dotenv.insert(name.clone(), end.dotenv);
            if end.has_artifacts {
                ctx.finished.insert(name, record.id);
            }
        }
        self.reporter
            .event(&Event::Status { job: i }, &self.records);
        finished
    }
}
