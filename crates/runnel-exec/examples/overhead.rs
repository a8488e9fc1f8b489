//! Measures the per-job overhead of `run_job` beyond the shell itself: runs a trivial job many
//! times and compares it with spawning `bash` directly.
//! Run: `cargo run -p runnel-exec --features test-support --release --example overhead`.

use std::time::{Duration, Instant};

use runnel_exec::test_support::{PayloadBuilder, TestProject};
use tokio::sync::mpsc;

const RUNS: u32 = 50;

#[tokio::main]
async fn main() {
    let project = TestProject::new();
    for i in 0..20 {
        project.write(&format!("src/file{i}.txt"), "content");
    }
    let mut job_total = Duration::ZERO;
    for id in 0..RUNS {
        let payload = PayloadBuilder::new(u64::from(id) + 1, "trivial")
            .script(&["true"])
            .build();
        let mut ctx = project.context("overhead");
        ctx.trace_log = None;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let start = Instant::now();
        let outcome = runnel_exec::run_job(payload, ctx, tx)
            .await
            .expect("the job runs");
        job_total += start.elapsed();
        assert_eq!(outcome.status, runnel_exec::JobStatus::Success);
        drain.await.expect("drained");
    }
    let mut shell_total = Duration::ZERO;
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = tokio::process::Command::new("bash")
            .args(["--noprofile", "--norc", "-c", "true"])
            .status()
            .await
            .expect("bash runs");
        shell_total += start.elapsed();
        assert!(status.success());
    }
    let job = job_total / RUNS;
    let shell = shell_total / RUNS;
    println!(
        "trivial job: {job:?} per run; bare bash: {shell:?}; overhead: {:?}",
        job.saturating_sub(shell)
    );
}
