//! The job's final variable list: runner-side variables around the payload's, expanded once.
//!
//! GitLab: gitlab-runner `common/build.go` `GetAllVariables` (the order: runner variables first so
//! the payload wins, then `CI_SHARED_ENVIRONMENT` and `CI_RUNNER_*` which the runner owns) and
//! `common/spec/variables.go` (`Expand`, file variables as paths under `RUNNER_TEMP_PROJECT_DIR`).

use std::path::{Path, PathBuf};

use runnel_api::{JobPayload, JobVariable};

use crate::expand::expand_value;

/// The version runnel reports as `CI_RUNNER_VERSION`.
pub const RUNNER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the runner side contributes to a job's variables.
#[derive(Debug, Clone)]
pub(crate) struct RunnerSide<'a> {
    pub(crate) builds_dir: &'a Path,
    pub(crate) project_dir: &'a Path,
    pub(crate) tmp_dir: &'a Path,
    pub(crate) runner_name: &'a str,
    pub(crate) runner_short_token: &'a str,
    pub(crate) concurrency: crate::context::Concurrency,
    pub(crate) shared: bool,
}

/// A file variable to write: its path and content.
pub(crate) type FileVariable = (PathBuf, String);

/// The job's variables after the runner added its own and expanded them.
#[derive(Debug, Clone, Default)]
pub struct JobVariables {
    list: Vec<JobVariable>,
    tmp_dir: PathBuf,
}

impl JobVariables {
    pub(crate) fn build(payload: &JobPayload, runner: &RunnerSide<'_>) -> Self {
        let has = |key: &str| payload.variables.iter().any(|v| v.key == key);
        let var = |key: &str, value: String| JobVariable {
            internal: true,
            ..JobVariable::new(key, value)
        };
        let mut list = Vec::with_capacity(payload.variables.len() + 16);
        list.push(var(
            "CI_RUNNER_SHORT_TOKEN",
            runner.runner_short_token.to_owned(),
        ));
        list.push(var(
            "CI_BUILDS_DIR",
            runner.builds_dir.to_string_lossy().into_owned(),
        ));
        list.push(var(
            "CI_PROJECT_DIR",
            runner.project_dir.to_string_lossy().into_owned(),
        ));
        list.push(var("CI_CONCURRENT_ID", runner.concurrency.id.to_string()));
        list.push(var(
            "CI_CONCURRENT_PROJECT_ID",
            runner.concurrency.project_id.to_string(),
        ));
        list.push(var("CI_SERVER", "yes".to_owned()));
        list.push(var("CI_JOB_STATUS", "running".to_owned()));
        list.push(var(
            "CI_JOB_TIMEOUT",
            job_timeout(payload).as_secs().to_string(),
        ));
        if !has("CI_SERVER_URL") {
            list.push(var("CI_SERVER_URL", "http://localhost".to_owned()));
        }
        list.extend(payload.variables.iter().cloned());
        list.push(var(
            if runner.shared {
                "CI_SHARED_ENVIRONMENT"
            } else {
                "CI_DISPOSABLE_ENVIRONMENT"
            },
            "true".to_owned(),
        ));
        list.push(var("CI_RUNNER_VERSION", RUNNER_VERSION.to_owned()));
        list.push(var("CI_RUNNER_REVISION", "runnel".to_owned()));
        list.push(var(
            "CI_RUNNER_EXECUTABLE_ARCH",
            format!("{}/{}", go_os(), go_arch()),
        ));
        if !has("CI_RUNNER_DESCRIPTION") {
            list.push(var("CI_RUNNER_DESCRIPTION", runner.runner_name.to_owned()));
        }
        if !has("CI_RUNNER_TAGS") {
            list.push(var("CI_RUNNER_TAGS", "[]".to_owned()));
        }
        list.push(var(
            "RUNNER_TEMP_PROJECT_DIR",
            runner.tmp_dir.to_string_lossy().into_owned(),
        ));
        let unexpanded = Self {
            list,
            tmp_dir: runner.tmp_dir.to_owned(),
        };
        let expanded = unexpanded
            .list
            .iter()
            .map(|variable| {
                let mut variable = variable.clone();
                if !variable.raw {
                    variable.value = unexpanded.expand(&variable.value);
                }
                variable
            })
            .collect();
        Self {
            list: expanded,
            tmp_dir: runner.tmp_dir.to_owned(),
        }
    }

    /// Expands `$VAR` references in `value` against these variables (gitlab-runner `ExpandValue`);
    /// a file variable expands to its file's path.
    pub fn expand(&self, value: &str) -> String {
        expand_value(value, |name| {
            let variable = self.list.iter().rev().find(|v| v.key == name)?;
            Some(if variable.file {
                self.tmp_dir
                    .join(&variable.key)
                    .to_string_lossy()
                    .into_owned()
            } else {
                variable.value.clone()
            })
        })
    }

    /// The value of the last variable named `key` (for a file variable: its content).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.list
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }

    /// Whether `key` is set to a true value (gitlab-runner `Variables.Bool`: `true`, `1`, …).
    pub fn bool(&self, key: &str) -> bool {
        matches!(
            self.get(key).map(str::to_ascii_lowercase).as_deref(),
            Some("1" | "t" | "true")
        )
    }

    /// The variables in order, expanded.
    pub fn iter(&self) -> impl Iterator<Item = &JobVariable> {
        self.list.iter()
    }

    /// The values to mask: masked variables after expansion, trimmed, de-duplicated.
    pub(crate) fn masked_phrases(&self) -> Vec<&str> {
        let mut phrases: Vec<&str> = self
            .list
            .iter()
            .filter(|v| v.masked)
            .map(|v| v.value.trim())
            .filter(|v| !v.is_empty())
            .collect();
        phrases.sort_unstable();
        phrases.dedup();
        phrases
    }

    /// The `(key, value)` pairs to export, last one per key winning, file variables as
    /// `(key, path, content)` to write first.
    pub(crate) fn exports(&self) -> (Vec<(String, String)>, Vec<FileVariable>) {
        let mut exports: Vec<(String, String)> = Vec::with_capacity(self.list.len());
        let mut files = Vec::new();
        for variable in &self.list {
            exports.retain(|(key, _)| key != &variable.key);
            if variable.file {
                let path = self.tmp_dir.join(&variable.key);
                files.retain(|(p, _): &(PathBuf, String)| p != &path);
                files.push((path.clone(), variable.value.clone()));
                exports.push((variable.key.clone(), path.to_string_lossy().into_owned()));
            } else {
                exports.push((variable.key.clone(), variable.value.clone()));
            }
        }
        (exports, files)
    }
}

#[cfg(test)]
impl JobVariables {
    /// Variables as given, unexpanded, for unit tests.
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            list: pairs
                .iter()
                .map(|(key, value)| JobVariable::new(*key, *value))
                .collect(),
            tmp_dir: PathBuf::new(),
        }
    }
}

/// The job timeout: `runner_info.timeout`, 0 meaning gitlab-runner's default of two hours
/// (`common/consts.go` `DefaultTimeout` = 7200 s).
pub(crate) fn job_timeout(payload: &JobPayload) -> std::time::Duration {
    let seconds = if payload.runner_info.timeout == 0 {
        7200
    } else {
        payload.runner_info.timeout
    };
    std::time::Duration::from_secs(seconds)
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        arch => arch,
    }
}
