//! The custom executor against drivers written in shell: the protocol (`config_exec` JSON,
//! `run_exec <script> <stage>` per stage, `cleanup_exec` always), the environment of the
//! driver calls, every exit-code path, timeouts (graceful then forced), cancel, and the
//! start-up sweep. Each driver logs its calls to `calls.log` in the test's directory.

use std::path::PathBuf;
use std::time::Duration;

use runnel_api::FailureReason;
use runnel_exec::custom::{CustomConfig, CustomExecutor, Program, sweep_leftovers};
use runnel_exec::test_support::{
    PayloadBuilder, Ran, TestProject, run_stopped_once_started, run_to_end,
};
use runnel_exec::{JobContext, JobStatus};

/// A test's drivers and their call log.
struct Drivers {
    dir: tempfile::TempDir,
}

/// A pass-through `run_exec`: logs `run <stage>`, runs the script with bash, and reports a
/// failing script as a build failure.
const RUN_PASSTHROUGH: &str = r#"echo "run $3" >> "$1"
bash "$2" || exit "$BUILD_FAILURE_EXIT_CODE""#;

impl Drivers {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes the driver `name` (a bash script, `$1` is the call log) and returns it as a
    /// program.
    fn program(&self, name: &str, body: &str) -> Program {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).expect("write the driver");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Program {
            exec: path.to_string_lossy().into_owned(),
            args: vec![self.log().to_string_lossy().into_owned()],
        }
    }

    /// A configuration with the pass-through `run_exec`, a logging `cleanup_exec`, short kill
    /// timeouts and no wait between preparation attempts.
    fn config(&self) -> CustomConfig {
        let mut config = CustomConfig::new("unused", self.state_dir());
        config.run = self.program("run.sh", RUN_PASSTHROUGH);
        config.cleanup = Some(self.program(
            "cleanup.sh",
            r#"echo "cleanup $CUSTOM_ENV_CI_JOB_ID" >> "$1""#,
        ));
        config.graceful_kill_timeout = Duration::from_secs(2);
        config.force_kill_timeout = Duration::from_secs(2);
        config.preparation_retry_interval = Duration::from_millis(10);
        config
    }

    /// The driver processes still running: those whose environment names a job directory
    /// under this test's state directory.
    fn live_driver_processes(&self) -> Vec<String> {
        let prefix = format!("RUNNEL_CUSTOM_EXECUTOR_DIR={}/", self.state_dir().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|e| {
                std::fs::read(e.path().join("environ")).is_ok_and(|env| {
                    env.split(|b| *b == 0)
                        .any(|v| v.starts_with(prefix.as_bytes()))
                })
            })
            .filter(|e| {
                // Zombies waiting for a reaper are gone for our purpose.
                std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(')')
                            .map(|(_, r)| r.split_whitespace().next() != Some("Z"))
                    })
                    .unwrap_or(false)
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// A job with `CI_JOB_ID` (GitLab sends it; the drivers log it).
fn job(id: u64, name: &str) -> PayloadBuilder {
    PayloadBuilder::new(id, name).var("CI_JOB_ID", &id.to_string())
}

async fn run(config: CustomConfig, project: &TestProject, payload: runnel_api::JobPayload) -> Ran {
    let ctx = project.context(&payload.id.to_string());
    let mut executor = CustomExecutor::new(config);
    run_to_end(&mut executor, payload, ctx).await
}

#[tokio::test]
async fn every_stage_goes_through_run_exec_with_config_exec_applied() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let builds = drivers.dir.path().join("driver-builds");
    let mut config = drivers.config();
    config.config = Some(drivers.program(
        "config.sh",
        &format!(
            r#"echo "config $CUSTOM_ENV_CI_JOB_ID" >> "$1"
echo "a note on stderr" >&2
cat <<JSON
{{"builds_dir": "{}", "builds_dir_is_shared": false, "hostname": "node-1",
  "driver": {{"name": "test driver", "version": "v0.1"}},
  "job_env": {{"FROM_CONFIG": "job-env-value", "CI_JOB_ID": "not-this"}}, "unknown": 1}}
JSON"#,
            builds.display()
        ),
    ));
    config.prepare = Some(drivers.program(
        "prepare.sh",
        r#"echo "prepare $FROM_CONFIG $CUSTOM_ENV_CI_PROJECT_DIR" >> "$1"
echo "env BUILD=$BUILD_FAILURE_EXIT_CODE SYSTEM=$SYSTEM_FAILURE_EXIT_CODE TMPDIR=$TMPDIR" >> "$1"
grep -o '"id":[0-9]*' "$JOB_RESPONSE_FILE" | head -1 >> "$1"
echo "preparing the environment""#,
    ));
    let payload = job(31, "custom")
        .var("GREETING", "hello")
        .file_var("SETTINGS", "key=value")
        .script(&[
            "echo $GREETING from $CI_PROJECT_DIR",
            "echo job sees FROM_CONFIG=$FROM_CONFIG",
            "cat $SETTINGS",
        ])
        .after_script(&["echo after=$CI_JOB_STATUS"])
        .build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Success, "custom");
    let project_dir = builds.join("acme/app");
    assert!(
        ran.output
            .contains(&format!("hello from {}", project_dir.display())),
        "config_exec's builds_dir is the job's: {}",
        ran.output
    );
    ran.assert_output_contains(
        "Using Custom executor with driver test driver v0.1...",
        "custom",
    );
    ran.assert_output_contains("a note on stderr", "custom");
    ran.assert_output_contains("preparing the environment", "custom");
    ran.assert_output_contains("job sees FROM_CONFIG=job-env-value", "custom");
    ran.assert_output_contains("key=value", "custom");
    ran.assert_output_contains("after=success", "custom");
    ran.assert_output_contains(" via node-1...", "custom");
    let calls = drivers.calls();
    let stages: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.strip_prefix("run "))
        .collect();
    assert_eq!(
        stages,
        [
            "prepare_script",
            "build_script",
            "after_script",
            "cleanup_file_variables"
        ],
        "{calls}"
    );
    assert!(calls.starts_with("config 31\n"), "{calls}");
    assert!(
        calls.contains(&format!(
            "prepare job-env-value {}\n",
            project_dir.display()
        )),
        "job_env and the derived CI_PROJECT_DIR reach prepare_exec: {calls}"
    );
    assert!(calls.contains("env BUILD=1 SYSTEM=2 TMPDIR="), "{calls}");
    assert!(
        calls.contains("\"id\":31\n"),
        "JOB_RESPONSE_FILE holds the payload: {calls}"
    );
    assert!(calls.ends_with("cleanup 31\n"), "{calls}");
    // The job's temporary directory (scripts, response file) is gone.
    let left: Vec<_> = std::fs::read_dir(drivers.state_dir())
        .expect("state dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn build_failure_exit_code_is_a_script_failure() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let payload = job(32, "fails")
        .script(&["echo before", "exit 7", "echo unreachable"])
        .after_script(&["echo after=$CI_JOB_STATUS"])
        .build();
    let ran = run(drivers.config(), &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::ScriptFailure)
    );
    assert_eq!(
        ran.outcome.exit_code,
        Some(1),
        "BUILD_FAILURE_EXIT_CODE is what the runner sees"
    );
    ran.assert_output_contains("after=failed", "custom");
    assert!(!ran.output.contains("\nunreachable"), "{}", ran.output);
    assert!(
        drivers.calls().ends_with("cleanup 32\n"),
        "{}",
        drivers.calls()
    );
}

#[tokio::test]
async fn system_failure_and_unknown_exit_codes_are_system_failures() {
    for (code, message) in [
        (2, "Job failed (system failure): exit status 2"),
        (
            42,
            "Job failed (system failure): unknown Custom executor executable exit code 42; \
             executable execution terminated with: exit status 42",
        ),
    ] {
        let drivers = Drivers::new();
        let project = TestProject::new();
        let mut config = drivers.config();
        config.run = drivers.program(
            "run.sh",
            &format!(
                r#"echo "run $3" >> "$1"
[ "$3" = build_script ] && exit {code}
bash "$2" || exit "$BUILD_FAILURE_EXIT_CODE""#
            ),
        );
        let payload = job(33, "system").script(&["echo hi"]).build();
        let ran = run(config, &project, payload).await;
        ran.assert_status(JobStatus::Failed, "custom");
        assert_eq!(
            ran.outcome.failure_reason,
            Some(FailureReason::RunnerSystemFailure),
            "exit code {code}"
        );
        assert!(
            ran.trace.contains(message),
            "exit code {code}: {}",
            ran.trace
        );
        assert!(
            drivers.calls().ends_with("cleanup 33\n"),
            "{}",
            drivers.calls()
        );
    }
}

#[tokio::test]
async fn after_script_system_failure_is_only_a_warning() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let mut config = drivers.config();
    config.run = drivers.program(
        "run.sh",
        r#"echo "run $3" >> "$1"
[ "$3" = after_script ] && exit 2
bash "$2" || exit "$BUILD_FAILURE_EXIT_CODE""#,
    );
    let payload = job(34, "after")
        .script(&["echo hi"])
        .after_script(&["echo after"])
        .build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Success, "custom");
    ran.assert_output_contains(
        "after_script failed, but job will continue unaffected: exit status 2",
        "custom",
    );
}

#[tokio::test]
async fn prepare_build_failure_fails_at_once_and_cleanup_still_runs() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let mut config = drivers.config();
    config.prepare = Some(drivers.program(
        "prepare.sh",
        r#"echo prepare >> "$1"; echo "no such image" >&2; exit "$BUILD_FAILURE_EXIT_CODE""#,
    ));
    let payload = job(35, "prepare").script(&["echo never"]).build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::ScriptFailure)
    );
    ran.assert_output_contains("no such image", "custom");
    assert!(
        ran.trace
            .contains("Job failed: prepare environment: prepare_exec: exit status 1"),
        "{}",
        ran.trace
    );
    assert_eq!(drivers.calls(), "prepare\ncleanup 35\n");
}

#[tokio::test]
async fn prepare_system_failure_is_tried_three_times_with_cleanup_between() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let mut config = drivers.config();
    config.prepare = Some(drivers.program(
        "prepare.sh",
        r#"echo prepare >> "$1"; exit "$SYSTEM_FAILURE_EXIT_CODE""#,
    ));
    let payload = job(36, "prepare").script(&["echo never"]).build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert_eq!(
        drivers.calls(),
        "prepare\ncleanup 36\nprepare\ncleanup 36\nprepare\ncleanup 36\n"
    );
    assert_eq!(
        ran.trace
            .matches("Preparation failed: prepare_exec: exit status 2")
            .count(),
        2,
        "{}",
        ran.trace
    );
    assert!(
        ran.trace.contains(
            "Job failed (system failure): prepare environment: prepare_exec: exit status 2"
        ),
        "{}",
        ran.trace
    );
    assert!(!ran.output.contains("never"), "{}", ran.output);
}

#[tokio::test]
async fn non_json_config_output_is_a_clear_error() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let mut config = drivers.config();
    let config_exec = drivers.program("config.sh", r#"echo "builds_dir=/builds""#);
    let exec = config_exec.exec.clone();
    config.config = Some(config_exec);
    let payload = job(37, "json").script(&["echo never"]).build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    let expected = format!(
        "Job failed (system failure): prepare environment: error while parsing JSON output of \
         config_exec `{exec}`: expected value at line 1 column 1"
    );
    assert!(ran.trace.contains(&expected), "{}", ran.trace);
    assert!(
        drivers.calls().ends_with("cleanup 37\n"),
        "cleanup runs: {}",
        drivers.calls()
    );
}

#[tokio::test]
async fn hanging_prepare_is_terminated_then_killed_after_its_timeout() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let mut config = drivers.config();
    config.prepare_exec_timeout = Duration::from_secs(1);
    // Ignores SIGTERM, so only SIGKILL ends it.
    config.prepare = Some(drivers.program(
        "prepare.sh",
        r#"trap 'echo "got TERM" >> "$1"' TERM
echo "prepare $$" >> "$1"
sleep 1000 &
while :; do sleep 0.1; done"#,
    ));
    let payload = job(38, "hang").script(&["echo never"]).build();
    let ran = run(config, &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        ran.trace.contains(
            "prepare environment: prepare_exec did not finish within its timeout and was terminated"
        ),
        "{}",
        ran.trace
    );
    let calls = drivers.calls();
    assert_eq!(
        calls.matches("got TERM").count(),
        3,
        "SIGTERM first, each try: {calls}"
    );
    assert_eq!(calls.matches("cleanup 38").count(), 3, "{calls}");
    assert_eq!(
        drivers.live_driver_processes(),
        Vec::<String>::new(),
        "SIGKILL ended them"
    );
}

/// A job whose script prints `started` and then hangs, with background children.
fn hanging_payload(id: u64) -> runnel_api::JobPayload {
    job(id, "hang")
        .script(&["sleep 1000 &", "echo started", "sleep 1000"])
        .build()
}

#[tokio::test]
async fn cancel_terminates_run_exec_and_leaves_no_driver_processes() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let ctx: JobContext = project.context("39");
    let abort = ctx.abort.clone();
    let mut executor = CustomExecutor::new(drivers.config()).with_job_control(abort.clone(), None);
    let (outcome, _) =
        run_stopped_once_started(&mut executor, hanging_payload(39), ctx, abort).await;
    assert_eq!(outcome.status, JobStatus::Canceled);
    assert_eq!(drivers.live_driver_processes(), Vec::<String>::new());
    assert!(
        drivers.calls().ends_with("cleanup 39\n"),
        "{}",
        drivers.calls()
    );
}

#[tokio::test]
async fn job_timeout_terminates_run_exec_and_leaves_no_driver_processes() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    let payload = job(40, "timeout")
        .timeout(1)
        .script(&["sleep 1000 &", "sleep 1000"])
        .build();
    let ran = run(drivers.config(), &project, payload).await;
    ran.assert_status(JobStatus::Failed, "custom");
    assert_eq!(
        ran.outcome.failure_reason,
        Some(FailureReason::JobExecutionTimeout)
    );
    assert_eq!(drivers.live_driver_processes(), Vec::<String>::new());
    assert!(
        drivers.calls().ends_with("cleanup 40\n"),
        "{}",
        drivers.calls()
    );
}

#[tokio::test]
async fn sweep_kills_leftover_driver_processes_and_runs_cleanup_with_the_recorded_env() {
    let drivers = Drivers::new();
    let config = drivers.config();
    // What a runner killed mid-job leaves: a job directory with its record, and a driver
    // process (in a session of its own, as if its parent had died) carrying the marker.
    let job_dir = drivers.state_dir().join("job-41-1-0");
    std::fs::create_dir_all(&job_dir).expect("job dir");
    std::fs::write(
        job_dir.join("runnel-custom-job.json"),
        r#"{"job": 41, "env": [["CUSTOM_ENV_CI_JOB_ID", "41"]]}"#,
    )
    .expect("record");
    // `spawn` returns once `execve` has begun, but `/proc/<pid>/environ` stays empty until
    // the new image is set up: the leftover says when it runs, then waits on its stdin (no
    // further `execve`, so it stays visible until it is killed).
    let mut leftover = std::process::Command::new("setsid")
        .args(["sh", "-c", "echo running; read line"])
        .env("RUNNEL_CUSTOM_EXECUTOR_DIR", &job_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn a leftover");
    let mut said = String::new();
    let stdout = leftover.stdout.take().expect("the leftover's stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut said)
        .expect("the leftover starts");
    assert_eq!(said, "running\n");
    assert_eq!(drivers.live_driver_processes().len(), 1);
    let swept = sweep_leftovers(&config).await.expect("sweep");
    assert_eq!(swept, 1);
    let _ = leftover.wait();
    assert_eq!(drivers.live_driver_processes(), Vec::<String>::new());
    assert_eq!(drivers.calls(), "cleanup 41\n");
    assert!(!job_dir.exists());
    assert_eq!(
        sweep_leftovers(&config).await.expect("sweep"),
        0,
        "nothing left the second time"
    );
}

#[tokio::test]
async fn get_sources_hooks_run_through_the_driver() {
    let drivers = Drivers::new();
    let project = TestProject::new();
    project.write("file.txt", "content\n");
    let payload = job(42, "hooks")
        .hook("pre_get_sources_script", &["echo pre-hook"])
        .script(&["cat file.txt"])
        .build();
    let ran = run(drivers.config(), &project, payload).await;
    ran.assert_status(JobStatus::Success, "custom");
    ran.assert_output_contains("pre-hook", "custom");
    ran.assert_output_contains("content", "custom");
    let calls = drivers.calls();
    assert!(calls.contains("run get_sources\n"), "{calls}");
}
