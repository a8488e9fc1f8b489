//! The Slurm driver of `examples/custom-slurm` against a real single-node Slurm cluster
//! (`scripts/start-slurm.sh`; `.ci/run` starts it): stages run as Slurm job steps, a cancel
//! leaves no job in `squeue`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use runnel_exec::custom::{CustomConfig, CustomExecutor, Program};
use runnel_exec::test_support::{
    PayloadBuilder, TestProject, run_stopped_once_started, run_to_end,
};
use runnel_exec::{JobContext, JobStatus};

/// Whether a Slurm controller answers; with `CI=true` a missing one fails the test.
fn slurm_available() -> bool {
    let answer = Command::new("scontrol").arg("ping").output();
    let reason = match answer {
        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("UP") => {
            return true;
        }
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(err) => format!("`scontrol`: {err}"),
    };
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("no Slurm cluster ({reason}); .ci/run starts one with scripts/start-slurm.sh");
    }
    println!("SKIPPED: no Slurm cluster ({reason}); scripts/start-slurm.sh starts one");
    false
}

fn driver(name: &str) -> Program {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/custom-slurm")
        .join(name);
    Program {
        exec: path.to_string_lossy().into_owned(),
        args: Vec::new(),
    }
}

/// The configuration of `examples/custom-slurm/config.toml`, with the job directories in the
/// test project (on this host, which is the cluster's node).
fn slurm_config(project: &TestProject) -> CustomConfig {
    let mut config = CustomConfig::new("", project.path().join(".runnel/custom"));
    config.config = Some(driver("config.sh"));
    config.prepare = Some(driver("prepare.sh"));
    config.run = driver("run.sh");
    config.cleanup = Some(driver("cleanup.sh"));
    config.graceful_kill_timeout = Duration::from_secs(30);
    config.force_kill_timeout = Duration::from_secs(10);
    config
}

/// The Slurm jobs of this test process's custom executor jobs with CI job id `id`.
fn slurm_jobs(id: u64) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format", "%i %j %T"])
        .output()
        .expect("squeue runs");
    let marker = format!("-{id}-job-{id}-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&marker))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn slurm_driver_runs_each_stage_as_a_slurm_job_step() {
    if !slurm_available() {
        return;
    }
    let project = TestProject::new();
    project.write("data.txt", "from the working tree\n");
    let payload = PayloadBuilder::new(51, "slurm")
        .var("CI_JOB_ID", "51")
        .script(&[
            "echo \"slurm job ${SLURM_JOB_ID:-none} step ${SLURM_STEP_ID:-none}\"",
            "cat data.txt",
        ])
        .after_script(&["echo after=$CI_JOB_STATUS"])
        .build();
    let ctx = project.context("51");
    let mut executor = CustomExecutor::new(slurm_config(&project));
    let ran = run_to_end(&mut executor, payload, ctx).await;
    ran.assert_status(JobStatus::Success, "slurm");
    ran.assert_output_contains("Using Custom executor with driver slurm ", "slurm");
    ran.assert_output_contains("from the working tree", "slurm");
    ran.assert_output_contains("after=success", "slurm");
    assert!(
        !ran.output.contains("slurm job none"),
        "the script ran outside Slurm: {}",
        ran.output
    );
    assert_eq!(slurm_jobs(51), Vec::<String>::new());

    // A failing script is a script failure, not a Slurm failure.
    let failing = PayloadBuilder::new(52, "slurm-fails")
        .var("CI_JOB_ID", "52")
        .script(&["exit 5"])
        .build();
    let mut executor = CustomExecutor::new(slurm_config(&project));
    let ran = run_to_end(&mut executor, failing, project.context("52")).await;
    ran.assert_status(JobStatus::Failed, "slurm");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(runnel_api::FailureReason::ScriptFailure),
        "{}",
        ran.output
    );
}

#[tokio::test]
async fn slurm_cancel_leaves_no_job_in_squeue() {
    if !slurm_available() {
        return;
    }
    let project = TestProject::new();
    let payload = PayloadBuilder::new(53, "slurm-cancel")
        .var("CI_JOB_ID", "53")
        .script(&[
            "echo \"in slurm job ${SLURM_JOB_ID:-none}\"",
            "sleep 1000 &",
            "echo started",
            "sleep 1000",
        ])
        .build();
    let ctx: JobContext = project.context("53");
    let abort = ctx.abort.clone();
    let mut executor =
        CustomExecutor::new(slurm_config(&project)).with_job_control(abort.clone(), None);
    let (outcome, lines) = run_stopped_once_started(&mut executor, payload, ctx, abort).await;
    assert_eq!(outcome.status, JobStatus::Canceled, "{lines:?}");
    let job_line = lines
        .iter()
        .find(|l| l.starts_with("in slurm job "))
        .expect("the script printed its Slurm job");
    assert!(!job_line.ends_with("none"), "the script ran outside Slurm");
    assert_eq!(slurm_jobs(53), Vec::<String>::new(), "scancel removed it");
}
