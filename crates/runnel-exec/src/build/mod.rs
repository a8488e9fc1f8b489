//! Running one job: the build stages in gitlab-runner's order, each a trace section.
//!
//! GitLab: gitlab-runner `common/build.go` (`executeScript`, stage order, `after_script` after
//! failures with its own timeout, cache and artifacts `on_success`/`on_failure`, error priority
//! job > cache > artifacts) and `shells/abstract.go` (what each stage does).

mod finish;
mod prepare;

use std::path::Path;

use runnel_api::{FailureReason, JobPayload};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use self::prepare::{configure, file_exports, prepare_dirs, relocate};
pub(crate) use self::prepare::{env_file, prepare_job};
use crate::context::JobContext;
use crate::error::ExecError;
use crate::event::JobEvent;
use crate::executor::{Executor, JobOverrides, PreparedJob};
use crate::helper_stage::{HelperStage, run_through};
use crate::mask::{DEFAULT_TOKEN_PREFIXES, Masker};
use crate::outcome::{JobOutcome, JobStatus};
use crate::retry::{Attempts, StageAttempts};
use crate::script::Exports;
use crate::settings::BuildSettings;
use crate::shell::{ShellConfig, ShellExecutor};
use crate::sources::{GitStrategy, Sources, copy_working_tree, fetch_git};
use crate::steps::{go_duration, record_end, run_hook, run_own_stage, run_steps};
use crate::terminal::wait_for_terminal;
use crate::trace::Trace;
use crate::variables::{RUNNER_VERSION, job_timeout};
use crate::{artifact_stage, cache_stage};

/// Runs `payload` with the shell executor. See [`run_job_with`].
pub async fn run_job(
    payload: JobPayload,
    ctx: JobContext,
    events: UnboundedSender<JobEvent>,
) -> Result<JobOutcome, ExecError> {
    let mut executor = ShellExecutor::new(ShellConfig {
        shell: None,
        kill_grace: ctx.kill_grace,
    });
    run_job_with(&mut executor, payload, ctx, events).await
}

/// Runs `payload` with `executor`: every build stage, in order, reporting to `events`. The last
/// event is always [`JobEvent::Finished`]. A failed, timed-out or canceled job is `Ok` with its
/// [`JobOutcome`]; `Err` means runnel broke (the job counts as `runner_system_failure`, and the
/// trace says why).
///
/// Not cancel-safe: dropping the future may leave the project directory half-prepared (running
/// scripts are killed on drop). Use `ctx.cancel` / `ctx.abort` instead.
pub async fn run_job_with(
    executor: &mut dyn Executor,
    payload: JobPayload,
    ctx: JobContext,
    events: UnboundedSender<JobEvent>,
) -> Result<JobOutcome, ExecError> {
    let started = Instant::now();
    let mut ctx = ctx;
    let mut job = prepare_job(payload, &ctx, executor.name(), &JobOverrides::default());
    let prefixes = DEFAULT_TOKEN_PREFIXES.iter().copied().chain(
        job.payload
            .features
            .token_mask_prefixes
            .iter()
            .map(String::as_str),
    );
    let masker = Masker::new(job.variables.masked_phrases(), prefixes);
    let sections = job.payload.features.trace_sections;
    let mut trace = Trace::new(job.payload.id, events, masker, sections, ctx.output_limit);
    trace.set_timestamps(BuildSettings::from_variables(&job.variables).timestamps);
    trace.set_sink(ctx.trace_sink.clone());
    trace.set_stage_sink(ctx.stage_sink.clone());
    trace.keep_bytes(ctx.trace_log.is_some() || ctx.trace_sink.is_none());
    trace.println(&format!("Running with runnel {RUNNER_VERSION}"));
    trace.println(&format!(
        "  on {} {}",
        ctx.runner_name, ctx.runner_short_token
    ));
    let deadline = ctx
        .deadline
        .unwrap_or_else(|| started + job_timeout(&job.payload));
    let result = run_stages(executor, &mut job, &mut ctx, &mut trace).await;
    // A stage that failed with an error leaves its section open; close it before the verdict.
    trace.close_sections();
    // GitLab: gitlab-runner `common/build.go` `Run` waits for the terminal before the cleanup.
    wait_for_terminal(&ctx, &mut trace, deadline).await;
    executor.cleanup(&job).await;
    if let Some(session) = &ctx.terminal {
        session.close();
    }
    // A job that cannot run as it asks (an image that cannot be pulled, …) fails with its own
    // reason; every other error is a system failure.
    let (result, reported) = match result {
        Err(ExecError::JobFailed { reason, message }) => {
            // GitLab: gitlab-runner `common/build.go` `setTraceStatus` marks system failures.
            if reason == FailureReason::RunnerSystemFailure {
                trace.error(&format!("Job failed (system failure): {message}"));
            } else {
                trace.error(&format!("Job failed: {message}"));
            }
            let mut outcome = JobOutcome::new(JobStatus::Failed);
            outcome.failure_reason = Some(reason);
            (Ok(outcome), true)
        }
        other => (other, false),
    };
    let mut outcome = match &result {
        Ok(outcome) => outcome.clone(),
        Err(err) => {
            trace.error(&format!(
                "Job failed (system failure): {}",
                error_chain(err)
            ));
            let mut outcome = JobOutcome::new(JobStatus::Failed);
            outcome.failure_reason = Some(FailureReason::RunnerSystemFailure);
            outcome
        }
    };
    if result.is_ok() && !reported {
        final_line(&mut trace, &outcome, &job.payload);
    }
    outcome.duration = started.elapsed();
    let events_trace = trace.events_handle();
    let (bytes, trace_len) = trace.finish();
    outcome.trace_bytes = trace_len as u64;
    let logged = ctx
        .trace_log
        .as_deref()
        .map_or(Ok(()), |log| write_log(log, &bytes));
    let _ = events_trace.send(JobEvent::Finished {
        job: job.payload.id,
        outcome: outcome.clone(),
    });
    logged?;
    result.map(|_| outcome)
}

fn write_log(log: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(ExecError::io("create the directory", parent))?;
    }
    std::fs::write(log, bytes).map_err(ExecError::io("write the trace to", log))
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The state the stages share.
pub(crate) struct Run {
    pub(crate) outcome: JobOutcome,
    pub(crate) deadline: Instant,
}

impl Run {
    pub(crate) fn succeeded(&self) -> bool {
        self.outcome.status == JobStatus::Success
    }

    pub(crate) fn fail(
        &mut self,
        status: JobStatus,
        reason: Option<FailureReason>,
        exit_code: Option<i32>,
    ) {
        if self.outcome.status == JobStatus::Success {
            self.outcome.status = status;
            self.outcome.failure_reason = reason;
            self.outcome.exit_code = exit_code;
        }
    }
}

async fn run_stages(
    executor: &mut dyn Executor,
    job: &mut PreparedJob,
    ctx: &mut JobContext,
    trace: &mut Trace,
) -> Result<JobOutcome, ExecError> {
    let deadline = ctx
        .deadline
        .unwrap_or_else(|| Instant::now() + job_timeout(&job.payload));
    let mut run = Run {
        outcome: JobOutcome::new(JobStatus::Success),
        deadline,
    };
    let settings = BuildSettings::from_variables(&job.variables);
    // GitLab: gitlab-runner `common/build.go` `printSettingErrors`, one warning for all.
    if !settings.errors.is_empty() {
        trace.warning(&settings.errors.join("\n"));
    }

    trace.section_start(
        "prepare_executor",
        &format!("Preparing the \"{}\" executor", executor.name()),
    );
    let mut via = None;
    let prepared = match configure(executor, job, ctx, trace).await {
        Ok(name) => {
            via = name;
            executor.prepare(job, trace).await
        }
        Err(err) => Err(err),
    };
    trace.section_end();
    prepared?;
    if let Some(remote_builds) = executor.remote_builds_dir() {
        relocate(job, &remote_builds, ctx, executor.name());
    }
    // GitLab: gitlab-runner `common/build.go` `run` hands the executor to the session.
    if let (Some(session), Some(terminal)) = (&ctx.terminal, executor.terminal(job)) {
        session.set_terminal(terminal);
    }
    let (job, ctx) = (&*job, &*ctx);
    let helper = executor.remote_helper();
    let remote_git = matches!(ctx.sources, Sources::Git)
        && helper.is_none()
        && executor.fetch_sources_remotely();

    trace.section_start("prepare_script", "Preparing environment");
    prepare_dirs(job)?;
    let exports = file_exports(job)?;
    if executor.runs_every_stage() {
        let stage = ("prepare_script", via.as_deref());
        if !run_own_stage(executor, job, ctx, trace, &mut run, stage).await? {
            trace.section_end();
            return Ok(run.outcome);
        }
    } else {
        match executor.environment_host(job) {
            Some(host) => trace.println(&format!("Running on {host} via {}...", hostname())),
            None => trace.println(&format!("Running on {}...", hostname())),
        }
    }
    trace.section_end();

    let attempts = |stage, attempts| StageAttempts {
        stage,
        attempts,
        backoff: settings.exponential_backoff,
    };
    if !stopped(ctx, &mut run) {
        let mut tries =
            Attempts::start(attempts("get_sources", settings.get_sources_attempts), &run)?;
        loop {
            // GitLab: `executePrepareScripts` clears the work tree once, before the second try.
            let mut result = Ok(());
            if tries.attempt() == 1 {
                result = crate::retry::clear_worktree(&job.project_dir, trace).await;
            }
            if result.is_ok() {
                let remote = (&exports, remote_git);
                result = get_sources(executor, job, ctx, trace, &mut run, remote).await;
            }
            if !tries.again(result, ctx, trace, &mut run).await? {
                break;
            }
        }
    }
    if run.succeeded() && !stopped(ctx, &mut run) {
        let spec = attempts("restore_cache", settings.restore_cache_attempts);
        if let Some(helper) = &helper {
            if cache_stage::restores(job) {
                let stage = (HelperStage::RestoreCache, true);
                let end =
                    run_through(executor, helper, job, ctx, trace, run.deadline, stage).await?;
                record_end(&mut run, end);
            }
        } else {
            let mut tries = Attempts::start(spec, &run)?;
            loop {
                let result = cache_stage::restore(job, ctx, trace).await;
                if !tries.again(result, ctx, trace, &mut run).await? {
                    break;
                }
            }
        }
    }
    if run.succeeded() && !stopped(ctx, &mut run) {
        let spec = attempts("download_artifacts", settings.artifact_download_attempts);
        if let Some(helper) = &helper {
            if !job.payload.dependencies.is_empty() {
                let stage = (HelperStage::DownloadArtifacts, true);
                let end =
                    run_through(executor, helper, job, ctx, trace, run.deadline, stage).await?;
                record_end(&mut run, end);
            }
        } else {
            let mut tries = Attempts::start(spec, &run)?;
            loop {
                let result = artifact_stage::download(job, ctx, trace).await;
                if let Ok(false) = result {
                    run.fail(JobStatus::Failed, Some(FailureReason::ScriptFailure), None);
                }
                if !tries.again(result.map(drop), ctx, trace, &mut run).await? {
                    break;
                }
            }
        }
    }
    if run.succeeded() && !stopped(ctx, &mut run) {
        run_steps(executor, job, ctx, trace, &mut run, &exports).await?;
    }
    finish::finish(
        executor,
        job,
        ctx,
        trace,
        &mut run,
        (&exports, helper.as_ref()),
    )
    .await?;
    Ok(run.outcome)
}

/// Whether the job's deadline has passed; records the timeout in the outcome. GitLab:
/// gitlab-runner `common/build.go` `run` cancels the build's context at the deadline, so nothing
/// after it runs (no `after_script`, cache, artifacts or file-variable cleanup) and the job fails
/// with `job_execution_timeout` whatever it was doing; only `RUNNER_SCRIPT_TIMEOUT` leaves time
/// for `after_script`.
fn out_of_time(run: &mut Run) -> bool {
    if Instant::now() < run.deadline {
        return false;
    }
    if run.outcome.status != JobStatus::Canceled {
        run.outcome.status = JobStatus::Failed;
        run.outcome.failure_reason = Some(FailureReason::JobExecutionTimeout);
        run.outcome.exit_code = None;
    }
    true
}

/// Whether the job was canceled or aborted before a stage; records it in the outcome.
fn stopped(ctx: &JobContext, run: &mut Run) -> bool {
    if ctx.abort.is_cancelled() || ctx.cancel.is_cancelled() {
        run.fail(JobStatus::Canceled, Some(FailureReason::JobCanceled), None);
        return true;
    }
    false
}

async fn get_sources(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    (exports, remote_git): (&Exports, bool),
) -> Result<(), ExecError> {
    let strategy = GitStrategy::of(&job.payload, &job.variables);
    let header = match &ctx.sources {
        Sources::WorkingTree(_) => "Getting source from the working tree",
        Sources::Git => "Getting source from Git repository",
    };
    trace.section_start("get_sources", header);
    let skip_hooks = matches!(strategy, GitStrategy::None | GitStrategy::Empty);
    if !skip_hooks
        && !run_hook(
            executor,
            job,
            ctx,
            trace,
            run,
            exports,
            "pre_get_sources_script",
        )
        .await?
    {
        trace.section_end();
        return Ok(());
    }
    let helper = executor.remote_helper();
    match (&ctx.sources, helper) {
        (_, Some(helper)) => {
            let stage = (HelperStage::GetSources, true);
            let end = run_through(executor, &helper, job, ctx, trace, run.deadline, stage).await?;
            record_end(run, end);
        }
        (Sources::WorkingTree(tree), None) => {
            let clean = job.variables.get("GIT_CLEAN_FLAGS") != Some("none");
            // A working tree copy is always a sync unless `GIT_STRATEGY=clone` asks for a fresh one.
            let strategy = if job.variables.get("GIT_STRATEGY") == Some("clone") {
                strategy
            } else {
                match strategy {
                    GitStrategy::Clone => GitStrategy::Fetch,
                    other => other,
                }
            };
            copy_working_tree(tree, &job.project_dir, strategy, clean, trace).await?;
        }
        (Sources::Git, None) if remote_git => {
            crate::git_script::get_sources_remotely(executor, job, ctx, trace, run, exports)
                .await?;
        }
        (Sources::Git, None) => {
            if let Some(code) = fetch_git(
                &job.payload,
                &job.variables,
                &job.project_dir,
                strategy,
                trace,
            )
            .await?
            {
                run.fail(
                    JobStatus::Failed,
                    Some(FailureReason::ScriptFailure),
                    Some(code),
                );
            }
        }
    }
    if run.succeeded() && !skip_hooks {
        run_hook(
            executor,
            job,
            ctx,
            trace,
            run,
            exports,
            "post_get_sources_script",
        )
        .await?;
    }
    trace.section_end();
    Ok(())
}

fn final_line(trace: &mut Trace, outcome: &JobOutcome, payload: &JobPayload) {
    match (outcome.status, &outcome.failure_reason) {
        (JobStatus::Success, _) => trace.success_line(),
        (JobStatus::Canceled, _) => trace.error("Job failed: canceled"),
        (_, Some(FailureReason::JobExecutionTimeout)) => trace.error(&format!(
            "Job failed: execution took longer than {} seconds",
            go_duration(job_timeout(payload))
        )),
        (_, _) => match outcome.exit_code {
            Some(code) => trace.error(&format!("Job failed: exit status {code}")),
            None => trace.error("Job failed"),
        },
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
