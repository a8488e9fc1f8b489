//! The shell executor outside the conformance suite: what happens when it cannot prepare.

use std::path::PathBuf;
use std::time::Duration;

use runnel_api::FailureReason;
use runnel_exec::test_support::{PayloadBuilder, Ran, TestProject, collect_events, run_to_end};
use runnel_exec::{ExecError, JobEvent, JobStatus, ShellConfig, ShellExecutor, run_job_with};
use tokio::sync::mpsc;

#[tokio::test]
async fn missing_shell_is_a_system_failure_with_a_finished_event_and_a_trace() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(1, "no-shell")
        .script(&["echo never"])
        .build();
    let ctx = project.context("1");
    let log = ctx.trace_log.clone().expect("a trace log");
    let mut executor = ShellExecutor::new(ShellConfig {
        shell: Some(PathBuf::from("/nonexistent/bash")),
        kill_grace: Duration::from_secs(1),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let result = run_job_with(&mut executor, payload, ctx, tx).await;
    assert!(
        matches!(
            result,
            Err(ExecError::Prepare {
                executor: "shell",
                ..
            })
        ),
        "{result:?}"
    );
    let events = collect_events(rx).await;
    let Some(JobEvent::Finished { outcome, .. }) = events.last() else {
        panic!("no Finished event")
    };
    assert_eq!(outcome.status, JobStatus::Failed);
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    let trace = std::fs::read_to_string(log).expect("the trace is written");
    assert_eq!(
        trace.matches("section_start:").count(),
        trace.matches("section_end:").count(),
        "{trace}"
    );
    assert!(
        trace.contains("Job failed (system failure): failed to prepare the `shell` executor: the shell `/nonexistent/bash` is not an executable file"),
        "{trace}"
    );
}

#[tokio::test]
async fn sh_runs_the_same_scripts() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(2, "sh")
        .var("GREETING", "hi")
        .script(&["echo $GREETING from sh", "false", "echo unreachable"])
        .after_script(&["echo status=$CI_JOB_STATUS"])
        .build();
    let mut executor = ShellExecutor::new(ShellConfig {
        shell: Some(PathBuf::from("/bin/sh")),
        kill_grace: Duration::from_secs(1),
    });
    let Ran {
        outcome, output, ..
    } = run_to_end(&mut executor, payload, project.context("2")).await;
    assert_eq!(outcome.exit_code, Some(1), "{output}");
    assert!(output.contains("\nhi from sh"), "{output}");
    assert!(!output.contains("\nunreachable"), "{output}");
    assert!(output.contains("status=failed"), "{output}");
}

#[tokio::test]
async fn cache_restore_keeps_file_times() {
    use runnel_api::{CachePolicy, When};
    let project = TestProject::new();
    let fill = PayloadBuilder::new(3, "fill")
        .script(&[
            "mkdir -p vendor",
            "echo x > vendor/lib.txt",
            "touch -d @1000000000 vendor/lib.txt",
        ])
        .cache("times", &["vendor/"], CachePolicy::Push, When::OnSuccess)
        .build();
    run_to_end(&mut ShellExecutor::default(), fill, project.context("3")).await;
    let read = PayloadBuilder::new(4, "read")
        .script(&["echo mtime=$(stat -c %Y vendor/lib.txt)"])
        .cache("times", &["vendor/"], CachePolicy::Pull, When::OnSuccess)
        .build();
    let ran = run_to_end(&mut ShellExecutor::default(), read, project.context("4")).await;
    ran.assert_output_contains("\nmtime=1000000000", "shell");
}

#[tokio::test]
async fn sha256_working_trees_get_a_usable_git_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    git(&["init", "-q", "--object-format=sha256"]);
    std::fs::write(dir.path().join("a.txt"), "a").expect("write");
    git(&["add", "a.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    let head = git(&["rev-parse", "HEAD"]);
    let tree = runnel_exec::WorkingTree::new(dir.path());
    let mut ctx = runnel_exec::JobContext::local(dir.path(), tree);
    ctx.trace_log = Some(dir.path().join(".runnel/logs/1.log"));
    let payload = PayloadBuilder::new(1, "sha256")
        .script(&["git rev-parse HEAD", "git status --porcelain"])
        .build();
    let (tx, rx) = mpsc::unbounded_channel();
    let outcome = runnel_exec::run_job(payload, ctx, tx).await.expect("runs");
    let output = runnel_exec::test_support::output_text(&collect_events(rx).await);
    assert_eq!(outcome.status, JobStatus::Success, "{output}");
    assert!(output.contains(&format!("\n{head}")), "{output}");
}
