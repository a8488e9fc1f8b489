//! The run loop of a local pipeline: asks the [`LocalPipeline`] which jobs are ready, plans and
//! starts them (at most `concurrency` at once), turns their traces into report events, and feeds
//! each end back, until nothing can move. Ctrl-C (or SIGTERM) cancels every job; a second one
//! aborts them.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use runnel_api::JobPayload;
use runnel_pipeline::schedule::{Finished, JobResult};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::local_pipeline::{Change, JobEnd, LocalPipeline};
use crate::report::{Event, JobRecord, Reporter, Summary};
use crate::trace::TraceLine;

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

/// Runs one planned job to its end ([`crate::executors::LocalRunner`] over runnel-exec's
/// executors).
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

/// Runs everything the pipeline lets run.
pub(crate) struct Driver<'a, R: JobRunner> {
    pub(crate) runner: Arc<R>,
    pub(crate) pipeline: LocalPipeline,
    pub(crate) records: Vec<JobRecord>,
    /// The `resource_group` of each scheduled job (variables expanded).
    pub(crate) resource_groups: Vec<Option<String>>,
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
                    if self.pipeline.play(i) {
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
                    self.pipeline.cancel();
                    queue.clear();
                    timers.abort_all();
                }
            }
        }
        if interrupted {
            self.pipeline.cancel();
        }
        for i in 0..self.records.len() {
            self.records[i].status = self.pipeline.report_status(i);
        }
        let blocking_manual = self
            .pipeline
            .blocking_manual()
            .into_iter()
            .map(|i| self.records[i].name.clone())
            .collect();
        let status = self.pipeline.status();
        Summary {
            status: status.as_str(),
            passed: status.passed(),
            jobs: self.records,
            blocking_manual,
            interrupted,
        }
    }

    /// Advances the pipeline: ready jobs are queued, delayed ones get a timer, trigger jobs
    /// start and end, and every change is reported.
    fn advance(&mut self, queue: &mut VecDeque<usize>, timers: &mut JoinSet<usize>, seq: &mut u64) {
        for change in self.pipeline.advance() {
            match change {
                Change::Ready(i) => queue.push_back(i),
                Change::Delayed(i, wait) => {
                    timers.spawn(async move {
                        tokio::time::sleep(wait).await;
                        i
                    });
                    self.set_status(i);
                }
                Change::Status(i) => self.set_status(i),
                Change::BridgeStarted { job: i, note } => {
                    *seq += 1;
                    let record = &mut self.records[i];
                    record.status = "running";
                    record.started_seq = Some(*seq);
                    self.reporter
                        .event(&Event::Started { job: i, attempt: 1 }, &self.records);
                    if let Some(text) = note {
                        let line = TraceLine::Output(text);
                        self.reporter
                            .event(&Event::Line { job: i, line }, &self.records);
                    }
                }
                Change::BridgeFinished(i) => {
                    *seq += 1;
                    let record = &mut self.records[i];
                    record.finished_seq = Some(*seq);
                    record.duration = Some(std::time::Duration::ZERO);
                    record.status = self.pipeline.report_status(i);
                    self.reporter
                        .event(&Event::Status { job: i }, &self.records);
                }
            }
        }
    }

    fn set_status(&mut self, i: usize) {
        self.records[i].status = self.pipeline.report_status(i);
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
        let (payload, attempt) = self.pipeline.start(i);
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
        let finished = self.pipeline.finish(i, &end);
        let coverage = self.pipeline.coverage(i, &self.records[i].output);
        let record = &mut self.records[i];
        record.finished_seq = Some(seq);
        record.exit_code = end.exit_code;
        record.failure_reason = match &end.result {
            JobResult::Failed { failure_reason, .. } => Some(failure_reason.clone()),
            _ => None,
        };
        record.artifacts = end.artifacts;
        record.junit = end.junit;
        record.coverage = coverage;
        record.status = if finished == Finished::Retry {
            "retried"
        } else {
            self.pipeline.report_status(i)
        };
        self.reporter
            .event(&Event::Status { job: i }, &self.records);
        finished
    }
}

/// Runs `pipeline` on this machine with `executor`, at most `concurrency` jobs at once, until
/// nothing can move or Ctrl-C (SIGTERM) stops it: the first signal cancels the jobs gracefully
/// (their `after_script` runs), a second aborts them. Every event goes to `reporter`; its
/// `finish` is not called (the caller does, with the returned summary). Each job's masked trace
/// goes to `<state dir>/logs/<job>.log`.
///
/// Must run inside a multi-threaded tokio runtime. When it returns, no job process is left.
pub async fn run(
    pipeline: LocalPipeline,
    executor: impl Into<crate::LocalExecutor>,
    concurrency: usize,
    reporter: &mut dyn Reporter,
) -> Summary {
    let options = pipeline.options();
    let mut executor: crate::LocalExecutor = executor.into();
    executor.kube = options.kubernetes.clone();
    let runner = Arc::new(
        crate::executors::LocalRunner::new(executor, &options.project_dir, &options.state_dir)
            .with_cache_stores(options.cache_stores.clone()),
    );
    runner.sweep().await;
    let log_dir = options.state_dir.join("logs");
    let records = pipeline.records();
    let resource_groups = (0..pipeline.len())
        .map(|i| pipeline.resource_group(i).map(str::to_owned))
        .collect();
    let driver = Driver {
        runner,
        pipeline,
        records,
        resource_groups,
        concurrency: concurrency.max(1),
        log_dir: Some(log_dir),
        reporter,
    };
    driver.run().await
}
