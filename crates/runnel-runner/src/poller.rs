//! Polling one `[[runners]]` entry for jobs (gitlab-runner `commands/multi.go`,
//! `commands/builds_helper.go`): a request takes a worker slot (global `concurrent`) and a
//! place under the entry's `limit`; a received job keeps both until it is reported. After a job
//! the entry is polled again at once unless `strict_check_interval`; otherwise every
//! `check_interval`. After `unhealthy_requests_limit` failed requests in a row the entry rests
//! for `unhealthy_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_api::{JobId, VersionInfo};
use runnel_exec::Concurrency;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Coordinator, JobRequestOutcome};
use crate::config::RunnerConfig;
use crate::executor::{JobCancel, JobContext, JobExecutor};
use crate::job::{self, JobSetup};
use crate::metrics::{JobStages, Metrics, RunnerLabels};
use crate::session::{JobSession, SessionServer};
use crate::trace_patch::{TraceBuffer, error_chain};

/// What every poller shares with the daemon.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) executor: Arc<dyn JobExecutor>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) jobs: TaskTracker,
    pub(crate) active: Arc<Mutex<HashMap<JobId, JobCancel>>>,
    pub(crate) system_id: String,
    /// `check_interval` in seconds; reloads change it for running pollers too.
    pub(crate) check_interval: Arc<AtomicU64>,
    /// Told when the last running job ends (see [`crate::trim`]).
    pub(crate) idle: Arc<tokio::sync::Notify>,
    /// The session server, when `[session_server]` has a `listen_address`.
    pub(crate) sessions: Option<crate::session::SessionServer>,
}

/// One runner entry's state shared by its pollers.
pub(crate) struct Entry {
    pub(crate) config: RunnerConfig,
    pub(crate) coordinator: Coordinator,
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// The slots of the entry's running jobs.
    pub(crate) slots: Arc<Mutex<Slots>>,
    pub(crate) labels: RunnerLabels,
}

/// `info` sent with job requests and updates for `runner`.
pub(crate) fn version_info(runner: &RunnerConfig, executor: &dyn JobExecutor) -> VersionInfo {
    VersionInfo {
        name: "runnel".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        revision: String::new(),
        platform: crate::client::go_os().into(),
        architecture: crate::client::go_arch().into(),
        executor: runner.executor.clone(),
        shell: runner.shell.clone().unwrap_or_else(|| "bash".into()),
        features: executor.features(runner),
        config: None,
        labels: runner.labels.clone(),
    }
}

/// A Go duration (`90s`, `10m`, `1h30m`, `1.5h`, `500ms`, and Go's own `1h0m0s`), as
/// gitlab-runner reads `unhealthy_interval` (`time.ParseDuration`); a bare number is seconds.
/// Malformed or missing values give `default`.
fn parse_go_duration(value: Option<&str>, default: Duration) -> Duration {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return default;
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    runnel_exec::parse_go_duration(text).unwrap_or(default)
}

/// Polls until `stop`. Not cancel-safe in the middle of a job request (see
/// `Coordinator::request_job`); `stop` is only checked between requests and while waiting.
pub(crate) async fn poll(shared: Shared, entry: Arc<Entry>, stop: CancellationToken) {
    let info = version_info(&entry.config, shared.executor.as_ref());
    let unhealthy_limit = entry.config.unhealthy_requests_limit();
    let unhealthy_interval = parse_go_duration(
        entry.config.unhealthy_interval.as_deref(),
        Duration::from_secs(3600),
    );
    let mut unhealthy = 0;
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        wait = Duration::from_secs(shared.check_interval.load(Ordering::Relaxed));
        let slot = tokio::select! {
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stop.cancelled() => return,
        };
        let limit_permit = match &entry.limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => continue,
            },
            None => None,
        };
        if stop.is_cancelled() {
            return;
        }
        let in_flight = shared.metrics.job_request(&entry.labels);
        // gitlab-runner `commands/multi.go` `requestJob`: a session for every request, kept
        // when a job comes.
        let session = shared.sessions.as_ref().map(SessionServer::open);
        let advertised = session.as_ref().map(|(_, info)| info.clone());
        let outcome = entry
            .coordinator
            .request_job_with_session(info.clone(), advertised)
            .await;
        drop(in_flight);
        let session = session.map(|(session, _)| session);
        if !matches!(outcome, Ok(JobRequestOutcome::Job(_)))
            && let (Some(server), Some(session)) = (&shared.sessions, &session)
        {
            server.close(session);
        }
        match outcome {
            Ok(JobRequestOutcome::Job(payload)) => {
                unhealthy = 0;
                let job = StartedJob {
                    payload: *payload,
                    slot,
                    limit_permit,
                    session,
                };
                start_job(&shared, &entry, &info, job);
                if entry.config.strict_check_interval != Some(true) {
                    wait = Duration::ZERO;
                }
            }
            Ok(JobRequestOutcome::NoJob) => unhealthy = 0,
            Ok(JobRequestOutcome::Forbidden) => {
                tracing::error!(
                    runner = %entry.labels.runner,
                    name = %entry.config.name,
                    "the runner token is no longer valid (403 Forbidden from {}): re-register this runner, or remove it with `runnel verify --delete`",
                    entry.config.url,
                );
                unhealthy += 1;
            }
            Ok(JobRequestOutcome::Orphaned) => {
                tracing::warn!(runner = %entry.labels.runner, "the runner is orphaned: its project or group no longer exists (422)");
            }
            Ok(JobRequestOutcome::Failed(status)) => {
                tracing::warn!(runner = %entry.labels.runner, status, "failed to request a job");
                unhealthy += 1;
            }
            Err(err) => {
                tracing::warn!(runner = %entry.labels.runner, error = %error_chain(&err), "failed to request a job");
                unhealthy += 1;
            }
        }
        if unhealthy >= unhealthy_limit {
            tracing::error!(
                runner = %entry.labels.runner,
                "{unhealthy} failed job requests in a row; resting for {} s",
                unhealthy_interval.as_secs()
            );
            unhealthy = 0;
            wait = unhealthy_interval;
        }
    }
}

/// A job the coordinator handed out, and what it holds while it runs.
struct StartedJob {
    payload: runnel_api::JobPayload,
    slot: OwnedSemaphorePermit,
    limit_permit: Option<OwnedSemaphorePermit>,
    session: Option<Arc<JobSession>>,
}

fn start_job(shared: &Shared, entry: &Arc<Entry>, info: &VersionInfo, job: StartedJob) {
    let StartedJob {
        payload,
        slot,
        limit_permit,
        session,
    } = job;
    let project = payload.job_info.project_id;
    let concurrency = entry
        .slots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(payload.id.0, project);
    let cancel = JobCancel::new();
    let job_id = payload.id;
    // Counted in `gitlab_runner_jobs` by state and stage until the job's task ends.
    let stages = JobStages::start(
        shared.metrics.clone(),
        entry.labels.clone(),
        entry.config.executor.clone(),
    );
    let stage_sink = {
        let stages = stages.clone();
        runnel_exec::StageSink(Arc::new(move |stage: &str| stages.enter(stage)))
    };
    if let Ok(mut active) = shared.active.lock() {
        active.insert(job_id, cancel.clone());
    }
    let setup = JobSetup {
        coordinator: entry.coordinator.clone(),
        executor: shared.executor.clone(),
        info: info.clone(),
        context: JobContext {
            runner: entry.config.clone(),
            trace: TraceBuffer::new(),
            cancel,
            deadline: Instant::now(),
            coordinator: entry.coordinator.clone(),
            concurrency,
            system_id: shared.system_id.clone(),
            stage_sink: Some(stage_sink),
            session: session.clone(),
        },
        final_update_retries: entry
            .config
            .job_status_final_update_retry_limit
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(10),
    };
    tracing::info!(job = %job_id, runner = %entry.labels.runner, "received job");
    shared.metrics.job_received(&entry.labels);
    let shared = shared.clone();
    let entry = entry.clone();
    shared.jobs.clone().spawn(async move {
        let started = Instant::now();
        let report = job::run(setup, payload).await;
        // The terminal ends with its job (gitlab-runner removes the session with the build).
        if let (Some(server), Some(session)) = (&shared.sessions, &session) {
            server.close(session);
        }
        stages.finish();
        if let Some(report) = &report {
            let reason = report.failure_reason.as_ref().map(ToString::to_string);
            shared.metrics.job_finished(&entry.labels, started.elapsed().as_secs_f64(), reason.as_deref());
            tracing::info!(job = %job_id, state = %report.state, delivered = report.delivered, "job finished");
        }
        if let Ok(mut active) = shared.active.lock() {
            active.remove(&job_id);
            if active.is_empty() {
                shared.idle.notify_one();
            }
        }
        if let Ok(mut slots) = entry.slots.lock() {
            slots.release(job_id.0);
        }
        drop(limit_permit);
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_go_duration;

    #[test]
    fn go_durations_parse_with_a_default() {
        let default = Duration::from_secs(7);
        assert_eq!(
            parse_go_duration(Some("60m"), default),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_go_duration(Some("2h"), default),
            Duration::from_secs(7200)
        );
        // Go's `time.Duration.String`, as gitlab-runner writes durations back.
        assert_eq!(
            parse_go_duration(Some("1h0m0s"), default),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_go_duration(Some("1h30m"), default),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration(Some("1.5m"), default),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_go_duration(Some("1500ms"), default),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_go_duration(Some("bogus"), default), default);
        assert_eq!(parse_go_duration(Some("5x"), default), default);
        assert_eq!(parse_go_duration(None, default), default);
    }
}

/// The slots of a runner entry's running jobs. GitLab: gitlab-runner
/// `commands/builds_helper.go` `addBuild`: a job gets the lowest slot no other running job of
/// the entry has (`CI_CONCURRENT_ID`) and the lowest no other running job of the entry and its
/// project has (`CI_CONCURRENT_PROJECT_ID`).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    /// Job id, project id and the job's slots.
    running: Vec<(u64, u64, Concurrency)>,
}

impl Slots {
    /// Takes the slots of job `job` of project `project`.
    pub(crate) fn take(&mut self, job: u64, project: u64) -> Concurrency {
        let lowest = |taken: &dyn Fn(usize) -> bool| (0..).find(|n| !taken(*n)).unwrap_or(0);
        let id = lowest(&|n| self.running.iter().any(|(_, _, c)| c.id == n));
        let project_id = lowest(&|n| {
            self.running
                .iter()
                .any(|(_, p, c)| *p == project && c.project_id == n)
        });
        let concurrency = Concurrency { id, project_id };
        self.running.push((job, project, concurrency));
        concurrency
    }

    /// Gives back the slots of job `job`.
    pub(crate) fn release(&mut self, job: u64) {
        self.running.retain(|(j, _, _)| *j != job);
    }
}

#[cfg(test)]
mod slot_tests {
    use super::Slots;

    #[test]
    fn slots_are_the_lowest_free_per_runner_and_per_project() {
        let mut slots = Slots::default();
        let a = slots.take(1, 10);
        let b = slots.take(2, 20);
        let c = slots.take(3, 10);
        assert_eq!((a.id, a.project_id), (0, 0));
        assert_eq!((b.id, b.project_id), (1, 0));
        assert_eq!((c.id, c.project_id), (2, 1));
        slots.release(1);
        let d = slots.take(4, 10);
        assert_eq!((d.id, d.project_id), (0, 0));
    }
}
