//! The settings of the custom executor (`[runners.custom]`) and the JSON `config_exec` prints.
//!
//! GitLab: gitlab-runner `common/config.go` `CustomConfig`, `executors/custom/config.go` and
//! `consts.go` (a timeout that is unset, zero or negative is the default: one hour for
//! `config_exec`, `prepare_exec` and `cleanup_exec`, ten minutes for `graceful_kill_timeout`, ten
//! seconds for `force_kill_timeout`), `executors/custom/api/config.go` (`ConfigExecOutput`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// gitlab-runner's default `config_exec_timeout`, `prepare_exec_timeout` and
/// `cleanup_exec_timeout`.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// gitlab-runner's default `graceful_kill_timeout`.
pub const DEFAULT_GRACEFUL_KILL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// gitlab-runner's default `force_kill_timeout`.
pub const DEFAULT_FORCE_KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// One driver program: the executable and the arguments put before runnel's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The executable (`config_exec`, …), a path or a name on `PATH`.
    pub exec: String,
    /// Its arguments (`config_args`, …).
    pub args: Vec<String>,
}

/// `[runners.custom]` as the executor uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomConfig {
    /// `config_exec` and `config_args`.
    pub config: Option<Program>,
    /// `config_exec_timeout`.
    pub config_exec_timeout: Duration,
    /// `prepare_exec` and `prepare_args`.
    pub prepare: Option<Program>,
    /// `prepare_exec_timeout`.
    pub prepare_exec_timeout: Duration,
    /// `run_exec` and `run_args` (required).
    pub run: Program,
    /// `cleanup_exec` and `cleanup_args`.
    pub cleanup: Option<Program>,
    /// `cleanup_exec_timeout`.
    pub cleanup_exec_timeout: Duration,
    /// `graceful_kill_timeout`: SIGTERM to SIGKILL.
    pub graceful_kill_timeout: Duration,
    /// `force_kill_timeout`: SIGKILL to giving the process up.
    pub force_kill_timeout: Duration,
    /// Where each job's temporary directory (the stage scripts, `JOB_RESPONSE_FILE`, the record
    /// the start-up sweep reads) is made.
    pub state_dir: PathBuf,
    /// Time between retries of a failed `config_exec` + `prepare_exec` (gitlab-runner: 3 s).
    pub preparation_retry_interval: Duration,
    /// The helper stages (sources, caches, artifacts) run by the driver through the `runnel`
    /// binary, as gitlab-runner's scripts call `gitlab-runner`; `None`: runnel does them on
    /// this host, in the builds directory the driver's environment must then share.
    pub helper: Option<crate::helper_stage::RemoteHelper>,
}

impl CustomConfig {
    /// A configuration with `run_exec` only, every timeout at gitlab-runner's default.
    pub fn new(run_exec: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            config: None,
            config_exec_timeout: DEFAULT_EXEC_TIMEOUT,
            prepare: None,
            prepare_exec_timeout: DEFAULT_EXEC_TIMEOUT,
            run: Program {
                exec: run_exec.into(),
                args: Vec::new(),
            },
            cleanup: None,
            cleanup_exec_timeout: DEFAULT_EXEC_TIMEOUT,
            graceful_kill_timeout: DEFAULT_GRACEFUL_KILL_TIMEOUT,
            force_kill_timeout: DEFAULT_FORCE_KILL_TIMEOUT,
            state_dir: state_dir.into(),
            preparation_retry_interval: PREPARATION_RETRY_INTERVAL,
            helper: None,
        }
    }

    /// A timeout in seconds from `config.toml`: unset, zero or negative is `default`
    /// (gitlab-runner `getDuration`).
    pub fn seconds(value: Option<i64>, default: Duration) -> Duration {
        match value {
            Some(seconds) if seconds > 0 => Duration::from_secs(seconds.unsigned_abs()),
            _ => default,
        }
    }
}

/// gitlab-runner `common/build.go` `PreparationRetryInterval`.
pub const PREPARATION_RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// What `config_exec` prints on stdout. Unknown keys are ignored, as gitlab-runner does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConfigOutput {
    /// The builds directory root of the job.
    pub builds_dir: Option<String>,
    /// The local cache directory.
    pub cache_dir: Option<String>,
    /// Whether concurrent jobs share the builds directory.
    pub builds_dir_is_shared: Option<bool>,
    /// The host name recorded for the job.
    pub hostname: Option<String>,
    /// Printed in the `Using Custom executor with driver …` line.
    pub driver: Option<DriverInfo>,
    /// Variables for the environment of every later driver call (not of the job).
    pub job_env: Option<BTreeMap<String, String>>,
    /// The shell the stage scripts are written for.
    pub shell: Option<String>,
}

/// `driver` of [`ConfigOutput`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DriverInfo {
    /// The driver's name.
    pub name: Option<String>,
    /// The driver's version.
    pub version: Option<String>,
}

impl ConfigOutput {
    /// Parses `config_exec`'s stdout; empty output is no configuration (gitlab-runner
    /// `dynamicConfig`).
    pub fn parse(stdout: &[u8]) -> Result<Self, serde_json::Error> {
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(stdout)
    }

    /// The line the trace shows (gitlab-runner `logStartupMessage`).
    pub fn startup_line(&self) -> String {
        let usage = "Using Custom executor";
        match self
            .driver
            .as_ref()
            .and_then(|d| d.name.as_ref().map(|n| (n, &d.version)))
        {
            None => format!("{usage}..."),
            Some((name, None)) => format!("{usage} with driver {name}..."),
            Some((name, Some(version))) => format!("{usage} with driver {name} {version}..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ConfigOutput, CustomConfig, DEFAULT_EXEC_TIMEOUT};

    #[test]
    fn config_output_keys_and_startup_line() {
        let out = ConfigOutput::parse(
            br#"{"builds_dir": "/b", "cache_dir": "/c", "builds_dir_is_shared": true,
                "hostname": "h", "driver": {"name": "slurm", "version": "v1"},
                "job_env": {"A": "1"}, "shell": "bash", "extra": 1}"#,
        )
        .expect("valid");
        assert_eq!(out.builds_dir.as_deref(), Some("/b"));
        assert_eq!(out.cache_dir.as_deref(), Some("/c"));
        assert_eq!(out.builds_dir_is_shared, Some(true));
        assert_eq!(out.hostname.as_deref(), Some("h"));
        assert_eq!(
            out.job_env
                .as_ref()
                .and_then(|e| e.get("A"))
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(out.shell.as_deref(), Some("bash"));
        assert_eq!(
            out.startup_line(),
            "Using Custom executor with driver slurm v1..."
        );
        let name_only = ConfigOutput::parse(br#"{"driver": {"name": "d"}}"#).expect("valid");
        assert_eq!(
            name_only.startup_line(),
            "Using Custom executor with driver d..."
        );
        assert_eq!(
            ConfigOutput::parse(b" \n").expect("empty").startup_line(),
            "Using Custom executor..."
        );
        assert!(ConfigOutput::parse(b"builds_dir=/b").is_err());
    }

    #[test]
    fn unset_zero_and_negative_timeouts_are_the_default() {
        assert_eq!(
            CustomConfig::seconds(None, DEFAULT_EXEC_TIMEOUT),
            DEFAULT_EXEC_TIMEOUT
        );
        assert_eq!(
            CustomConfig::seconds(Some(0), DEFAULT_EXEC_TIMEOUT),
            DEFAULT_EXEC_TIMEOUT
        );
        assert_eq!(
            CustomConfig::seconds(Some(-5), DEFAULT_EXEC_TIMEOUT),
            DEFAULT_EXEC_TIMEOUT
        );
        assert_eq!(
            CustomConfig::seconds(Some(7), DEFAULT_EXEC_TIMEOUT),
            Duration::from_secs(7)
        );
    }
}
