//! A standalone fake GitLab for `bench/runner` (nothing real can run here: GitLab itself).
//!
//! Prints `url <url>` and `token <glrt-…>` for each runner asked for on the command line
//! (`fake_gitlab <runners>`), then reads commands on stdin, one per line:
//! - `job <shell line>`: queues a job; prints `queued <id>`.
//! - `wait <id>`: waits for its final status; prints `done <id> <state> pickup_ms=<ms>
//!   total_ms=<ms> trace_bytes=<n>` where pickup is from queueing to the runner taking it.

use std::collections::HashMap;
use std::time::Instant;

use runnel_runner::test_support::{FakeGitLab, JobSpec};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runners: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let fake = FakeGitLab::start().await;
    println!("url {}", fake.url());
    for _ in 0..runners {
        println!("token {}", fake.create_runner());
    }
    let mut queued: HashMap<u64, Instant> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(script) = line.strip_prefix("job ") {
            let id = fake.add_job(JobSpec::script(&[script]));
            queued.insert(id, Instant::now());
            println!("queued {id}");
        } else if let Some(id) = line
            .strip_prefix("wait ")
            .and_then(|id| id.trim().parse::<u64>().ok())
        {
            let start = queued.get(&id).copied().unwrap_or_else(Instant::now);
            fake.wait_for(|fake| fake.job_is(id, |job| job.assignments > 0))
                .await;
            let pickup = start.elapsed();
            let job = fake.wait_for_final(id).await;
            println!(
                "done {id} {:?} pickup_ms={} total_ms={} trace_bytes={}",
                job.state,
                pickup.as_millis(),
                start.elapsed().as_millis(),
                job.trace.len()
            );
        }
    }
}
