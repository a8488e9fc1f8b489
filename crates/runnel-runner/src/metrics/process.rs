//! The standard `process_*` metrics, read from `/proc/self` at each scrape.
//!
//! Names, types and help texts are those of client_golang's process collector
//! (`prometheus/process_collector.go`), which gitlab-runner registers in `commands/multi.go`
//! (`collectors.NewProcessCollector`). The files are read here instead of through the
//! `prometheus` crate's `process` feature, which would pull in `procfs` and its dependencies.
//! This module must not keep anything between scrapes except the metric values themselves.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), 100 on every Linux the runner supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// Collects `process_*` from `/proc/self` when the registry is gathered.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    cpu_seconds: Counter,
    resident_memory: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub(crate) fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            Gauge::with_opts(Opts::new(name, help)).expect("a process metric name is valid")
        };
        let cpu_seconds = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("a process metric name is valid");
        let resident_memory = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        let virtual_memory = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        );
        let mut descs = Vec::new();
        descs.extend(cpu_seconds.desc().into_iter().cloned());
        for gauge in [
            &resident_memory,
            &virtual_memory,
            &open_fds,
            &max_fds,
            &start_time,
        ] {
            descs.extend(gauge.desc().into_iter().cloned());
        }
        Self {
            cpu_seconds,
            resident_memory,
            virtual_memory,
            open_fds,
            max_fds,
            start_time,
            descs,
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = ProcessStats::read();
        // A counter only goes up; the kernel's CPU time does too, so add the difference.
        let past = self.cpu_seconds.get();
        if stats.cpu_seconds > past {
            self.cpu_seconds.inc_by(stats.cpu_seconds - past);
        }
        self.resident_memory.set(stats.rss_bytes);
        self.virtual_memory.set(stats.virtual_bytes);
        self.open_fds.set(stats.open_fds);
        self.max_fds.set(stats.max_fds);
        self.start_time.set(stats.start_time);
        let mut families = self.cpu_seconds.collect();
        for gauge in [
            &self.resident_memory,
            &self.virtual_memory,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
        ] {
            families.extend(gauge.collect());
        }
        families
    }
}

/// One reading of `/proc/self`; a file that cannot be read leaves its values at 0.
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
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            stats.read_stat(&stat, boot_time());
        }
        // `VmRSS` is in kB whatever the page size (4 KiB, or 16 or 64 KiB on some arm64
        // kernels), where `/proc/self/stat` counts pages; both are the same counter.
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            stats.rss_bytes = vm_rss_bytes(&status).unwrap_or(0.0);
        }
        stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0.0, |d| d.count() as f64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            stats.max_fds = max_open_files(&limits).unwrap_or(0.0);
        }
        stats
    }

    /// Reads `/proc/self/stat` (proc(5)): utime, stime, starttime and vsize.
    fn read_stat(&mut self, stat: &str, boot_time: f64) {
        // The fields after the command name, which is in parentheses and may contain spaces.
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            return;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // `rest` starts at field 3 (state), so field N of proc(5) is at index N - 3.
        self.cpu_seconds = (field(11) + field(12)) / TICKS_PER_SECOND;
        self.start_time = boot_time + field(19) / TICKS_PER_SECOND;
        self.virtual_bytes = field(20);
    }
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
}

/// `VmRSS` of `/proc/self/status` in bytes (the file says kB, meaning KiB).
fn vm_rss_bytes(status: &str) -> Option<f64> {
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()?;
    Some(kib * 1024.0)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use prometheus::core::Collector;

    use super::{ProcessCollector, ProcessStats, max_open_files, vm_rss_bytes};

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 150 0 0 20 0 4 0 1000 \
                    8192000 300 18446744073709551615";
        let mut stats = ProcessStats::default();
        stats.read_stat(stat, 1_700_000_000.0);
        assert_eq!(stats.cpu_seconds, 4.0);
        assert_eq!(stats.start_time, 1_700_000_010.0);
        assert_eq!(stats.virtual_bytes, 8_192_000.0);
    }

    #[test]
    fn resident_memory_is_vm_rss_whatever_the_page_size() {
        let status =
            "Name:\trunnel\nVmPeak:\t   20000 kB\nVmRSS:\t    8192 kB\nRssAnon:\t    1000 kB\n";
        assert_eq!(vm_rss_bytes(status), Some(8192.0 * 1024.0));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        let read = ProcessStats::read();
        assert!(read.rss_bytes > 0.0, "{read:?}");
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[test]
    fn collecting_twice_keeps_one_family_per_metric() {
        let collector = ProcessCollector::new();
        let _ = collector.collect();
        let families = collector.collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
            ]
        );
        assert!(families.iter().all(|f| f.get_metric().len() == 1));
    }
}
