//! One job from acknowledgement to final status: the two-phase start (`PUT state=running` right
//! after the job is received), the trace stream, cancellation by the coordinator, the job
//! timeout, and the final update with the trace checksum, retried until the coordinator takes
//! it (gitlab-runner `commands/multi.go` `requestJob`/`processBuildOnRunner`,
//! `network/trace.go`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_api::{
    FailureReason, JobPayload, JobState, JobStatus, JobTraceOutput, UpdateJobRequest, VersionInfo,
};
use tokio_util::sync::CancellationToken;

use crate::client::{Coordinator, UpdateOutcome};
use crate::executor::{ExecOutcome, ExecStatus, JobCancel, JobContext, JobExecutor, StopReason};
use crate::trace_patch::{FlushEnd, ServerSignal, TraceBuffer, TracePatcher, error_chain};

/// gitlab-runner's default job timeout when the payload has none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7200);
/// Keep-alive `PUT running` after this long without a trace PATCH.
const FORCE_SEND_INTERVAL: Duration = Duration::from_secs(30);
/// How long an aborted executor gets to clean up before the job is reported anyway.
const ABORT_GRACE: Duration = Duration::from_secs(60);
/// How long past its deadline a job may take to stop on its own (its processes get SIGTERM,
/// then SIGKILL after the executor's kill grace) before the runner aborts it.
const DEADLINE_GRACE: Duration = Duration::from_secs(30);
const ANSI_BOLD_RED: &str = "\x1b[31;1m";
const ANSI_RESET: &str = "\x1b[0;m";

/// What a job needs from the manager.
#[derive(Clone)]
pub(crate) struct JobSetup {
    pub(crate) coordinator: Coordinator,
    pub(crate) executor: Arc<dyn JobExecutor>,
    pub(crate) info: VersionInfo,
    pub(crate) context: JobContext,
    /// `job_status_final_update_retry_limit`.
    pub(crate) final_update_retries: u32,
}

/// How the job ended as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobReport {
    pub(crate) state: JobState,
    pub(crate) failure_reason: Option<FailureReason>,
    /// Whether the final update reached the coordinator.
    pub(crate) delivered: bool,
}

/// Runs `payload` to the end and reports it. Returns `None` when the job was dropped before it
/// started (the coordinator refused the acknowledgement).
pub(crate) async fn run(setup: JobSetup, mut payload: JobPayload) -> Option<JobReport> {
    // GitLab: `common/build.go` `getBaseVariablesBeforeJob`: the TLS variables come before the
    // job's own.
    let tls = setup.coordinator.tls_variables();
    payload.variables.splice(0..0, tls.iter().cloned());
    let coordinator = setup.coordinator.clone();
    let cancel = setup.context.cancel.clone();
    if !acknowledge(&setup, &payload, &cancel).await {
        return None;
    }
    let timeout = match payload.runner_info.timeout {
        0 => DEFAULT_TIMEOUT,
        secs => Duration::from_secs(secs),
    };
    let deadline = Instant::now() + timeout;
    let buffer = setup.context.trace.clone();
    let debug_trace = payload
        .variables
        .iter()
        .any(|v| v.key == "CI_DEBUG_TRACE" && v.value.eq_ignore_ascii_case("true"));
    let patcher = TracePatcher::new(
        coordinator.clone(),
        payload.id,
        payload.token.clone(),
        buffer.clone(),
        debug_trace,
    );
    let stream_done = CancellationToken::new();
    let streamer = tokio::spawn(stream_trace(
        patcher,
        cancel.clone(),
        stream_done.clone(),
        setup.info.clone(),
        payload.clone(),
    ));
    let supported = payload.features.failure_reasons.clone();
    let job_id = payload.id;
    let token = payload.token.clone();
    let mut context = setup.context.clone();
    context.deadline = deadline;
    let timeout_text = runnel_exec::job_timeout_text(&payload);
    let outcome = execute(&setup, payload, context, deadline, &timeout_text).await;
    stream_done.cancel();
    let mut patcher = match streamer.await {
        Ok(patcher) => patcher,
        Err(_) => TracePatcher::new(
            coordinator.clone(),
            job_id,
            token.clone(),
            buffer.clone(),
            debug_trace,
        ),
    };
    let (state, reason) = final_state(&outcome, cancel.reason(), &supported);
    let request = UpdateJobRequest {
        token,
        state: state.clone(),
        failure_reason: reason.clone(),
        exit_code: outcome.exit_code.filter(|code| *code != 0),
        checksum: None,
        output: None,
        info: Some(setup.info.clone()),
    };
    let delivered = final_update(
        &coordinator,
        &mut patcher,
        &buffer,
        request,
        setup.final_update_retries,
    )
    .await;
    Some(JobReport {
        state,
        failure_reason: reason,
        delivered,
    })
}

/// `PUT state=running` right after the job arrived. Returns whether to run the job.
async fn acknowledge(setup: &JobSetup, payload: &JobPayload, cancel: &JobCancel) -> bool {
    let request = UpdateJobRequest {
        token: payload.token.clone(),
        state: JobState::Running,
        failure_reason: None,
        exit_code: None,
        checksum: None,
        output: None,
        info: Some(setup.info.clone()),
    };
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=5 {
        match setup.coordinator.update_job(payload.id, &request).await {
            Ok(UpdateOutcome::Accepted { job_status }) => {
                if job_status == Some(JobStatus::Canceling) {
                    cancel.cancel_gracefully();
                }
                return true;
            }
            Ok(UpdateOutcome::Abort { job_status }) => {
                tracing::warn!(job = %payload.id, ?job_status, "the coordinator refused the job acknowledgement, dropping the job");
                return false;
            }
            Ok(UpdateOutcome::Conflict) => {
                tracing::warn!(job = %payload.id, "another runner manager holds the job, dropping it");
                return false;
            }
            Ok(UpdateOutcome::TryAgain { .. }) => return true,
            Ok(UpdateOutcome::Failed(status)) => {
                tracing::warn!(job = %payload.id, status, attempt, "failed to acknowledge the job");
            }
            Err(err) => {
                tracing::warn!(job = %payload.id, attempt, error = %error_chain(&err), "failed to acknowledge the job");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    // The job was assigned to this runner; running it is better than losing it.
    true
}

/// Runs the executor until it returns, or until the deadline or an abort plus a grace period.
async fn execute(
    setup: &JobSetup,
    payload: JobPayload,
    context: JobContext,
    deadline: Instant,
    timeout_text: &str,
) -> ExecOutcome {
    let cancel = context.cancel.clone();
    let buffer = context.trace.clone();
    let mut running = setup.executor.execute(payload, context);
    let deadline = tokio::time::Instant::from_std(deadline);
    let outcome = tokio::select! {
        outcome = &mut running => Some(outcome),
        // The executor ends a job at its deadline itself and reports the timeout once, as
        // gitlab-runner's `common/build.go` does; this is the backstop for one that hangs.
        () = tokio::time::sleep_until(deadline + DEADLINE_GRACE) => {
            cancel.abort(StopReason::Timeout);
            None
        }
        () = cancel.abort.cancelled() => None,
    };
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => tokio::time::timeout(ABORT_GRACE, running)
            .await
            .unwrap_or(ExecOutcome {
                status: ExecStatus::Failed,
                failure_reason: Some(FailureReason::RunnerSystemFailure),
                exit_code: None,
            }),
    };
    match cancel.reason() {
        Some(StopReason::Timeout) => buffer.write(
            format!(
                "{ANSI_BOLD_RED}ERROR: Job failed: execution took longer than {timeout_text} seconds{ANSI_RESET}\n"
            )
            .as_bytes(),
        ),
        Some(StopReason::Shutdown) if outcome.status != ExecStatus::Success => buffer.write(
            format!("{ANSI_BOLD_RED}ERROR: Job failed (system failure): aborted: shutdown{ANSI_RESET}\n")
                .as_bytes(),
        ),
        _ => {}
    }
    outcome
}

/// The final state and reason, mapped onto what the server supports.
fn final_state(
    outcome: &ExecOutcome,
    stop: Option<StopReason>,
    supported: &[FailureReason],
) -> (JobState, Option<FailureReason>) {
    let reason = match (stop, outcome.status) {
        (Some(StopReason::Timeout), _) => FailureReason::JobExecutionTimeout,
        (Some(StopReason::Shutdown), _) => FailureReason::RunnerInterrupted,
        (Some(StopReason::Canceled), _) | (_, ExecStatus::Canceled) => FailureReason::JobCanceled,
        (None, ExecStatus::Success) => return (JobState::Success, None),
        (None, ExecStatus::Failed) => outcome
            .failure_reason
            .clone()
            .unwrap_or(FailureReason::ScriptFailure),
    };
    (JobState::Failed, Some(reason.for_server(supported)))
}

/// Streams the trace every update interval until `done`; acts on the server's signals; sends
/// a keep-alive `PUT running` when nothing was sent for [`FORCE_SEND_INTERVAL`]. Returns the
/// patcher for the final flush.
async fn stream_trace(
    mut patcher: TracePatcher,
    cancel: JobCancel,
    done: CancellationToken,
    info: VersionInfo,
    payload: JobPayload,
) -> TracePatcher {
    let mut last_sent = Instant::now();
    let on_signal = |signal: ServerSignal| match signal {
        ServerSignal::CancelRequested => cancel.cancel_gracefully(),
        ServerSignal::Abort(_) => cancel.abort(StopReason::Canceled),
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(patcher.interval) => {}
            () = done.cancelled() => return patcher,
        }
        let before = patcher_sent(&patcher);
        let end = patcher.flush(on_signal).await;
        if patcher_sent(&patcher) != before || end == FlushEnd::Refused {
            last_sent = Instant::now();
        }
        if last_sent.elapsed() >= FORCE_SEND_INTERVAL {
            keep_alive(&patcher, &info, &payload, &cancel).await;
            last_sent = Instant::now();
        }
    }
}

fn patcher_sent(patcher: &TracePatcher) -> usize {
    patcher.buffer().sent()
}

async fn keep_alive(
    patcher: &TracePatcher,
    info: &VersionInfo,
    payload: &JobPayload,
    cancel: &JobCancel,
) {
    let buffer = patcher.buffer();
    let request = UpdateJobRequest {
        token: payload.token.clone(),
        state: JobState::Running,
        failure_reason: None,
        exit_code: None,
        checksum: Some(buffer.checksum()),
        output: Some(JobTraceOutput {
            checksum: buffer.checksum(),
            bytesize: buffer.len() as u64,
        }),
        info: Some(info.clone()),
    };
    match patcher.coordinator().update_job(payload.id, &request).await {
        Ok(UpdateOutcome::Accepted {
            job_status: Some(JobStatus::Canceling),
        }) => cancel.cancel_gracefully(),
        Ok(UpdateOutcome::Abort { .. }) => cancel.abort(StopReason::Canceled),
        _ => {}
    }
}

/// Flushes the trace and sends the final update, retrying with backoff (1 s doubling to 60 s)
/// up to `retries` failures; a 202 waits for the server-sent interval and sends again.
/// Returns whether the coordinator took it.
async fn final_update(
    coordinator: &Coordinator,
    patcher: &mut TracePatcher,
    buffer: &TraceBuffer,
    mut request: UpdateJobRequest,
    retries: u32,
) -> bool {
    let job = patcher.job();
    let mut failures = 0;
    let mut pending_answers = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let flushed = patcher.flush(|_| {}).await;
        if flushed == FlushEnd::Incomplete {
            failures += 1;
            if failures > retries {
                tracing::error!(job = %job, "giving up sending the trace");
                return false;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
            continue;
        }
        request.checksum = Some(buffer.checksum());
        request.output = Some(JobTraceOutput {
            checksum: buffer.checksum(),
            bytesize: buffer.len() as u64,
        });
        match coordinator.update_job(job, &request).await {
            Ok(UpdateOutcome::Accepted { .. }) => return true,
            Ok(UpdateOutcome::TryAgain { interval }) => {
                pending_answers += 1;
                if pending_answers > 100 {
                    return false;
                }
                tokio::time::sleep(interval.unwrap_or(Duration::from_secs(3))).await;
            }
            Ok(UpdateOutcome::Abort { job_status }) => {
                tracing::warn!(job = %job, ?job_status, "the coordinator no longer accepts updates for the job");
                return false;
            }
            Ok(UpdateOutcome::Conflict) => return false,
            Ok(UpdateOutcome::Failed(status)) => {
                tracing::warn!(job = %job, status, "failed to send the final job status");
                failures += 1;
            }
            Err(err) => {
                tracing::warn!(job = %job, error = %error_chain(&err), "failed to send the final job status");
                failures += 1;
            }
        }
        if failures > retries {
            tracing::error!(job = %job, "giving up sending the final job status");
            return false;
        }
        if failures > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use runnel_api::{FailureReason, JobState};

    use super::final_state;
    use crate::executor::{ExecOutcome, ExecStatus, StopReason};

    fn outcome(status: ExecStatus) -> ExecOutcome {
        ExecOutcome {
            status,
            failure_reason: None,
            exit_code: None,
        }
    }

    #[test]
    fn canceled_job_is_reported_failed_with_a_reason_the_server_knows() {
        let (state, reason) = final_state(
            &outcome(ExecStatus::Canceled),
            Some(StopReason::Canceled),
            &[],
        );
        assert_eq!(state, JobState::Failed);
        assert_eq!(reason, Some(FailureReason::UnknownFailure));
    }

    #[test]
    fn timeout_wins_over_the_executor_status() {
        let (state, reason) =
            final_state(&outcome(ExecStatus::Failed), Some(StopReason::Timeout), &[]);
        assert_eq!(
            (state, reason),
            (JobState::Failed, Some(FailureReason::JobExecutionTimeout))
        );
    }

    #[test]
    fn failed_job_without_reason_is_a_script_failure() {
        let (state, reason) = final_state(&outcome(ExecStatus::Failed), None, &[]);
        assert_eq!(
            (state, reason),
            (JobState::Failed, Some(FailureReason::ScriptFailure))
        );
    }
}
