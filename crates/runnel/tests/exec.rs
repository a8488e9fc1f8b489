//! `runnel exec` end to end: each test copies a fixture repository from `tests/repos/` into a
//! temporary directory, commits it, runs the binary and reads its `--json` document.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod support;
use support::{commit_repo, copy_tree, git, job, json_document};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/repos")
        .join(name)
}

/// A committed copy of a fixture repository.
struct TestRepo {
    dir: tempfile::TempDir,
}

impl TestRepo {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = dir.path().join("repo");
        copy_tree(&fixture(name), &repo, &|_| false);
        commit_repo(&repo, "Initial");
        git(
            &repo,
            &[
                "remote",
                "add",
                "origin",
                "git@gitlab.example.com:group/project.git",
            ],
        );
        TestRepo { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runnel"));
        cmd.arg("exec")
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs")
    }

    /// Runs with `--json` and returns the exit code and the document.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        json_document(&self.run(&all))
    }
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    job(doc, name)["status"].as_str().unwrap_or("")
}

fn output(doc: &Value, name: &str) -> Vec<String> {
    job(doc, name)["output"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn seq(doc: &Value, name: &str, key: &str) -> u64 {
    job(doc, name)[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` has no {key}"))
}

#[test]
fn stages_run_in_order_and_dag_jobs_start_after_their_needs() {
    let repo = TestRepo::new("order");
    let (code, doc) = repo.json(&["--concurrency", "1"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["status"], "success");
    for name in ["build", "slow-build", "unit", "dag", "deploy"] {
        assert_eq!(status(&doc, name), "success", "{name}");
    }
    assert!(seq(&doc, "build", "finished_seq") < seq(&doc, "dag", "started_seq"));
    for (before, after) in [
        ("build", "unit"),
        ("slow-build", "unit"),
        ("unit", "deploy"),
    ] {
        assert!(
            seq(&doc, before, "finished_seq") < seq(&doc, after, "started_seq"),
            "{before} before {after}"
        );
    }
    assert_eq!(output(&doc, "dag"), vec!["dag"]);
}

#[test]
fn every_when_value_follows_gitlab_after_a_failure() {
    let repo = TestRepo::new("when");
    let (code, doc) = repo.json(&[]);
    assert_ne!(code, 0);
    assert_eq!(doc["status"], "failed");
    assert_eq!(status(&doc, "broken"), "failed");
    assert_eq!(job(&doc, "broken")["exit_code"], 3);
    assert_eq!(status(&doc, "on-success"), "skipped");
    assert_eq!(status(&doc, "on-failure"), "success");
    assert_eq!(status(&doc, "always"), "success");
    assert_eq!(status(&doc, "manual"), "skipped");
}

#[test]
fn named_manual_job_runs() {
    let repo = TestRepo::new("when");
    let (code, doc) = repo.json(&["manual"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(status(&doc, "manual"), "success");
    assert_eq!(output(&doc, "manual"), vec!["manual"]);
}

#[test]
fn allowed_failures_are_warnings_and_exit_codes_are_checked() {
    let repo = TestRepo::new("allow-failure");
    let (code, doc) = repo.json(&[]);
    assert_ne!(code, 0, "`other-code` fails the pipeline");
    assert_eq!(status(&doc, "allowed"), "warning");
    assert_eq!(status(&doc, "allowed-code"), "warning");
    assert_eq!(status(&doc, "other-code"), "failed");
    assert_eq!(status(&doc, "next"), "skipped");
    let (code, doc) = repo.json(&["allowed", "allowed-code"]);
    assert_eq!(code, 0, "allowed failures pass: {doc:#}");
    assert_eq!(doc["status"], "warning");
}

#[test]
fn retry_reruns_a_failed_job() {
    let repo = TestRepo::new("retry");
    let counter = repo.dir.path().join("counter");
    std::fs::create_dir_all(&counter).expect("counter directory");
    let var = format!("COUNTER_DIR={}", counter.display());
    let (code, doc) = repo.json(&["--var", &var, "flaky"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(status(&doc, "flaky"), "success");
    assert_eq!(output(&doc, "flaky"), vec!["attempt 2"]);
    let (_, doc) = repo.json(&["exit-code-filter"]);
    assert_eq!(status(&doc, "exit-code-filter"), "failed");
}

#[test]
fn artifacts_and_dotenv_reach_later_jobs() {
    let repo = TestRepo::new("artifacts");
    let (code, doc) = repo.json(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(output(&doc, "consume"), vec!["payload", "version=1.2.3"]);
    assert_eq!(
        output(&doc, "isolated"),
        vec!["no artifacts", "version=unset"]
    );
}

#[test]
fn cache_is_restored_on_the_next_run() {
    let repo = TestRepo::new("cache");
    let (_, first) = repo.json(&[]);
    assert_eq!(output(&first, "job"), vec!["cache cold"]);
    let (_, second) = repo.json(&[]);
    assert_eq!(output(&second, "job"), vec!["cache warm"]);
}

#[test]
fn after_script_runs_after_a_failure_and_sees_the_status() {
    let repo = TestRepo::new("after-script");
    let (code, doc) = repo.json(&[]);
    assert_ne!(code, 0);
    assert_eq!(
        output(&doc, "fails"),
        vec!["before failure", "status=failed"]
    );
    assert_eq!(output(&doc, "passes"), vec!["ok", "status=success"]);
}

#[test]
fn timeout_fails_the_job() {
    let repo = TestRepo::new("timeout");
    let (code, doc) = repo.json(&[]);
    assert_ne!(code, 0);
    assert_eq!(status(&doc, "slow"), "failed");
    assert_eq!(job(&doc, "slow")["failure_reason"], "job_execution_timeout");
}

fn marked_processes(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn ctrl_c_kills_the_job_and_its_background_children() {
    const MARKER: &str = "runnel-interrupt-marker";
    let repo = TestRepo::new("interrupt");
    let child = repo
        .command(&["--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runnel starts");
    // Wait (on the processes themselves, not on time) until both children run.
    let mut seen = 0;
    for _ in 0..2000 {
        seen = marked_processes(MARKER).len();
        if seen >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(seen >= 2, "the job's processes never started");
    let kill = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("runnel exits");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the table is printed as JSON");
    assert_eq!(status(&doc, "hang"), "canceled");
    assert_eq!(
        marked_processes(MARKER),
        Vec::<String>::new(),
        "processes left running"
    );
}

#[test]
fn masked_variables_are_never_printed() {
    let repo = TestRepo::new("masked");
    let file = repo.dir.path().join("vars.yml");
    std::fs::write(
        &file,
        "SECRET_TOKEN:\n  value: s3cr3t-value-123\n  masked: true\nPLAIN: visible\n",
    )
    .expect("write variables file");
    let out = repo.run(&["--variables-file", file.to_str().expect("utf-8 path")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("s3cr3t-value-123"), "{text}");
    assert!(text.contains("secret is [MASKED]"), "{text}");
    assert!(text.contains("plain is visible"), "{text}");
    let logs: Vec<String> = std::fs::read_dir(repo.path().join(".runnel/logs"))
        .expect("logs")
        .map(|entry| std::fs::read_to_string(entry.expect("log entry").path()).expect("log"))
        .collect();
    assert!(
        logs.iter().any(|log| log.contains("secret is [MASKED]")),
        "the job's log is written: {logs:?}"
    );
    for log in &logs {
        assert!(!log.contains("s3cr3t-value-123"), "{log}");
    }
}

#[test]
fn nested_variables_are_expanded_as_gitlab_and_gitlab_runner_do() {
    let repo = TestRepo::new("nested-variables");
    let file = repo.dir.path().join("vars.yml");
    std::fs::write(
        &file,
        "CERT:\n  value: pem-content\n  file: true\nCERT_ARG: --cacert $CERT\n",
    )
    .expect("write variables file");
    let vars = file.to_str().expect("utf-8 path");
    let (code, doc) = repo.json(&["--var", "CLI=$C-cli", "--variables-file", vars]);
    assert_eq!(code, 0, "{doc}");
    let lines = output(&doc, "show");
    let has = |line: &str| lines.iter().any(|l| l == line);
    assert!(has("C=a-b-c"), "{lines:?}");
    assert!(has("REFS_RAW=raw-$A"), "{lines:?}");
    assert!(has("UNDEFINED=x--y"), "{lines:?}");
    assert!(has("FROM_CLI=a-b-c-cli-job"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CERT=--cacert /") && l.ends_with("/CERT")),
        "a file variable expands to its path: {lines:?}"
    );
}

#[test]
fn variables_that_refer_to_each_other_in_a_cycle_refuse_the_pipeline_as_a_user_error() {
    let repo = TestRepo::new("order");
    std::fs::write(
        repo.path().join(".gitlab-ci.yml"),
        "variables:\n  A: $B\nbuild:\n  variables:\n    B: $A\n  script: echo\n",
    )
    .expect("write pipeline");
    let out = repo.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a configuration error is a user error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"build: circular variable reference detected: ["A", "B"]"#),
        "{err}"
    );
}

#[test]
fn list_prints_every_job_with_its_stage() {
    let repo = TestRepo::new("order");
    let out = repo.run(&["--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["build", "slow-build", "unit", "dag", "deploy"] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} in {text}"
        );
    }
    assert!(
        !repo.path().join(".runnel/logs").exists(),
        "--list runs nothing"
    );
}

#[test]
fn json_document_has_the_documented_shape() {
    let repo = TestRepo::new("order");
    let (_, doc) = repo.json(&["build"]);
    assert_eq!(doc["status"], "success");
    let build = job(&doc, "build");
    for key in [
        "name",
        "stage",
        "status",
        "exit_code",
        "output",
        "coverage",
        "started_seq",
        "finished_seq",
        "duration_s",
        "artifacts",
    ] {
        assert!(build.get(key).is_some(), "`{key}` missing from {build:#}");
    }
    assert_eq!(
        doc["jobs"].as_array().map(Vec::len),
        Some(1),
        "named jobs run alone"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".runnel/.gitignore"))
            .expect(".runnel/.gitignore"),
        "*\n"
    );
}

#[test]
fn configuration_errors_print_diagnostics_and_exit_with_the_user_error_code() {
    let repo = TestRepo::new("order");
    std::fs::write(
        repo.path().join(".gitlab-ci.yml"),
        "build:\n  stage: nowhere\n  script: echo\n",
    )
    .expect("write broken pipeline");
    let out = repo.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn delayed_job_runs_after_start_in_and_before_the_next_stage() {
    let repo = TestRepo::new("delayed");
    let (code, doc) = repo.json(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(output(&doc, "later"), vec!["later"]);
    assert!(seq(&doc, "later", "finished_seq") < seq(&doc, "next", "started_seq"));
}

#[test]
fn child_pipeline_runs_with_the_trigger_jobs_variables_and_depend_fails_the_trigger() {
    let repo = TestRepo::new("child");
    let (code, doc) = repo.json(&[]);
    assert_ne!(code, 0, "{doc:#}");
    assert_eq!(
        output(&doc, "[parent] -> child-build"),
        vec!["global parent parent_pipeline"]
    );
    assert_eq!(status(&doc, "[parent] -> child-test"), "failed");
    assert_eq!(status(&doc, "parent"), "failed", "strategy: depend");
    assert_eq!(status(&doc, "after"), "skipped");
    assert!(
        seq(&doc, "[parent] -> child-build", "finished_seq")
            < seq(&doc, "[parent] -> child-test", "started_seq")
    );
}

#[test]
fn jobs_of_one_resource_group_do_not_overlap() {
    let repo = TestRepo::new("resource-group");
    let (code, doc) = repo.json(&["--concurrency", "2"]);
    assert_eq!(code, 0, "{doc:#}");
    let (a, b) = ("deploy-a", "deploy-b");
    let apart = seq(&doc, a, "finished_seq") < seq(&doc, b, "started_seq")
        || seq(&doc, b, "finished_seq") < seq(&doc, a, "started_seq");
    assert!(apart, "{doc:#}");
}

#[test]
fn bridges_to_other_projects_succeed_and_say_what_a_local_run_cannot_do() {
    let repo = TestRepo::new("bridges");
    let (code, doc) = repo.json(&[]);
    assert_eq!(code, 0, "{doc:#}");
    for job in ["downstream", "mirror", "after"] {
        assert_eq!(status(&doc, job), "success", "{job}: {doc:#}");
    }
    let console = repo.run(&[]);
    let stdout = String::from_utf8_lossy(&console.stdout);
    for line in [
        "downstream > downstream project pipelines are not run locally",
        "mirror     > the status of group/upstream-project's upstream pipeline is not mirrored locally",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in {stdout}");
    }
}
