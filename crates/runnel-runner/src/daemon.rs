//! `runnel run`: the manager. It loads `config.toml`, starts pollers for each `[[runners]]`
//! entry, applies reloaded configs without disturbing running jobs, serves metrics, and shuts
//! down on signals as gitlab-runner does (`commands/multi.go`): SIGQUIT stops taking jobs and
//! waits for the running ones; SIGTERM/SIGINT abort running jobs, report them failed
//! (`runner_interrupted`) and wait up to `shutdown_timeout` for the reports; a second signal
//! exits at once; SIGHUP reloads the config.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_api::RunnerToken;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{ClientError, Coordinator, TlsFiles, http_client, http_client_for};
use crate::config::{Config, ConfigError, Loaded, RunnerConfig, load};
use crate::executor::{JobExecutor, StopReason};
use crate::metrics::{Metrics, RunnerLabels};
use crate::poller::{self, Entry, Shared};
use crate::reload::watch_config;

/// Options of `runnel run` besides the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The config file.
    pub config_path: PathBuf,
    /// `--listen-address`, overriding `listen_address`.
    pub listen_address: Option<String>,
}

/// Why `runnel run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The metrics listener could not be bound.
    #[error("failed to listen on `{address}` for metrics")]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("failed to install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The session server could not start.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGQUIT: all jobs finished.
    Graceful,
    /// SIGTERM/SIGINT: jobs were aborted.
    Forceful,
    /// A second signal: exited without waiting.
    Immediate,
}

struct RunnerHandle {
    config: RunnerConfig,
    stop: CancellationToken,
}

struct Daemon {
    shared: Shared,
    http: reqwest::Client,
    runners: HashMap<(String, String), RunnerHandle>,
    pollers: TaskTracker,
    slot_count: usize,
    config_dir: PathBuf,
}

/// A config file read before the daemon starts, so that `runnel run` reads it once: it needs
/// `log_level` and `log_format` before anything is logged.
#[derive(Debug, Clone)]
pub struct Preloaded {
    mtime: Option<(std::time::SystemTime, u64)>,
    loaded: Loaded,
    metrics: Arc<Metrics>,
}

impl Preloaded {
    /// Reads `path`, taking its modification time first so that an edit made meanwhile is
    /// reloaded.
    pub fn read(path: &std::path::Path) -> Result<Self, ConfigError> {
        let mtime = crate::reload::mtime(path);
        Ok(Self {
            mtime,
            loaded: load(path)?,
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// The config as read.
    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// The metrics the daemon will serve, there before it starts so that the logger can count
    /// warnings and errors into `gitlab_runner_errors_total` ([`Metrics::log_entry`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

/// Called with each reloaded config before the daemon applies it (`runnel run` applies
/// `log_level` and `log_format` again, as gitlab-runner's `loadConfig` does).
pub type ReloadHook = Box<dyn Fn(&Config) + Send + Sync>;

/// Runs the daemon from `start` until a signal ends it.
pub async fn run(
    options: RunOptions,
    start: Preloaded,
    on_reload: ReloadHook,
    executor: Arc<dyn JobExecutor>,
) -> Result<Shutdown, RunError> {
    let mut signals = Signals::install()?;
    let (control_tx, control) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let received = signals.next().await;
            if control_tx.send(received).await.is_err() {
                break;
            }
        }
    });
    run_from(options, start, Some(on_reload), executor, control).await
}

/// How long the daemon must have been idle (started, or its last job ended) before
/// [`crate::trim`] runs: start-up is over and the first polls have been sent.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// Gives back the binary's pages that only start-up or jobs used, once after start-up and
/// again each time the daemon has had no job for [`TRIM_AFTER`]. The next job reads the
/// pages it needs again: a few milliseconds, once per busy period.
async fn release_idle_pages(
    active: Arc<Mutex<HashMap<runnel_api::JobId, crate::executor::JobCancel>>>,
    idle: Arc<tokio::sync::Notify>,
) {
    let busy = move || active.lock().map_or(true, |jobs| !jobs.is_empty());
    let wait = || tokio::time::sleep(TRIM_AFTER);
    trim_when_idle(busy, &idle, crate::trim::release_start_up_pages, wait).await;
}

/// The loop of [`release_idle_pages`]: `trim` runs once `wait` is over after start and after
/// each `idle` notification, unless `busy` says a job is running by then.
async fn trim_when_idle<W: std::future::Future<Output = ()>>(
    busy: impl Fn() -> bool,
    idle: &tokio::sync::Notify,
    trim: fn() -> crate::trim::Trimmed,
    wait: impl Fn() -> W,
) {
    loop {
        wait().await;
        if !busy() {
            let trimmed = tokio::task::spawn_blocking(trim).await;
            tracing::debug!(?trimmed, "released the pages idle polling does not use");
        }
        idle.notified().await;
    }
}

/// Runs the daemon until `control` asks it to stop (what signals do in [`run`]).
pub async fn run_controlled(
    options: RunOptions,
    executor: Arc<dyn JobExecutor>,
    signals: mpsc::Receiver<Control>,
) -> Result<Shutdown, RunError> {
    let start = Preloaded::read(&options.config_path)?;
    run_from(options, start, None, executor, signals).await
}

/// The daemon proper, from a config already read; `on_reload` sees each reloaded config.
async fn run_from(
    options: RunOptions,
    start: Preloaded,
    on_reload: Option<ReloadHook>,
    executor: Arc<dyn JobExecutor>,
    signals: mpsc::Receiver<Control>,
) -> Result<Shutdown, RunError> {
    let mut metrics_server = None;
    let result = run_with(
        options,
        start,
        on_reload,
        executor,
        signals,
        &mut metrics_server,
    )
    .await;
    // The metrics server ends with the daemon: its port is free again when this returns.
    if let Some(server) = metrics_server {
        server.abort();
        let _ = server.await;
    }
    result
}

/// [`run_from`] but for stopping the metrics server, which it leaves in `metrics_server`.
async fn run_with(
    options: RunOptions,
    start: Preloaded,
    on_reload: Option<ReloadHook>,
    executor: Arc<dyn JobExecutor>,
    mut signals: mpsc::Receiver<Control>,
    metrics_server: &mut Option<tokio_util::task::AbortOnDropHandle<()>>,
) -> Result<Shutdown, RunError> {
    let Preloaded {
        mtime: loaded_mtime,
        loaded,
        metrics,
    } = start;
    for key in &loaded.unknown_keys {
        tracing::warn!("{key}");
    }
    // gitlab-runner `commands/multi.go` `setupSessionServer`: only with a `listen_address`.
    // The server stops when this function returns (the handle is dropped).
    let listen_session = loaded.config.session_server.as_ref().filter(|s| {
        s.listen_address
            .as_deref()
            .is_some_and(|a| !a.trim().is_empty())
    });
    let (sessions, _session_server) = match listen_session {
        Some(config) => {
            let (server, task) = crate::session::SessionServer::start(config).await?;
            (Some(server), Some(task))
        }
        None => {
            tracing::info!(
                "[session_server].listen_address not defined, session endpoints disabled"
            );
            (None, None)
        }
    };
    let config = Arc::new(loaded.config);
    let system_id = crate::system_id::load_or_create(&options.config_path);
    metrics.config_loaded(true);
    let listen = options
        .listen_address
        .clone()
        .or_else(|| config.listen_address.clone());
    if let Some(address) = listen.filter(|a| !a.is_empty()) {
        let address = if address.contains(':') {
            address
        } else {
            format!("{address}:9252")
        };
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| RunError::Listen {
                address: address.clone(),
                source,
            })?;
        tracing::info!(address = %address, "serving metrics at /metrics");
        *metrics_server = Some(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            metrics.clone().serve(listener),
        )));
    }
    let (config_tx, mut config_rx) = watch::channel(config.clone());
    let (force_tx, force_rx) = mpsc::channel(1);
    tokio::spawn(watch_config(
        options.config_path.clone(),
        loaded_mtime,
        config_tx,
        metrics.clone(),
        force_rx,
    ));
    // One client (TLS config, connection pool) for the daemon and token rotation.
    let http = http_client()?;
    tokio::spawn(crate::rotation::rotate_tokens(
        options.config_path.clone(),
        config_rx.clone(),
        http.clone(),
        system_id.clone(),
    ));
    let mut daemon = Daemon {
        shared: Shared {
            slots: Arc::new(Semaphore::new(config.concurrent())),
            executor,
            metrics,
            jobs: TaskTracker::new(),
            active: Arc::new(Mutex::new(HashMap::new())),
            system_id,
            check_interval: Arc::new(AtomicU64::new(config.check_interval_secs())),
            idle: Arc::new(tokio::sync::Notify::new()),
            sessions,
        },
        http,
        runners: HashMap::new(),
        pollers: TaskTracker::new(),
        slot_count: config.concurrent(),
        config_dir: crate::register::config_dir(&options.config_path),
    };
    daemon.shared.executor.start_up(&config.runners).await;
    daemon.apply(&config);
    tracing::info!(
        runners = config.runners.len(),
        concurrent = config.concurrent(),
        "runnel is running"
    );
    // Owned by this function: the trim stops when the daemon does.
    let _trim = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(release_idle_pages(
        daemon.shared.active.clone(),
        daemon.shared.idle.clone(),
    )));
    loop {
        tokio::select! {
            changed = config_rx.changed() => {
                if changed.is_err() { break; }
                let config = config_rx.borrow_and_update().clone();
                if let Some(hook) = &on_reload { hook(&config); }
                daemon.apply(&config);
            }
            signal = signals.recv() => match signal {
                Some(Control::Reload) => { let _ = force_tx.try_send(()); }
                Some(Control::Graceful) | None => return Ok(daemon.shutdown_gracefully(&mut signals).await),
                Some(Control::Forceful) => {
                    let timeout = config_rx.borrow().shutdown_timeout_secs();
                    return Ok(daemon.shutdown_forcefully(&mut signals, timeout).await);
                }
            },
        }
    }
    Ok(Shutdown::Graceful)
}

impl Daemon {
    /// Applies a (re)loaded config: `concurrent`, `check_interval` and the runner entries.
    /// Running jobs keep the config they started with.
    fn apply(&mut self, config: &Config) {
        self.resize_slots(config.concurrent());
        self.shared.metrics.set_concurrent(config.concurrent());
        self.shared
            .check_interval
            .store(config.check_interval_secs(), Ordering::Relaxed);
        let mut wanted = HashMap::new();
        for runner in &config.runners {
            if !self.shared.executor.supports(&runner.executor) {
                tracing::error!(name = %runner.name, executor = %runner.executor, "skipping runner: runnel cannot run this executor yet (supported: shell, docker, custom, kubernetes)");
                continue;
            }
            if runner.token.trim().is_empty() {
                tracing::warn!(name = %runner.name, "skipping runner without a token");
                continue;
            }
            wanted.insert((runner.url.clone(), runner.token.clone()), runner.clone());
        }
        self.runners.retain(|key, handle| {
            let keep = wanted.get(key).is_some_and(|c| *c == handle.config);
            if !keep {
                handle.stop.cancel();
            }
            keep
        });
        for (key, runner) in wanted {
            if self.runners.contains_key(&key) {
                continue;
            }
            match self.start_runner(&runner) {
                Ok(handle) => {
                    self.runners.insert(key, handle);
                }
                Err(err) => {
                    tracing::error!(name = %runner.name, "failed to start runner: {err}");
                }
            }
        }
    }

    fn start_runner(&self, runner: &RunnerConfig) -> Result<RunnerHandle, ClientError> {
        let http = http_client_for(&self.http, runner, &self.config_dir)?;
        let coordinator = Coordinator::new(
            http,
            &runner.url,
            RunnerToken::new(runner.token.clone()),
            self.shared.system_id.clone(),
        )?
        .with_metrics(self.shared.metrics.clone())
        .with_tls(&TlsFiles::of(runner, &self.config_dir));
        let labels = RunnerLabels {
            runner: runner.short_token(),
            runner_name: runner.name.clone(),
            system_id: self.shared.system_id.clone(),
        };
        self.shared
            .metrics
            .set_limit(&labels, runner.limit().unwrap_or(0));
        let entry = Arc::new(Entry {
            config: runner.clone(),
            coordinator,
            limit: runner.limit().map(|n| Arc::new(Semaphore::new(n))),
            slots: Arc::new(Mutex::new(crate::poller::Slots::default())),
            labels,
        });
        let stop = CancellationToken::new();
        for _ in 0..runner.request_concurrency() {
            self.pollers.spawn(poller::poll(
                self.shared.clone(),
                entry.clone(),
                stop.clone(),
            ));
        }
        tracing::info!(name = %runner.name, runner = %runner.short_token(), executor = %runner.executor, "runner started");
        Ok(RunnerHandle {
            config: runner.clone(),
            stop,
        })
    }

    /// Changes the number of worker slots. Fewer slots take effect as running jobs finish.
    fn resize_slots(&mut self, wanted: usize) {
        if wanted > self.slot_count {
            self.shared.slots.add_permits(wanted - self.slot_count);
        } else if wanted < self.slot_count {
            let slots = self.shared.slots.clone();
            let surplus = u32::try_from(self.slot_count - wanted).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(surplus).await {
                    permits.forget();
                }
            });
        }
        self.slot_count = wanted;
    }

    fn stop_polling(&mut self) {
        for handle in self.runners.values() {
            handle.stop.cancel();
        }
        self.pollers.close();
        self.shared.jobs.close();
    }

    async fn shutdown_gracefully(mut self, signals: &mut mpsc::Receiver<Control>) -> Shutdown {
        tracing::info!("graceful shutdown: not taking new jobs, waiting for running jobs");
        self.stop_polling();
        tokio::select! {
            () = self.shared.jobs.wait() => Shutdown::Graceful,
            Some(signal) = signals.recv() => {
                if signal == Control::Reload {
                    self.shared.jobs.wait().await;
                    return Shutdown::Graceful;
                }
                tracing::warn!("second signal: aborting running jobs");
                self.shutdown_forcefully(signals, 30).await
            }
        }
    }

    async fn shutdown_forcefully(
        mut self,
        signals: &mut mpsc::Receiver<Control>,
        timeout_secs: u64,
    ) -> Shutdown {
        tracing::warn!("shutdown: aborting running jobs");
        self.stop_polling();
        if let Ok(active) = self.shared.active.lock() {
            for cancel in active.values() {
                cancel.abort(StopReason::Shutdown);
            }
        }
        tokio::select! {
            () = self.shared.jobs.wait() => Shutdown::Forceful,
            () = tokio::time::sleep(Duration::from_secs(timeout_secs)) => {
                tracing::error!("jobs did not report within shutdown_timeout ({timeout_secs} s)");
                Shutdown::Forceful
            }
            Some(_) = signals.recv() => Shutdown::Immediate,
        }
    }
}

/// What signals ask of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGQUIT: stop taking jobs, wait for the running ones.
    Graceful,
    /// SIGTERM/SIGINT: abort running jobs.
    Forceful,
    /// SIGHUP: reload the config.
    Reload,
}

struct Signals {
    quit: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, RunError> {
        let make = |kind| signal(kind).map_err(RunError::Signals);
        Ok(Self {
            quit: make(SignalKind::quit())?,
            term: make(SignalKind::terminate())?,
            int: make(SignalKind::interrupt())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Control {
        tokio::select! {
            _ = self.quit.recv() => Control::Graceful,
            _ = self.term.recv() => Control::Forceful,
            _ = self.int.recv() => Control::Forceful,
            _ = self.hup.recv() => Control::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::sync::{Notify, Semaphore, mpsc};

    use super::trim_when_idle;
    use crate::trim::Trimmed;

    static TRIMS: AtomicUsize = AtomicUsize::new(0);
    static TRIMMED: Notify = Notify::const_new();

    fn count_trim() -> Trimmed {
        TRIMS.fetch_add(1, Ordering::SeqCst);
        TRIMMED.notify_one();
        Trimmed::default()
    }

    #[tokio::test]
    async fn pages_are_trimmed_after_start_up_and_after_each_busy_period_only_when_idle() {
        let busy = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(Notify::new());
        // The wait is a gate the test opens; each wait says it has started, so everything the
        // loop did before it (a trim) is over when the test hears of it.
        let (waiting_tx, mut waiting) = mpsc::unbounded_channel();
        let elapsed = Arc::new(Semaphore::new(0));
        let task = tokio::spawn({
            let (busy, idle, elapsed) = (busy.clone(), idle.clone(), elapsed.clone());
            async move {
                let wait = move || {
                    let _ = waiting_tx.send(());
                    let elapsed = elapsed.clone();
                    async move {
                        if let Ok(permit) = elapsed.acquire().await {
                            permit.forget();
                        }
                    }
                };
                trim_when_idle(|| busy.load(Ordering::SeqCst), &idle, count_trim, wait).await;
            }
        });
        let trims = || TRIMS.load(Ordering::SeqCst);
        waiting.recv().await.expect("waits after start");
        assert_eq!(trims(), 0, "not before start-up is over");
        elapsed.add_permits(1);
        // A job runs and ends.
        idle.notify_one();
        waiting.recv().await.expect("waits after the job");
        assert_eq!(trims(), 1, "once after start-up");
        // The next job is running when the wait is over: no trim while it runs.
        busy.store(true, Ordering::SeqCst);
        elapsed.add_permits(1);
        idle.notify_one();
        waiting.recv().await.expect("waits after the second job");
        assert_eq!(trims(), 1, "never while a job runs");
        busy.store(false, Ordering::SeqCst);
        elapsed.add_permits(1);
        idle.notify_one();
        waiting.recv().await.expect("waits again");
        assert_eq!(trims(), 2, "once after the busy period");
        // Idle, no job: after this trim the loop waits for a job to end, not for the clock.
        elapsed.add_permits(1);
        // Earlier trims may have left a permit in `TRIMMED`: wait for this one.
        while trims() < 3 {
            TRIMMED.notified().await;
        }
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        assert!(waiting.try_recv().is_err(), "trimmed again without a job");
        assert_eq!(trims(), 3);
        task.abort();
    }
}
