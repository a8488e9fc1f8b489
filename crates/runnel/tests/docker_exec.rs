//! `runnel exec --executor docker` end to end on the real engine: jobs in their images, a
//! service reached by alias, artifacts between container jobs, failures with GitLab's reasons,
//! and nothing of runnel's left in `docker ps -a` or `docker network ls` afterwards.
//!
//! Needs the Docker engine and the local images of `scripts/test-images.sh`; without them the
//! tests print `SKIPPED: …` (with `CI=true` they fail).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const BUSYBOX: &str = "runnel-test/busybox:latest";
const PYTHON: &str = "python:3.11-slim";

/// Whether the `docker` CLI reaches an engine that has the test images.
fn docker_available() -> bool {
    let ok = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let reason = if !ok(&["version"]) {
        Some("`docker version` failed".to_owned())
    } else {
        [BUSYBOX, PYTHON]
            .iter()
            .find(|image| !ok(&["image", "inspect", image]))
            .map(|image| format!("the image `{image}` is missing: run scripts/test-images.sh"))
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("no Docker engine ({reason}); .ci/run starts one")
        }
        Some(reason) => {
            println!("SKIPPED: no Docker engine ({reason}); .ci/run starts one");
            false
        }
    }
}

/// A committed repository with one `.gitlab-ci.yml`.
fn repo(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(".gitlab-ci.yml"), pipeline).expect("pipeline written");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "i",
        ],
    ] {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }
    dir
}

fn exec(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["exec", "--executor", "docker", "--json"])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("runnel runs");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job `{name}` in {doc:#}"))
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

/// What `docker ps -a` / `docker network ls` list of runnel's (by its label).
fn runnel_objects() -> String {
    let mut all = String::new();
    for args in [
        &[
            "ps",
            "-a",
            "-q",
            "--filter",
            "label=dev.runnel.managed=true",
        ][..],
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            "label=dev.runnel.managed=true",
        ],
    ] {
        let out = Command::new("docker")
            .args(args)
            .output()
            .expect("docker runs");
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
    assert_eq!(runnel_objects(), "", "docker ps -a / docker network ls");
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
    assert_eq!(runnel_objects(), "", "docker ps -a / docker network ls");
}
