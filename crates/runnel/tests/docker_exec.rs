//! `runnel exec --executor docker` end to end on the real engine: jobs in their images, a
//! service reached by alias, artifacts between container jobs, failures with GitLab's reasons,
//! and nothing of runnel's left in `docker ps -a` or `docker network ls` afterwards.
//!
//! Needs the Docker engine and the local images of `scripts/test-images.sh`; without them the
//! tests print `SKIPPED: …` (with `CI=true` they fail).

use std::path::Path;
use std::process::{Command, Stdio};

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE};
use serde_json::Value;

mod support;
use support::{commit_repo, job, json_document};

/// A committed repository with one `.gitlab-ci.yml`.
fn repo(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(".gitlab-ci.yml"), pipeline).expect("pipeline written");
    commit_repo(dir.path(), "i");
    dir
}

fn exec(dir: &Path, args: &[&str]) -> (i32, Value) {
    json_document(
        &Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["exec", "--executor", "docker", "--json"])
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs"),
    )
}

/// Whether the engine and the images the pipelines name are there.
fn docker_available() -> bool {
    runnel_exec::docker::docker_available(&[TEST_BUSYBOX_IMAGE, TEST_PYTHON_IMAGE])
}

fn output(doc: &Value, name: &str) -> String {
    job(doc, name)["output"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// What `docker ps -a` / `docker network ls` list of runnel's for the pipeline of the repository
/// `dir`: by runnel's label and gitlab-runner's `job.sha` label with the repository's commit, so
/// that objects of other tests sharing the engine do not count.
fn runnel_objects(dir: &Path) -> String {
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(head.status.success(), "git rev-parse HEAD");
    let sha = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let job_sha = format!("label=com.gitlab.gitlab-runner.job.sha={sha}");
    let mut all = String::new();
    for what in [&["ps", "-a"][..], &["network", "ls"]] {
        let out = Command::new("docker")
            .args(what)
            .args(["-q", "--filter", "label=dev.runnel.managed=true"])
            .args(["--filter", &job_sha])
            .output()
            .expect("docker runs");
        assert!(out.status.success(), "docker {what:?}");
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    all
}

const PIPELINE: &str = r#"
image: python:3.11-slim
stages: [build, test]

build:
  stage: build
  image: runnel-test/busybox:latest
  services:
    - name: python:3.11-slim
      alias: web
      entrypoint: ["sh", "-c", "mkdir -p /srv && echo service-says-hi > /srv/index.html && exec \"$@\"", "sh"]
      command: ["python3", "-m", "http.server", "8000", "--directory", "/srv"]
      variables:
        HEALTHCHECK_TCP_PORT: "8000"
  script:
    - wget -q -O - http://web:8000/
    - echo shell=${BASH_VERSION:-sh}
    - mkdir -p dist && echo built-in-busybox > dist/out.txt
  artifacts:
    paths: [dist/]

test:
  stage: test
  script:
    - cat dist/out.txt
    - python3 -c 'import sys; print("python", sys.version_info[0])'
    - echo shell=${BASH_VERSION:+bash}
"#;

#[test]
fn docker_exec_runs_jobs_in_their_images_with_services_and_leaves_nothing() {
    if !docker_available() {
        return;
    }
    let dir = repo(PIPELINE);
    let (code, doc) = exec(dir.path(), &[]);
    assert_eq!(code, 0, "{doc:#}");
    let build = output(&doc, "build");
    assert!(build.contains("service-says-hi"), "{build}");
    assert!(build.contains("shell=sh"), "{build}");
    let test = output(&doc, "test");
    assert!(test.contains("built-in-busybox"), "{test}");
    assert!(test.contains("python 3"), "{test}");
    assert!(test.contains("shell=bash"), "{test}");
    assert_eq!(
        runnel_objects(dir.path()),
        "",
        "docker ps -a / docker network ls"
    );
}

#[test]
fn docker_exec_reports_exit_codes_and_missing_images() {
    if !docker_available() {
        return;
    }
    let dir = repo(
        r#"
fails:
  image: runnel-test/busybox:latest
  script: [exit 5]
missing:
  image: runnel-test/not-built-here:1
  script: ["true"]
"#,
    );
    let (code, doc) = exec(dir.path(), &[]);
    assert_ne!(code, 0);
    assert_eq!(job(&doc, "fails")["status"], "failed", "{doc:#}");
    assert_eq!(job(&doc, "fails")["exit_code"], 5);
    assert_eq!(job(&doc, "missing")["status"], "failed");
    assert_eq!(job(&doc, "missing")["failure_reason"], "image_pull_failure");
    assert_eq!(job(&doc, "fails")["failure_reason"], "script_failure");
    assert_eq!(
        runnel_objects(dir.path()),
        "",
        "docker ps -a / docker network ls"
    );
}
