//! Stage attempts (`GET_SOURCES_ATTEMPTS`, `RESTORE_CACHE_ATTEMPTS`,
//! `ARTIFACT_DOWNLOAD_ATTEMPTS`), `CACHE_COMPRESSION_FORMAT` and `CACHE_COMPRESSION_LEVEL` with the
//! shell executor.
//!
//! GitLab: gitlab-runner `common/build.go` `attemptExecuteStage` and `executePrepareScripts`,
//! `shells/abstract.go` (a failed cache extraction is a warning inside a successful stage, so it
//! is never retried), `commands/helpers/cache_archiver.go` (`tarzstd`).

use runnel_api::{CachePolicy, FailureReason, When};
use runnel_exec::test_support::{PayloadBuilder, TestProject, collect_events, run_to_end};
use runnel_exec::{ExecError, JobStatus, ShellConfig, ShellExecutor, run_job_with};

fn shell() -> ShellExecutor {
    ShellExecutor::new(ShellConfig {
        shell: None,
        kill_grace: std::time::Duration::from_secs(2),
    })
}

/// The trace without colours, section times or the host name: what a reader sees, stable.
fn readable(trace: &str) -> String {
    let colours = regex::Regex::new(r"\x1b\[[0-9;]*[mK]").expect("regex");
    let sections = regex::Regex::new(r"section_(start|end):\d+:(\S+?)\r").expect("regex");
    let text = colours.replace_all(trace, "");
    let text = sections.replace_all(&text, "[$1 $2] ");
    let temporary = regex::Regex::new(r"/tmp/\.tmp\w+").expect("regex");
    let text = temporary.replace_all(&text, "[TMP]");
    text.lines()
        .filter(|line| !line.starts_with("Running on ") && !line.starts_with("Running with "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hook that fails until it has run `fails` times, counting in `counter` (outside the project
/// directory, which `clear_worktree` empties).
fn flaky_hook(counter: &std::path::Path, fails: u32) -> String {
    let counter = counter.display();
    format!(
        "n=$(cat '{counter}' 2>/dev/null || echo 0); echo $((n+1)) > '{counter}'; \
         echo \"get_sources try $((n+1))\"; test $n -ge {fails}"
    )
}

#[tokio::test]
async fn get_sources_is_attempted_again_until_it_succeeds() {
    let project = TestProject::new();
    project.write("README", "hello\n");
    let counter = project.path().join("tries");
    let hook = flaky_hook(&counter, 2);
    let payload = PayloadBuilder::new(1, "build")
        .var("GET_SOURCES_ATTEMPTS", "3")
        .var("FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY", "false")
        .hook("pre_get_sources_script", &[&hook])
        .script(&["cat README"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("1")).await;
    ran.assert_status(JobStatus::Success, "shell");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "3"
    );
    let trace = readable(&ran.trace);
    assert_eq!(trace.matches("[start get_sources]").count(), 3, "{trace}");
    assert_eq!(
        trace.matches("[start clear_worktree]").count(),
        1,
        "{trace}"
    );
    assert!(!trace.contains("Retrying in"), "{trace}");
    let excerpt: String = trace
        .lines()
        .skip_while(|l| !l.contains("[start get_sources]"))
        .take_while(|l| !l.contains("step_script"))
        .filter(|l| !l.starts_with("$ n=$(cat"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(excerpt);
}

#[tokio::test]
async fn get_sources_fails_the_job_when_every_attempt_fails() {
    let project = TestProject::new();
    let counter = project.path().join("tries");
    let hook = flaky_hook(&counter, 5);
    let payload = PayloadBuilder::new(2, "build")
        .var("GET_SOURCES_ATTEMPTS", "2")
        .var("FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY", "0")
        .hook("pre_get_sources_script", &[&hook])
        .script(&["echo never"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("2")).await;
    ran.assert_status(JobStatus::Failed, "shell");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::ScriptFailure)
    );
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "2"
    );
    assert!(!ran.output.contains("never"), "{}", ran.output);
}

#[tokio::test]
async fn attempts_outside_one_to_ten_are_a_system_failure_before_the_stage_runs() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(3, "build")
        .var("GET_SOURCES_ATTEMPTS", "11")
        .script(&["echo never"])
        .build();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let result = run_job_with(&mut shell(), payload, project.context("3"), tx).await;
    let events = collect_events(rx).await;
    let err = result.expect_err("a system failure");
    assert!(matches!(
        err,
        ExecError::Attempts {
            stage: "get_sources"
        }
    ));
    let output = runnel_exec::test_support::output_text(&events);
    assert!(
        output.contains(
            "Job failed (system failure): number of attempts out of the range [1, 10] for stage: get_sources"
        ),
        "{output}"
    );
    assert!(!output.contains("Getting source"), "{output}");
}

#[tokio::test]
async fn a_bad_attempt_count_warns_and_uses_one_attempt() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(4, "build")
        .var("RESTORE_CACHE_ATTEMPTS", "many")
        .script(&["echo ran"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("4")).await;
    ran.assert_status(JobStatus::Success, "shell");
    ran.assert_output_contains(
        "WARNING: RESTORE_CACHE_ATTEMPTS: expected int got \"many\", using default value: 1",
        "shell",
    );
}

#[tokio::test]
async fn a_corrupt_cache_is_a_warning_and_is_not_retried() {
    let project = TestProject::new();
    let archive = project.path().join(".runnel/cache/deps/cache.zip");
    std::fs::create_dir_all(archive.parent().expect("a parent")).expect("mkdir");
    std::fs::write(&archive, b"this is not a zip archive").expect("write");
    let payload = PayloadBuilder::new(5, "build")
        .var("RESTORE_CACHE_ATTEMPTS", "3")
        .var("FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY", "false")
        .cache("deps", &["vendor/"], CachePolicy::Pull, When::OnSuccess)
        .script(&["echo job ran"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("5")).await;
    ran.assert_status(JobStatus::Success, "shell");
    let trace = readable(&ran.trace);
    assert_eq!(
        trace.matches("Checking cache for deps...").count(),
        1,
        "{trace}"
    );
    assert_eq!(
        trace.matches("WARNING: Failed to extract cache").count(),
        1,
        "{trace}"
    );
    ran.assert_output_contains("job ran", "shell");
}

#[tokio::test]
async fn a_corrupt_artifact_archive_is_downloaded_again_then_fails_the_job() {
    let project = TestProject::new();
    let archive = project.path().join(".runnel/artifacts/1/10/artifacts.zip");
    std::fs::create_dir_all(archive.parent().expect("a parent")).expect("mkdir");
    std::fs::write(&archive, b"truncated").expect("write");
    let payload = PayloadBuilder::new(11, "test")
        .var("ARTIFACT_DOWNLOAD_ATTEMPTS", "2")
        .var("FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY", "false")
        .dependency(10, "build")
        .script(&["echo never"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("11")).await;
    ran.assert_status(JobStatus::Failed, "shell");
    let trace = readable(&ran.trace);
    assert_eq!(
        trace.matches("[start download_artifacts]").count(),
        2,
        "{trace}"
    );
    assert_eq!(
        trace
            .matches("Downloading artifacts for build (10)...")
            .count(),
        2,
        "{trace}"
    );
    assert!(!ran.output.contains("never"), "{}", ran.output);
}

#[tokio::test]
async fn with_the_backoff_flag_on_the_runner_waits_five_seconds_before_the_second_attempt() {
    let project = TestProject::new();
    let counter = project.path().join("tries");
    let hook = flaky_hook(&counter, 1);
    let payload = PayloadBuilder::new(6, "build")
        .var("GET_SOURCES_ATTEMPTS", "2")
        .hook("pre_get_sources_script", &[&hook])
        .script(&["echo ran"])
        .build();
    let ran = run_to_end(&mut shell(), payload, project.context("6")).await;
    ran.assert_status(JobStatus::Success, "shell");
    ran.assert_output_contains("Retrying in 5s", "shell");
}

#[tokio::test]
async fn a_tarzstd_cache_is_restored_by_the_next_job() {
    let project = TestProject::new();
    let save = PayloadBuilder::new(7, "save")
        .var("CACHE_COMPRESSION_FORMAT", "tarzstd")
        .var("CACHE_COMPRESSION_LEVEL", "slowest")
        .cache("deps", &["vendor/"], CachePolicy::PullPush, When::OnSuccess)
        .script(&["mkdir -p vendor/lib", "echo cached > vendor/lib/file.txt"])
        .build();
    let ran = run_to_end(&mut shell(), save, project.context("7")).await;
    ran.assert_status(JobStatus::Success, "shell");
    let archive = project.path().join(".runnel/cache/deps/cache.zip");
    let bytes = std::fs::read(&archive).expect("the cache keeps the name cache.zip");
    assert_eq!(bytes[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd stream");

    // The second job reads it whatever its own CACHE_COMPRESSION_FORMAT says.
    let restore = PayloadBuilder::new(8, "use")
        .var("GIT_STRATEGY", "clone")
        .cache("deps", &["vendor/"], CachePolicy::Pull, When::OnSuccess)
        .script(&["cat vendor/lib/file.txt"])
        .build();
    let ran = run_to_end(&mut shell(), restore, project.context("8")).await;
    ran.assert_status(JobStatus::Success, "shell");
    ran.assert_output_contains("Successfully extracted cache", "shell");
    ran.assert_output_contains("cached", "shell");
}

#[tokio::test]
async fn a_cancel_during_get_sources_is_not_retried() {
    let project = TestProject::new();
    let payload = PayloadBuilder::new(9, "build")
        .var("GET_SOURCES_ATTEMPTS", "3")
        .hook("pre_get_sources_script", &["echo started", "sleep 30"])
        .script(&["echo never"])
        .build();
    let ctx = project.context("9");
    let stop = ctx.cancel.clone();
    let (outcome, lines) =
        runnel_exec::test_support::run_stopped_once_started(&mut shell(), payload, ctx, stop).await;
    assert_eq!(outcome.status, JobStatus::Canceled, "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| *l == "started").count(),
        1,
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Retrying in")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("never")), "{lines:?}");
}

/// The compression method of `name` in the cache `key` of `project`.
fn cached_method(project: &TestProject, key: &str, name: &str) -> zip::CompressionMethod {
    let archive = project
        .path()
        .join(format!(".runnel/cache/{key}/cache.zip"));
    let file = std::fs::File::open(&archive).expect("the cache archive");
    let mut zip = zip::ZipArchive::new(file).expect("a zip archive");
    zip.by_name(name).expect("the cached file").compression()
}

#[tokio::test]
async fn cache_compression_level_fastest_stores_and_a_bad_level_warns_and_deflates() {
    let project = TestProject::new();
    let script = ["mkdir -p vendor", "seq 1 2000 > vendor/numbers.txt"];
    let fastest = PayloadBuilder::new(12, "fastest")
        .var("CACHE_COMPRESSION_LEVEL", "fastest")
        .cache("fast", &["vendor/"], CachePolicy::Push, When::OnSuccess)
        .script(&script)
        .build();
    let ran = run_to_end(&mut shell(), fastest, project.context("12")).await;
    ran.assert_status(JobStatus::Success, "shell");
    assert_eq!(
        cached_method(&project, "fast", "vendor/numbers.txt"),
        zip::CompressionMethod::Stored
    );

    let bad = PayloadBuilder::new(13, "bad")
        .var("CACHE_COMPRESSION_LEVEL", "max")
        .cache("bad", &["vendor/"], CachePolicy::Push, When::OnSuccess)
        .script(&script)
        .build();
    let ran = run_to_end(&mut shell(), bad, project.context("13")).await;
    ran.assert_status(JobStatus::Success, "shell");
    ran.assert_output_contains(
        "WARNING: compression level \"max\" is invalid, falling back to default",
        "shell",
    );
    assert_eq!(
        cached_method(&project, "bad", "vendor/numbers.txt"),
        zip::CompressionMethod::Deflated
    );
}
