//! Timeouts and cancellation kill the whole process tree.

use runnel_api::FailureReason;
use runnel_exec::JobStatus;
use runnel_exec::test_support::{PayloadBuilder, TestProject, run_stopped_once_started};

use crate::{executors, process_alive, project_dir, read_pid, run};

#[tokio::test]
async fn timeout_kills_background_children() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(20, "timeout")
            .timeout(1)
            .script(&["sleep 1000 & echo $! > bg.pid", "sleep 1000"])
            .after_script(&["echo after=$CI_JOB_STATUS"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        assert_eq!(
            ran.outcome.failure_reason,
            Some(FailureReason::JobExecutionTimeout),
            "{name}"
        );
        assert!(
            ran.trace.contains("execution took longer than 1s seconds"),
            "{name}: {}",
            ran.trace
        );
        // GitLab: gitlab-runner `common/build.go` `run` cancels the whole build at the job's
        // deadline, so after_script does not run (only RUNNER_SCRIPT_TIMEOUT leaves it time).
        assert!(
            !ran.output.contains("after="),
            "{name}: after_script ran after the job timeout: {}",
            ran.output
        );
        assert_eq!(
            ran.trace.matches("Job failed").count(),
            1,
            "{name}: {}",
            ran.trace
        );
        let pid = read_pid(&project_dir(&project).join("bg.pid"));
        assert!(
            !process_alive(pid),
            "{name}: background child {pid} survived"
        );
    }
}

#[tokio::test]
async fn finished_job_leaves_no_background_children() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(21, "bg")
            .script(&["sleep 1000 & echo $! > bg.pid", "echo done"])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        let pid = read_pid(&project_dir(&project).join("bg.pid"));
        assert!(
            !process_alive(pid),
            "{name}: background child {pid} survived"
        );
    }
}

#[tokio::test]
async fn cancel_kills_the_tree_and_runs_after_script() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(22, "cancel")
            .script(&[
                "sleep 1000 & echo $! > bg.pid",
                "echo started",
                "sleep 1000",
            ])
            .after_script(&["echo after=$CI_JOB_STATUS"])
            .build();
        let ctx = project.context("22");
        let cancel = ctx.cancel.clone();
        let (outcome, lines) =
            run_stopped_once_started(make().as_mut(), payload, ctx, cancel).await;
        assert_eq!(outcome.status, JobStatus::Canceled, "{name}");
        assert!(
            lines.iter().any(|l| l == "after=canceled"),
            "{name}: {lines:?}"
        );
        let pid = read_pid(&project_dir(&project).join("bg.pid"));
        assert!(
            !process_alive(pid),
            "{name}: background child {pid} survived"
        );
    }
}

#[tokio::test]
async fn abort_skips_after_script() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(23, "abort")
            .script(&["echo started", "sleep 1000"])
            .after_script(&["echo after-ran"])
            .build();
        let ctx = project.context("23");
        let abort = ctx.abort.clone();
        let (outcome, lines) = run_stopped_once_started(make().as_mut(), payload, ctx, abort).await;
        assert_eq!(outcome.status, JobStatus::Canceled, "{name}");
        assert!(!lines.iter().any(|l| l == "after-ran"), "{name}");
    }
}

#[tokio::test]
async fn children_ignoring_sigterm_are_killed_after_the_grace_period() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(24, "stubborn")
            .timeout(1)
            .script(&[
                "(trap '' TERM; exec sleep 1000) > /dev/null 2>&1 & echo $! > bg.pid",
                "sleep 1000",
            ])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(
            ran.outcome.failure_reason,
            Some(FailureReason::JobExecutionTimeout),
            "{name}"
        );
        let pid = read_pid(&project_dir(&project).join("bg.pid"));
        assert!(
            !process_alive(pid),
            "{name}: SIGTERM-ignoring child {pid} survived"
        );
    }
}
