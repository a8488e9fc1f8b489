//! The README's first command, as a test: `runnel exec` runs `examples/python-app` (flake8, xenon,
//! unittest, pytest with coverage and a JUnit report, a wheel) and the pipeline passes, with the
//! shell executor and, on the real engine, with the Docker executor.
//!
//! The jobs `pip install` their tools, so these tests need PyPI (reachable on the development
//! machines and in CI). The Docker one also needs the engine and the local `python:3.11-slim` of
//! `scripts/test-images.sh`; without them it prints `SKIPPED: …` (with `CI=true` it fails).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Files of the example that a run creates and a user would not commit.
const GENERATED: &[&str] = &[
    ".runnel",
    ".venv",
    ".cache",
    "dist",
    "build",
    "htmlcov",
    "__pycache__",
    ".coverage",
    "report.xml",
];

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-app")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("directory created");
    for entry in fs::read_dir(from).expect("example readable") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if GENERATED.contains(&name_str.as_ref()) || name_str.ends_with(".egg-info") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("file copied");
        }
    }
}

/// A committed copy of `examples/python-app`, as a user's clone would have it.
fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_tree(&example_dir(), dir.path());
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
            "example",
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

fn run_example(extra: &[&str]) -> (tempfile::TempDir, Value) {
    let repo = example_repo();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["exec", "--json", "-C"])
        .arg(repo.path())
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("runnel runs");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "runnel printed no JSON document ({err}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (repo, doc)
}

fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("job `{name}` missing from {doc:#}"))
}

fn assert_example_passed(repo: &Path, doc: &Value) {
    for name in ["flake8", "xenon", "unittest", "pytest", "build"] {
        let j = job(doc, name);
        assert_eq!(j["status"], "success", "job `{name}`: {j:#}");
    }
    assert_eq!(doc["status"], "success", "{doc:#}");

    // The coverage regex `/TOTAL.*\s+(\d+%)$/` picks the percentage out of pytest-cov's table.
    let coverage = job(doc, "pytest")["coverage"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            job(doc, "pytest")["coverage"]
                .as_f64()
                .map(|c| c.to_string())
        })
        .unwrap_or_else(|| panic!("pytest has no coverage: {doc:#}"));
    let percent: f64 = coverage
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("coverage `{coverage}` is not a number"));
    assert!(percent > 50.0, "coverage {percent}");

    // unittest's own output reaches the job's output lines.
    let unittest_out = job(doc, "unittest")["output"].to_string();
    assert!(unittest_out.contains("OK"), "{unittest_out}");

    // `htmlcov/` is kept as an artifact: a real zip with the report's index.
    let artifacts = job(doc, "pytest")["artifacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let archive = artifacts
        .iter()
        .filter_map(Value::as_str)
        .find(|p| p.ends_with(".zip"))
        .unwrap_or_else(|| panic!("pytest has no artifacts archive: {artifacts:?}"));
    let mut zip = zip::ZipArchive::new(fs::File::open(archive).expect("archive opens"))
        .expect("artifacts archive is a zip");
    let mut index = String::new();
    zip.by_name("htmlcov/index.html")
        .expect("htmlcov/index.html archived")
        .read_to_string(&mut index)
        .expect("index readable");
    assert!(index.contains("Coverage report"), "not a coverage page");

    // The wheel is built and kept.
    let build_out = job(doc, "build")["output"].to_string();
    assert!(build_out.contains("built textkit"), "{build_out}");

    // The user's checkout is untouched: the jobs ran in their own copies.
    assert!(
        !repo.join(".venv").exists(),
        "a job wrote into the checkout"
    );
    assert!(
        !repo.join("htmlcov").exists(),
        "a job wrote into the checkout"
    );
}

#[test]
fn example_python_app_passes_with_the_shell_executor() {
    let (repo, doc) = run_example(&[]);
    assert_example_passed(repo.path(), &doc);
}

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
    } else if !ok(&["image", "inspect", "python:3.11-slim"]) {
        Some("the image `python:3.11-slim` is missing: run scripts/test-images.sh".to_owned())
    } else {
        None
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

#[test]
fn example_python_app_passes_with_the_docker_executor() {
    if !docker_available() {
        return;
    }
    let (repo, doc) = run_example(&["--executor", "docker"]);
    assert_example_passed(repo.path(), &doc);
}
