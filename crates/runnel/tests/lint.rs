//! `runnel lint` end to end: the table, `--json`, the context flags, and errors with exit 1.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::predicate;

const PIPELINE: &str = "\
stages: [build, test, deploy]
variables:
  APP: demo
build:
  stage: build
  script: make
test:
  stage: test
  script: make test
  parallel: 2
  needs: [build]
deploy:
  stage: deploy
  script: make deploy
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
      when: manual
    - if: $DEPLOY == \"yes\"
release:
  stage: deploy
  script: make release
  rules:
    - if: $CI_COMMIT_TAG
";

fn repo(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(".gitlab-ci.yml"), config).expect("write .gitlab-ci.yml");
    dir
}

fn lint(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("runnel").expect("runnel binary");
    cmd.current_dir(dir).arg("lint");
    cmd
}

#[test]
fn components_addressed_with_predefined_variables_resolve_as_with_exec() {
    // GitLab: external/mapper/variables_expander.rb expands the predefined variables in
    // `component:` (GNOME/citemplates includes its own components this way).
    let dir = repo(
        "include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/hello@$CI_DEFAULT_BRANCH\n    inputs:\n      stage: build\n",
    );
    for args in [
        &["init", "-q"][..],
        &[
            "remote",
            "add",
            "origin",
            "git@gitlab.example.com:group/components.git",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }
    let projects = tempfile::tempdir().expect("temporary directory");
    let templates = projects.path().join("group/components/templates");
    std::fs::create_dir_all(&templates).expect("create templates");
    std::fs::write(
        templates.join("hello.yml"),
        "spec:\n  inputs:\n    stage:\n---\nhello:\n  stage: $[[ inputs.stage ]]\n  script: echo hello\n",
    )
    .expect("write component");
    let out = lint(dir.path())
        .args(["--ref", "main", "--projects-dir"])
        .arg(projects.path())
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("build") && l.contains("hello")),
        "{stdout}"
    );
}

#[test]
fn prints_a_table_of_the_jobs_of_the_default_branch() {
    let dir = repo(PIPELINE);
    let out = lint(dir.path()).args(["--ref", "main"]).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
    insta::assert_snapshot!(stdout, @r"
    STAGE   JOB       WHEN        ALLOW_FAILURE  NEEDS
    build   build     on_success  false          -
    test    test 1/2  on_success  false          build
    test    test 2/2  on_success  false          build
    deploy  deploy    manual      false          -

    4 jobs in 3 stages for branch `main` (push)
    ");
}

#[test]
fn context_flags_change_which_jobs_run() {
    let dir = repo(PIPELINE);
    lint(dir.path())
        .args(["--ref", "feature", "--var", "DEPLOY=yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deploy  deploy    on_success"));
    lint(dir.path())
        .args(["--ref", "v1.0", "--tag"])
        .assert()
        .success()
        .stdout(predicate::str::contains("release"))
        .stdout(predicate::str::contains("for tag `v1.0`"));
}

#[test]
fn json_prints_the_resolved_jobs() {
    let dir = repo(PIPELINE);
    let out = lint(dir.path())
        .args(["--ref", "main", "--json"])
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("JSON on stdout");
    let names: Vec<&str> = json["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["build", "test 1/2", "test 2/2", "deploy"]);
    assert_eq!(json["jobs"][1]["variables"][0]["name"], "APP");
    assert_eq!(json["jobs"][1]["parallel"]["total"], 2);
}

#[test]
fn misspelt_keyword_fails_with_a_suggestion() {
    let dir = repo("before_string: [echo hi]\ntest:\n  script: pytest\n");
    lint(dir.path())
        .args(["--ref", "main"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error: `before_string` is neither a keyword nor a job",
        ))
        .stderr(predicate::str::contains("--> .gitlab-ci.yml:1:1"))
        .stderr(predicate::str::contains("did you mean `before_script`?"))
        .stderr(predicate::str::contains("1 error in the configuration"));
}

#[test]
fn json_errors_are_diagnostics_objects() {
    let dir = repo("test:\n  script: pytest\n  stage: tset\n");
    let out = lint(dir.path())
        .args(["--ref", "main", "--json"])
        .assert()
        .code(1);
    let json: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("JSON on stdout");
    let first = &json[0];
    assert_eq!(first["file"], ".gitlab-ci.yml");
    assert_eq!(first["line"], 3);
    assert_eq!(first["column"], 10);
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "unknown-stage");
    assert_eq!(first["help"], "did you mean `test`?");
}

#[test]
fn workflow_rules_can_exclude_the_pipeline() {
    let dir = repo("workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\ntest:\n  script: pytest\n");
    lint(dir.path())
        .args(["--ref", "main"])
        .assert()
        .success()
        .stdout("no pipeline: `workflow:rules` exclude a push pipeline for branch `main`\n");
}

#[test]
fn file_argument_and_local_includes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("ci")).expect("mkdir");
    std::fs::write(dir.path().join("ci/jobs.yml"), "unit:\n  script: pytest\n").expect("write");
    std::fs::write(dir.path().join("pipeline.yml"), "include: ci/jobs.yml\n").expect("write");
    lint(dir.path())
        .args(["pipeline.yml", "--ref", "main"])
        .assert()
        .success()
        .stdout(predicate::str::contains("test   unit  on_success"));
}
