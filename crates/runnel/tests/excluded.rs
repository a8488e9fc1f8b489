//! `runnel exec JOB` for a job that `rules`, `only`/`except` or `workflow:rules` leave out of
//! the pipeline: the error says which of them decided and where the job is; `--ignore-rules`
//! runs it anyway (gitlab-ci-local runs named jobs whatever their rules say).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;
use support::{commit_repo, copy_tree, job, json_document};

/// A committed copy of the fixture repository `tests/repos/<name>` on branch `main`.
fn repo(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let repo = dir.path().join("repo");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/repos")
        .join(name);
    copy_tree(&fixture, &repo, &|_| false);
    commit_repo(&repo, "Initial");
    (dir, repo)
}

fn exec(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("exec")
        .args(args)
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("runnel runs")
}

/// The exit code and standard error of `runnel exec args…`.
fn error_of(repo: &Path, args: &[&str]) -> String {
    let out = exec(repo, args);
    format!(
        "exit code: {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_job_left_out_by_a_rule_with_when_never_names_the_rule() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!(error_of(&repo, &["never-job"]));
}

#[test]
fn a_job_whose_rules_do_not_match_says_so() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!(error_of(&repo, &["unmatched"]));
}

#[test]
fn a_job_left_out_by_only_or_except_names_the_keyword_and_the_pipeline() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!("only", error_of(&repo, &["tags-only"]));
    insta::assert_snapshot!("except", error_of(&repo, &["not-on-main"]));
}

#[test]
fn a_parallel_group_left_out_by_rules_is_explained_by_its_name_or_an_instance() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!("group", error_of(&repo, &["matrix"]));
    insta::assert_snapshot!("instance", error_of(&repo, &["matrix: [mac]"]));
}

#[test]
fn a_job_of_a_pipeline_that_workflow_rules_filter_out_names_the_workflow_rule() {
    let (_dir, repo) = repo("workflow-never");
    insta::assert_snapshot!(error_of(&repo, &["lint"]));
    // Without a named job there is simply no pipeline, as on GitLab.
    let out = exec(&repo, &[]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_misspelt_job_gets_a_suggestion_from_every_job_of_the_file() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!(error_of(&repo, &["nevr-job"]));
}

#[test]
fn ignore_rules_runs_left_out_jobs_and_says_why_they_were() {
    let (_dir, repo) = repo("excluded");
    let out = exec(
        &repo,
        &[
            "--json",
            "--ignore-rules",
            "never-job",
            "tags-only",
            "matrix",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (code, doc) = json_document(&out);
    assert_eq!(code, 0, "{stderr}");
    for name in ["never-job", "tags-only", "matrix: [linux]", "matrix: [mac]"] {
        assert_eq!(job(&doc, name)["status"], "success", "{name}: {doc:#}");
    }
    assert_eq!(job(&doc, "never-job")["output"][0], "never-job ran");
    // Only the named jobs run: `build`, which `matrix` needs, is not pulled in.
    assert_eq!(doc["jobs"].as_array().map(Vec::len), Some(4), "{doc:#}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn ignore_rules_with_needs_runs_the_left_out_jobs_a_left_out_job_needs() {
    let (_dir, repo) = repo("excluded-needs");
    let out = exec(&repo, &["--json", "--ignore-rules", "--needs", "deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (code, doc) = json_document(&out);
    assert_eq!(code, 0, "{stderr}");
    for name in ["build", "prepare", "deploy"] {
        assert_eq!(job(&doc, name)["status"], "success", "{name}: {doc:#}");
    }
    assert_eq!(job(&doc, "prepare")["output"][0], "prepare ran");
    insta::assert_snapshot!(stderr);

    // Without `--needs` only the named job runs, and only it is announced.
    let out = exec(&repo, &["--json", "--ignore-rules", "deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (code, doc) = json_document(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["jobs"].as_array().map(Vec::len), Some(1), "{doc:#}");
    assert!(!stderr.contains("prepare"), "{stderr}");
}

#[test]
fn ignore_rules_runs_a_job_of_a_pipeline_that_workflow_rules_filter_out() {
    let (_dir, repo) = repo("workflow-never");
    let out = exec(&repo, &["--json", "--ignore-rules", "lint"]);
    let (code, doc) = json_document(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(job(&doc, "lint")["output"][0], "lint ran");
}

#[test]
fn ignore_rules_is_listed_in_help_and_needs_a_job() {
    let (_dir, repo) = repo("excluded");
    let help = exec(&repo, &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--ignore-rules"), "{help}");
    let out = exec(&repo, &["--ignore-rules"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn list_names_the_jobs_left_out_and_why() {
    let (_dir, repo) = repo("excluded");
    let out = exec(&repo, &["--list"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn manual_naming_a_left_out_job_says_why() {
    let (_dir, repo) = repo("excluded");
    insta::assert_snapshot!(error_of(&repo, &["--manual", "never-job"]));
}
