//! Where a running job is, as `gitlab_runner_jobs` labels it: `state`, `stage` (the build
//! stage) and `executor_stage` (GitLab: gitlab-runner `commands/builds_helper.go`
//! `newStatePermutationFromBuild`, `common/build.go` `CurrentState`/`CurrentStage`).
//!
//! The tracker moves one job between series when a build stage starts: once per stage, never
//! per trace byte, so the trace path does not pay for it.

use std::sync::{Arc, Mutex};

use super::{Metrics, RunnerLabels};

/// The labels of one job's `gitlab_runner_jobs` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStage {
    /// `pending` while the executor is prepared, then `running` (gitlab-runner's
    /// `BuildRunStatePending` until `Build.run`, then `BuildRunRuntimeRunning`).
    pub state: &'static str,
    /// The build stage (`prepare_executor`, `get_sources`, `step_script`, …); empty before the
    /// first one.
    pub stage: String,
    /// What the executor reports (`common/executor.go` `ExecutorStage`).
    pub executor_stage: &'static str,
}

impl JobStage {
    /// A job just received, before its first build stage.
    pub fn received() -> Self {
        Self {
            state: "pending",
            stage: String::new(),
            executor_stage: "",
        }
    }

    /// A job of `executor` in `build_stage`. gitlab-runner's executors report `prepare` from
    /// `AbstractExecutor.Prepare`; the Docker executor reports `docker_run` once it runs
    /// stages (`executors/docker` `Run`); the shell executor's `Run` sets none, so it stays
    /// `prepare` until the job ends.
    pub fn of(executor: &str, build_stage: &str) -> Self {
        let preparing = build_stage == "prepare_executor";
        Self {
            state: if preparing { "pending" } else { "running" },
            stage: build_stage.to_owned(),
            executor_stage: match executor {
                "docker" if !preparing => "docker_run",
                _ => "prepare",
            },
        }
    }
}

/// Keeps one job counted in the series of its current stage until it finishes (or is
/// dropped).
#[derive(Debug)]
pub struct JobStages {
    metrics: Arc<Metrics>,
    runner: RunnerLabels,
    executor: String,
    /// `None` once the job finished.
    current: Mutex<Option<JobStage>>,
}

impl JobStages {
    /// Counts a job of `runner` received now.
    pub fn start(metrics: Arc<Metrics>, runner: RunnerLabels, executor: String) -> Arc<Self> {
        let current = JobStage::received();
        metrics.job_state(&runner, &current, 1);
        Arc::new(Self {
            metrics,
            runner,
            executor,
            current: Mutex::new(Some(current)),
        })
    }

    /// The job entered `build_stage`.
    pub fn enter(&self, build_stage: &str) {
        let next = JobStage::of(&self.executor, build_stage);
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(previous) = current.as_ref().filter(|c| **c != next) else {
            return;
        };
        self.metrics.job_state(&self.runner, &next, 1);
        self.metrics.job_state(&self.runner, previous, -1);
        *current = Some(next);
    }

    /// The job is over: it leaves `gitlab_runner_jobs`.
    pub fn finish(&self) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(last) = current.take() {
            self.metrics.job_state(&self.runner, &last, -1);
        }
    }
}

impl Drop for JobStages {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::JobStage;

    #[test]
    fn stages_are_labelled_as_gitlab_runner_labels_them() {
        let docker = JobStage::of("docker", "step_script");
        assert_eq!(
            (docker.state, docker.stage.as_str(), docker.executor_stage),
            ("running", "step_script", "docker_run")
        );
        let preparing = JobStage::of("docker", "prepare_executor");
        assert_eq!(
            (preparing.state, preparing.executor_stage),
            ("pending", "prepare")
        );
        let shell = JobStage::of("shell", "get_sources");
        assert_eq!((shell.state, shell.executor_stage), ("running", "prepare"));
    }
}
