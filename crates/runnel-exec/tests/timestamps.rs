//! `FF_TIMESTAMPS` with the shell executor: every line of the trace, the runner's and the
//! script's, starts with its UTC time, stream and type.
//!
//! GitLab: gitlab-runner `common/buildlogger/internal/timestamper/timestamper.go`.

use runnel_exec::test_support::{PayloadBuilder, TestProject, run_to_end};
use runnel_exec::{JobStatus, ShellConfig, ShellExecutor};

#[tokio::test]
async fn every_trace_line_starts_with_its_time_and_stream() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(1, "build")
        .var("FF_TIMESTAMPS", "true")
        .masked_var("SECRET", "hunter2-secret")
        .script(&["echo one", "echo $SECRET", "printf 'no newline'"])
        .build();
    let mut shell = ShellExecutor::new(ShellConfig {
        shell: None,
        kill_grace: std::time::Duration::from_secs(2),
    });
    let ran = run_to_end(&mut shell, payload, project.context("1")).await;
    ran.assert_status(JobStatus::Success, "shell");
    let header =
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z 0[01]O[ +]").expect("regex");
    for line in ran.trace.lines() {
        assert!(header.is_match(line), "{line:?} in\n{}", ran.trace);
    }
    let script: Vec<&str> = ran
        .trace
        .lines()
        .filter(|l| l.get(27..31) == Some(" 01O"))
        .map(|l| &l[32..])
        .collect();
    assert!(script.contains(&"one"), "{script:?}");
    assert!(script.contains(&"no newline"), "{script:?}");
    assert!(script.contains(&"[MASKED]"), "{script:?}");
    assert!(!ran.trace.contains("hunter2"));
    assert!(
        ran.trace
            .lines()
            .any(|l| l.contains(" 00O Running with runnel")),
        "{}",
        ran.trace
    );
}
