//! Prometheus metrics with gitlab-runner's names, types, labels and help texts, so existing
//! dashboards and alerts work unchanged, plus the standard `process_*` metrics, served on
//! `listen_address` at `/metrics`.
//!
//! The exposition is the classic Prometheus text format 0.0.4 (`text/plain; version=0.0.4;
//! charset=utf-8`), which is what gitlab-runner serves: `commands/multi.go` uses client_golang's
//! `promhttp.HandlerFor` without `EnableOpenMetrics`. In that format the counter
//! `gitlab_runner_jobs_total` and the gauge `gitlab_runner_jobs` are two families, as in
//! gitlab-runner; OpenMetrics would make both the family `gitlab_runner_jobs`. Families are
//! sorted by name and labels within a series by label name, as client_golang writes them.
//!
//! The registry is our own (`Registry::new()`), never the `prometheus` crate's global one, so
//! nothing else in the process can add to the exposition. This module owns the metric
//! definitions and the `/metrics` endpoint; it must not decide when a job changes state (the
//! poller and the job manager call the methods below).

#[cfg(any(test, feature = "test-support"))]
pub mod text_format;

mod endpoint;
mod job_stage;
mod process;

pub use job_stage::{JobStage, JobStages};

use crate::client::RequestLabels;
use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The `Content-Type` of `/metrics`: client_golang's `expfmt.FmtText`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `runner`, `runner_name`, `system_id`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct RunnerLabels {
    /// The short token.
    pub runner: String,
    /// `name` from config.toml.
    pub runner_name: String,
    /// The system id.
    pub system_id: String,
}

impl RunnerLabels {
    fn values(&self) -> [&str; 3] {
        [&self.runner, &self.runner_name, &self.system_id]
    }
}

/// The label names of [`RunnerLabels`], in the order of [`RunnerLabels::values`].
const RUNNER_LABELS: [&str; 3] = ["runner", "runner_name", "system_id"];

/// Buckets of `gitlab_runner_job_duration_seconds` (`commands/builds_helper.go`).
const JOB_DURATION_BUCKETS: [f64; 10] = [
    30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 10800.0, 18000.0, 36000.0,
];

/// The levels that gitlab-runner's log hook always reports, as logrus names them
/// (`helpers/prometheus/log_hook.go`: panic, fatal, error and warning).
const ERROR_LEVELS: [&str; 4] = ["panic", "fatal", "error", "warning"];

/// The `mode` label of `gitlab_runner_failed_jobs_total`: runnel runs `script` jobs, which
/// gitlab-runner calls the traditional mode (the other one is `steps`).
const TRADITIONAL_MODE: &str = "traditional";

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    concurrent: IntGauge,
    limit: IntGaugeVec,
    jobs: IntGaugeVec,
    /// Held while a `jobs` series changes, so that removing an emptied series cannot drop a
    /// job another thread has just added to it.
    jobs_lock: std::sync::Mutex<()>,
    jobs_total: IntCounterVec,
    request_concurrency: IntGaugeVec,
    request_concurrency_exceeded: IntCounterVec,
    job_duration: HistogramVec,
    failed_jobs: IntCounterVec,
    api_requests: IntCounterVec,
    errors: IntCounterVec,
    config_loaded: IntCounter,
    config_loading_errors: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `collector` and hands it back. Names are constants and distinct, so neither
/// creating nor registering a metric can fail.
fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are valid and registered once");
    collector
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    register(registry, vec)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    register(registry, vec)
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::with_opts(Opts::new(name, help)).expect("a valid metric name");
    register(registry, counter)
}

/// One job request in flight; see [`Metrics::job_request`].
#[derive(Debug)]
pub struct RequestInFlight(prometheus::IntGauge);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        // GitLab: common/version.go `NewMetricsCollector`.
        let version = gauge_vec(
            &registry,
            "gitlab_runner_version_info",
            "A metric with a constant '1' value labeled by different build stats fields.",
            &[
                "name",
                "version",
                "revision",
                "branch",
                "go_version",
                "built_at",
                "os",
                "architecture",
            ],
        );
        version
            .with_label_values(&[
                "runnel",
                env!("CARGO_PKG_VERSION"),
                "",
                "main",
                "",
                "",
                crate::client::go_os(),
                crate::client::go_arch(),
            ])
            .set(1);
        // GitLab: commands/multi.go `concurrentDesc` and `limitDesc`; the limit's help text is
        // gitlab-runner's, copied from the concurrent one.
        let concurrent = IntGauge::with_opts(Opts::new(
            "gitlab_runner_concurrent",
            "The current value of concurrent setting",
        ))
        .expect("a valid metric name");
        let concurrent = register(&registry, concurrent);
        let limit = gauge_vec(
            &registry,
            "gitlab_runner_limit",
            "The current value of concurrent setting",
            &RUNNER_LABELS,
        );
        // GitLab: commands/builds_helper.go `numBuildsDesc` and `newBuildsHelper`.
        let jobs = gauge_vec(
            &registry,
            "gitlab_runner_jobs",
            "The current number of running builds.",
            &[
                "runner",
                "runner_name",
                "system_id",
                "state",
                "stage",
                "executor_stage",
            ],
        );
        let jobs_total = counter_vec(
            &registry,
            "gitlab_runner_jobs_total",
            "Total number of handled jobs",
            &RUNNER_LABELS,
        );
        // GitLab: commands/builds_helper.go `requestConcurrencyDesc`,
        // `requestConcurrencyExceededDesc` (labels runner, system_id).
        let request_concurrency = gauge_vec(
            &registry,
            "gitlab_runner_request_concurrency",
            "The current number of concurrent requests for a new job",
            &["runner", "system_id"],
        );
        let request_concurrency_exceeded = counter_vec(
            &registry,
            "gitlab_runner_request_concurrency_exceeded_total",
            "Count of excess requests above the configured request_concurrency limit",
            &["runner", "system_id"],
        );
        let job_duration = HistogramVec::new(
            HistogramOpts::new(
                "gitlab_runner_job_duration_seconds",
                "Histogram of job durations",
            )
            .buckets(JOB_DURATION_BUCKETS.to_vec()),
            &RUNNER_LABELS,
        )
        .expect("a valid metric name");
        let job_duration = register(&registry, job_duration);
        // GitLab: helpers/prometheus/failures_collector.go `numJobFailuresDesc`.
        let failed_jobs = counter_vec(
            &registry,
            "gitlab_runner_failed_jobs_total",
            "Total number of failed jobs",
            &["runner", "runner_name", "failure_reason", "mode"],
        );
        // GitLab: network/api_requests_collector.go `NewAPIRequestsCollector`.
        let api_requests = counter_vec(
            &registry,
            "gitlab_runner_api_request_statuses_total",
            "The total number of API requests made by GitLab Runner, partitioned by runner, \
             system_id, endpoint, status and method.",
            &["runner", "system_id", "endpoint", "status", "method"],
        );
        // GitLab: helpers/prometheus/log_hook.go `numErrorsDesc`; every level is always there.
        let errors = counter_vec(
            &registry,
            "gitlab_runner_errors_total",
            "The number of caught errors.",
            &["level"],
        );
        for level in ERROR_LEVELS {
            errors.with_label_values(&[level]);
        }
        // GitLab: commands/internal/configfile/metrics.go `newConfigAccessCollector`.
        let config_loaded = counter(
            &registry,
            "gitlab_runner_configuration_loaded_total",
            "Total number of times the configuration file was loaded by Runner process",
        );
        let config_loading_errors = counter(
            &registry,
            "gitlab_runner_configuration_loading_error_total",
            "Total number of times the configuration file was not loaded by Runner process due \
             to errors",
        );
        registry
            .register(Box::new(process::ProcessCollector::new()))
            .expect("process metric names are registered once");
        Self {
            registry,
            concurrent,
            limit,
            jobs,
            jobs_lock: std::sync::Mutex::new(()),
            jobs_total,
            request_concurrency,
            request_concurrency_exceeded,
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

    /// Sets `gitlab_runner_limit` of one runner, and makes its `gitlab_runner_jobs` series with
    /// state, stage and executor stage `idle` exist at 0, as gitlab-runner reports every runner
    /// it knows even while it runs nothing (`commands/builds_helper.go` `statesAndStages`).
    pub fn set_limit(&self, runner: &RunnerLabels, limit: usize) {
        self.limit
            .with_label_values(&runner.values())
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        let [token, name, system_id] = runner.values();
        self.jobs
            .with_label_values(&[token, name, system_id, "idle", "idle", "idle"]);
        // A runner's request counters exist once it polls (builds_helper.go `getRunnerCounter`).
        // runnel runs `request_concurrency` pollers, each with one request at a time, so the
        // limit is never exceeded: that counter stays 0.
        self.request_concurrency
            .with_label_values(&[token, system_id]);
        self.request_concurrency_exceeded
            .with_label_values(&[token, system_id]);
    }

    /// Counts a job request in flight for `runner` (`gitlab_runner_request_concurrency`) until
    /// the returned guard is dropped, also when the request is abandoned midway.
    pub fn job_request(&self, runner: &RunnerLabels) -> RequestInFlight {
        let gauge = self
            .request_concurrency
            .with_label_values(&[runner.runner.as_str(), runner.system_id.as_str()]);
        gauge.inc();
        RequestInFlight(gauge)
    }

    /// Counts one job received from the coordinator in `gitlab_runner_jobs_total`. GitLab:
    /// commands/builds_helper.go `addBuild`, called once a job request returned a job.
    pub fn job_received(&self, runner: &RunnerLabels) {
        self.jobs_total.with_label_values(&runner.values()).inc();
    }

    /// Adds `delta` to `gitlab_runner_jobs` of `stage`. A series that drops to zero is
    /// removed: gitlab-runner builds this gauge from the running builds at each scrape
    /// (commands/builds_helper.go `statesAndStages`), so only the idle series is ever 0.
    pub fn job_state(&self, runner: &RunnerLabels, stage: &JobStage, delta: i64) {
        let [token, name, system_id] = runner.values();
        let labels = [
            token,
            name,
            system_id,
            stage.state,
            stage.stage.as_str(),
            stage.executor_stage,
        ];
        let _guard = self
            .jobs_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let series = self.jobs.with_label_values(&labels);
        series.add(delta);
        if series.get() <= 0 {
            let _ = self.jobs.remove_label_values(&labels);
        }
    }

    /// Records a finished job.
    pub fn job_finished(&self, runner: &RunnerLabels, seconds: f64, failure_reason: Option<&str>) {
        self.job_duration
            .with_label_values(&runner.values())
            .observe(seconds);
        if let Some(reason) = failure_reason {
            self.failed_jobs
                .with_label_values(&[
                    runner.runner.as_str(),
                    runner.runner_name.as_str(),
                    reason,
                    TRADITIONAL_MODE,
                ])
                .inc();
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
        self.api_requests
            .with_label_values(&[
                labels.runner.as_str(),
                labels.system_id.as_str(),
                endpoint,
                status,
                method,
            ])
            .inc();
    }

    /// Counts one logged warning or error (`level` is `warning` or `error`).
    pub fn error(&self, level: &str) {
        self.errors.with_label_values(&[level]).inc();
    }

    /// Counts a log entry of `level` as gitlab-runner's logrus hook does: warnings and errors
    /// go to `gitlab_runner_errors_total` (`helpers/prometheus/log_hook.go`), other levels are
    /// not counted. The logger calls this for every entry it writes.
    pub fn log_entry(&self, level: &tracing::Level) {
        match *level {
            tracing::Level::WARN => self.error("warning"),
            tracing::Level::ERROR => self.error("error"),
            _ => {}
        }
    }

    /// The exposition text, in the format of [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::text_format::{self, Family};
    use super::{JobStage, Metrics, RunnerLabels};

    fn runner() -> RunnerLabels {
        RunnerLabels {
            runner: "abc".into(),
            runner_name: "r".into(),
            system_id: "s_1".into(),
        }
    }

    fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name} in {families:#?}"))
    }

    /// A registry after one job of each kind, read back with the strict 0.0.4 reader.
    fn scraped() -> (String, Vec<Family>) {
        let metrics = Metrics::new();
        metrics.config_loaded(true);
        metrics.set_concurrent(4);
        metrics.set_limit(&runner(), 2);
        metrics.job_received(&runner());
        metrics.job_received(&runner());
        metrics.job_state(&runner(), &JobStage::of("docker", "step_script"), 1);
        metrics.job_finished(&runner(), 12.0, Some("script_failure"));
        metrics.job_finished(&runner(), 40.0, None);
        metrics.error("warning");
        let _in_flight = metrics.job_request(&runner());
        drop(metrics.job_request(&runner()));
        let text = metrics.encode();
        let families = text_format::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, families)
    }

    #[test]
    fn a_jobs_series_disappears_when_its_last_job_ends_and_the_idle_one_stays() {
        let metrics = Metrics::new();
        metrics.set_limit(&runner(), 2);
        let running = JobStage::of("shell", "step_script");
        metrics.job_state(&runner(), &running, 1);
        metrics.job_state(&runner(), &running, 1);
        metrics.job_state(&runner(), &running, -1);
        let text = metrics.encode();
        assert!(
            text.lines()
                .any(|l| l.contains("state=\"running\"") && l.ends_with("} 1")),
            "{text}"
        );
        metrics.job_state(&runner(), &running, -1);
        let text = metrics.encode();
        assert!(!text.contains("state=\"running\""), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("state=\"idle\"") && l.ends_with("} 0")),
            "{text}"
        );
    }

    #[test]
    fn exposition_is_prometheus_text_0_0_4_with_help_and_type_for_every_family() {
        let (text, families) = scraped();
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            names, sorted,
            "families are sorted by name as client_golang writes them"
        );
    }

    #[test]
    fn jobs_total_is_a_counter_next_to_the_jobs_gauge() {
        let (text, families) = scraped();
        assert!(
            text.contains("# TYPE gitlab_runner_jobs_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE gitlab_runner_jobs gauge\n"), "{text}");
        assert!(
            text.contains(
                "gitlab_runner_jobs_total{runner=\"abc\",runner_name=\"r\",system_id=\"s_1\"} 2\n"
            ),
            "{text}"
        );
        let total = family(&families, "gitlab_runner_jobs_total");
        assert_eq!(total.help, "Total number of handled jobs");
        let jobs = family(&families, "gitlab_runner_jobs");
        fn labels<'a>(state: &'a str, stage: &'a str) -> [(&'a str, &'a str); 6] {
            [
                (
                    "executor_stage",
                    if stage == "idle" {
                        "idle"
                    } else {
                        "docker_run"
                    },
                ),
                ("runner", "abc"),
                ("runner_name", "r"),
                ("stage", stage),
                ("state", state),
                ("system_id", "s_1"),
            ]
        }
        let running = labels("running", "step_script");
        assert_eq!(jobs.value("gitlab_runner_jobs", &running), Some(1.0));
        let idle = labels("idle", "idle");
        assert_eq!(jobs.value("gitlab_runner_jobs", &idle), Some(0.0));
    }

    #[test]
    fn every_family_has_gitlab_runners_type_help_and_labels() {
        let (_, families) = scraped();
        let runner = [
            ("runner", "abc"),
            ("runner_name", "r"),
            ("system_id", "s_1"),
        ];
        // Family, type, help, one sample's name, its labels and its value.
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            f64,
        );
        let token_and_id: [(&str, &str); 2] = [("runner", "abc"), ("system_id", "s_1")];
        let expected: [Row<'_>; 10] = [
            (
                "gitlab_runner_request_concurrency",
                "gauge",
                "The current number of concurrent requests for a new job",
                "gitlab_runner_request_concurrency",
                &token_and_id,
                1.0,
            ),
            (
                "gitlab_runner_request_concurrency_exceeded_total",
                "counter",
                "Count of excess requests above the configured request_concurrency limit",
                "gitlab_runner_request_concurrency_exceeded_total",
                &token_and_id,
                0.0,
            ),
            (
                "gitlab_runner_concurrent",
                "gauge",
                "The current value of concurrent setting",
                "gitlab_runner_concurrent",
                &[],
                4.0,
            ),
            (
                "gitlab_runner_limit",
                "gauge",
                "The current value of concurrent setting",
                "gitlab_runner_limit",
                &runner,
                2.0,
            ),
            (
                "gitlab_runner_job_duration_seconds",
                "histogram",
                "Histogram of job durations",
                "gitlab_runner_job_duration_seconds_count",
                &runner,
                2.0,
            ),
            (
                "gitlab_runner_failed_jobs_total",
                "counter",
                "Total number of failed jobs",
                "gitlab_runner_failed_jobs_total",
                &[
                    ("failure_reason", "script_failure"),
                    ("mode", "traditional"),
                    ("runner", "abc"),
                    ("runner_name", "r"),
                ],
                1.0,
            ),
            (
                "gitlab_runner_errors_total",
                "counter",
                "The number of caught errors.",
                "gitlab_runner_errors_total",
                &[("level", "warning")],
                1.0,
            ),
            (
                "gitlab_runner_errors_total",
                "counter",
                "The number of caught errors.",
                "gitlab_runner_errors_total",
                &[("level", "panic")],
                0.0,
            ),
            (
                "gitlab_runner_configuration_loaded_total",
                "counter",
                "Total number of times the configuration file was loaded by Runner process",
                "gitlab_runner_configuration_loaded_total",
                &[],
                1.0,
            ),
            (
                "gitlab_runner_configuration_loading_error_total",
                "counter",
                "Total number of times the configuration file was not loaded by Runner process \
                 due to errors",
                "gitlab_runner_configuration_loading_error_total",
                &[],
                0.0,
            ),
        ];
        for (name, kind, help, sample, labels, value) in expected {
            let found = family(&families, name);
            assert_eq!(
                (found.kind.as_str(), found.help.as_str()),
                (kind, help),
                "{name}"
            );
            assert_eq!(
                found.value(sample, labels),
                Some(value),
                "{name} {labels:?}"
            );
        }
        let buckets = family(&families, "gitlab_runner_job_duration_seconds");
        let le: Vec<&str> = buckets
            .samples
            .iter()
            .filter_map(|s| s.labels.get("le").map(String::as_str))
            .collect();
        assert_eq!(
            le,
            [
                "30", "60", "300", "600", "1800", "3600", "7200", "10800", "18000", "36000", "+Inf"
            ]
        );
        let version = family(&families, "gitlab_runner_version_info");
        let keys: Vec<&str> = version.samples[0]
            .labels
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "architecture",
                "branch",
                "built_at",
                "go_version",
                "name",
                "os",
                "revision",
                "version"
            ]
        );
        assert_eq!(version.samples[0].labels["name"], "runnel");
    }

    #[test]
    fn process_metrics_are_exposed_with_client_golangs_types() {
        let (_, families) = scraped();
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert_eq!(family(&families, name).kind, kind, "{name}");
        }
        let rss = family(&families, "process_resident_memory_bytes");
        assert!(rss.samples[0].value > 0.0, "{rss:?}");
    }

    #[test]
    fn api_requests_carry_runner_system_id_endpoint_status_and_method() {
        let metrics = Metrics::new();
        let labels = crate::client::RequestLabels {
            runner: "abc".into(),
            system_id: "s_1".into(),
        };
        metrics.api_request(&labels, "request_job", "204", "post");
        let families = text_format::parse(&metrics.encode()).expect("valid");
        let requests = family(&families, "gitlab_runner_api_request_statuses_total");
        let value = requests.value(
            "gitlab_runner_api_request_statuses_total",
            &[
                ("endpoint", "request_job"),
                ("method", "post"),
                ("runner", "abc"),
                ("status", "204"),
                ("system_id", "s_1"),
            ],
        );
        assert_eq!(value, Some(1.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        let odd = RunnerLabels {
            runner: "a\"b".into(),
            runner_name: "back\\slash\nnewline".into(),
            system_id: "s".into(),
        };
        metrics.job_received(&odd);
        let text = metrics.encode();
        let families = text_format::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let total = family(&families, "gitlab_runner_jobs_total");
        let value = total.value(
            "gitlab_runner_jobs_total",
            &[
                ("runner", "a\"b"),
                ("runner_name", "back\\slash\nnewline"),
                ("system_id", "s"),
            ],
        );
        assert_eq!(value, Some(1.0), "{text}");
    }
}
