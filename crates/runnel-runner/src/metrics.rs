//! Prometheus metrics with gitlab-runner's names, types and labels (`commands/multi.go`,
//! `commands/builds_helper.go`, `network/api_requests_collector.go`), so existing dashboards
//! work, plus the standard `process_*` metrics, served on `listen_address` at `/metrics`.
//!
//! The exposition is OpenMetrics text (prometheus-client). `gitlab_runner_jobs_total` is not
//! exposed: in OpenMetrics its family name would be `gitlab_runner_jobs`, which is the job gauge.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::RequestLabels;

/// `runner`, `runner_name`, `system_id`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunnerLabels {
    /// The short token.
    pub runner: String,
    /// `name` from config.toml.
    pub runner_name: String,
    /// The system id.
    pub system_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    runner: String,
    runner_name: String,
    system_id: String,
    state: String,
    stage: String,
    executor_stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedJobLabels {
    runner: String,
    runner_name: String,
    failure_reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    runner: String,
    system_id: String,
    endpoint: String,
    status: String,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    level: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    name: String,
    version: String,
    revision: String,
    branch: String,
    go_version: String,
    built_at: String,
    os: String,
    architecture: String,
}

/// Buckets of `gitlab_runner_job_duration_seconds`.
const JOB_DURATION_BUCKETS: [f64; 10] = [
    30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 10800.0, 18000.0, 36000.0,
];

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    concurrent: Gauge,
    limit: Family<RunnerLabels, Gauge>,
    jobs: Family<JobLabels, Gauge>,
    job_duration: Family<RunnerLabels, Histogram>,
    failed_jobs: Family<FailedJobLabels, Counter>,
    api_requests: Family<ApiLabels, Counter>,
    errors: Family<LevelLabels, Counter>,
    config_loaded: Counter,
    config_loading_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let version: Family<VersionLabels, Gauge> = Family::default();
        version
            .get_or_create(&VersionLabels {
                name: "runnel".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                revision: String::new(),
                branch: "main".into(),
                go_version: String::new(),
                built_at: String::new(),
                os: crate::client::go_os().into(),
                architecture: crate::client::go_arch().into(),
            })
            .set(1);
        registry.register(
            "gitlab_runner_version_info",
            "Runner version information",
            version,
        );
        let concurrent = Gauge::default();
        registry.register(
            "gitlab_runner_concurrent",
            "The current value of concurrent setting",
            concurrent.clone(),
        );
        let limit = Family::<RunnerLabels, Gauge>::default();
        registry.register(
            "gitlab_runner_limit",
            "The current value of limit setting",
            limit.clone(),
        );
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "gitlab_runner_jobs",
            "The current number of running builds.",
            jobs.clone(),
        );
        let job_duration = Family::<RunnerLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(JOB_DURATION_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "gitlab_runner_job_duration_seconds",
            "Histogram of job durations",
            job_duration.clone(),
        );
        let failed_jobs = Family::<FailedJobLabels, Counter>::default();
        registry.register(
            "gitlab_runner_failed_jobs",
            "Total number of failed jobs",
            failed_jobs.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "gitlab_runner_api_request_statuses",
            "The total number of api requests, partitioned by runner, system_id, endpoint, status and method.",
            api_requests.clone(),
        );
        let errors = Family::<LevelLabels, Counter>::default();
        registry.register(
            "gitlab_runner_errors",
            "The number of caught errors.",
            errors.clone(),
        );
        let config_loaded = Counter::default();
        registry.register(
            "gitlab_runner_configuration_loaded",
            "Total number of times the configuration file was loaded by Runner process",
            config_loaded.clone(),
        );
        let config_loading_errors = Counter::default();
        registry.register(
            "gitlab_runner_configuration_loading_error",
            "Total number of times the configuration file was not loaded by Runner process due to errors",
            config_loading_errors.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            concurrent,
            limit,
            jobs,
            job_duration,
            failed_jobs,
            api_requests,
            errors,
            config_loaded,
            config_loading_errors,
        }
    }

    /// Counts one configuration load, successful or not.
    pub fn config_loaded(&self, ok: bool) {
        if ok {
            self.config_loaded.inc();
        } else {
            self.config_loading_errors.inc();
        }
    }

    /// Sets `gitlab_runner_concurrent`.
    pub fn set_concurrent(&self, concurrent: usize) {
        self.concurrent
            .set(i64::try_from(concurrent).unwrap_or(i64::MAX));
    }

    /// Sets `gitlab_runner_limit` of one runner.
    pub fn set_limit(&self, runner: &RunnerLabels, limit: usize) {
        self.limit
            .get_or_create(runner)
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Adds `delta` to `gitlab_runner_jobs` in `state`/`stage`.
    pub fn job_state(&self, runner: &RunnerLabels, state: &str, stage: &str, delta: i64) {
        let labels = JobLabels {
            runner: runner.runner.clone(),
            runner_name: runner.runner_name.clone(),
            system_id: runner.system_id.clone(),
            state: state.into(),
            stage: stage.into(),
            executor_stage: stage.into(),
        };
        self.jobs.get_or_create(&labels).inc_by(delta);
    }

    /// Records a finished job.
    pub fn job_finished(&self, runner: &RunnerLabels, seconds: f64, failure_reason: Option<&str>) {
        self.job_duration.get_or_create(runner).observe(seconds);
        if let Some(reason) = failure_reason {
            let labels = FailedJobLabels {
                runner: runner.runner.clone(),
                runner_name: runner.runner_name.clone(),
                failure_reason: reason.into(),
            };
            self.failed_jobs.get_or_create(&labels).inc();
        }
    }

    /// Counts one API request.
    pub(crate) fn api_request(
        &self,
        labels: &RequestLabels,
        endpoint: &str,
        status: &str,
        method: &str,
    ) {
        let labels = ApiLabels {
            runner: labels.runner.clone(),
            system_id: labels.system_id.clone(),
            endpoint: endpoint.into(),
            status: status.into(),
            method: method.into(),
        };
        self.api_requests.get_or_create(&labels).inc();
    }

    /// Counts one logged warning or error (`level` is `warning` or `error`).
    pub fn error(&self, level: &str) {
        self.errors
            .get_or_create(&LevelLabels {
                level: level.into(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Serves `GET /metrics` on `listener` until the task is dropped. Other paths are 404 and
    /// other methods 405, as gitlab-runner's metrics server.
    pub async fn serve(self: std::sync::Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let Ok(read) = stream.read(&mut buffer).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buffer[..read]);
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
                    ("GET" | "HEAD", "/metrics") => ("200 OK", metrics.encode()),
                    (_, "/metrics") => ("405 Method Not Allowed", String::new()),
                    _ => ("404 Not Found", String::new()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    if method == "HEAD" { "" } else { &body }
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// `process_*` metrics read from `/proc/self`.
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType;
        let stats = ProcessStats::read();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stats.start_time,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        prometheus_client::metrics::counter::ConstCounter::new(stats.cpu_seconds).encode(metric)?;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct ProcessStats {
    rss_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time: f64,
    cpu_seconds: f64,
}

impl ProcessStats {
    fn read() -> Self {
        let mut stats = Self::default();
        // Clock ticks are 100 per second on every Linux the runner supports.
        const TICKS: f64 = 100.0;
        let page_size = 4096.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may contain spaces.
            if let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|f| f.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                stats.cpu_seconds = (field(11) + field(12)) / TICKS;
                stats.virtual_bytes = field(20);
                stats.rss_bytes = field(21) * page_size;
                let boot_time = std::fs::read_to_string("/proc/stat")
                    .ok()
                    .and_then(|s| {
                        s.lines().find_map(|l| {
                            l.strip_prefix("btime ")
                                .and_then(|v| v.trim().parse::<f64>().ok())
                        })
                    })
                    .unwrap_or(0.0);
                stats.start_time = boot_time + field(19) / TICKS;
            }
        }
        stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0.0, |d| d.count() as f64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            stats.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, RunnerLabels};

    #[test]
    fn exposition_uses_gitlab_runner_names() {
        let metrics = Metrics::new();
        metrics.set_concurrent(4);
        let runner = RunnerLabels {
            runner: "abc".into(),
            runner_name: "r".into(),
            system_id: "s_1".into(),
        };
        metrics.job_state(&runner, "running", "step_script", 1);
        metrics.job_finished(&runner, 12.0, Some("script_failure"));
        metrics.error("warning");
        let text = metrics.encode();
        for expected in [
            "gitlab_runner_concurrent 4",
            "# TYPE gitlab_runner_jobs gauge",
            "gitlab_runner_jobs{runner=\"abc\",runner_name=\"r\",system_id=\"s_1\",state=\"running\",stage=\"step_script\",executor_stage=\"step_script\"} 1",
            "gitlab_runner_job_duration_seconds_bucket{",
            "gitlab_runner_failed_jobs_total{",
            "gitlab_runner_errors_total{level=\"warning\"} 1",
            "gitlab_runner_version_info{name=\"runnel\"",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
