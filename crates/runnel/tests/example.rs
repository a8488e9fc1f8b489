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

use runnel_exec::docker::{TEST_PYTHON_IMAGE, docker_available};
use serde_json::Value;

mod support;
use support::{commit_repo, copy_tree, job, json_document};

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

/// A committed copy of `examples/python-app`, as a user's clone would have it.
fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_tree(&example_dir(), dir.path(), &|name| {
        GENERATED.contains(&name) || name.ends_with(".egg-info")
    });
    commit_repo(dir.path(), "example");
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
    let (_, doc) = json_document(&out);
    (repo, doc)
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

#[test]
fn example_python_app_passes_with_the_docker_executor() {
    if !docker_available(&[TEST_PYTHON_IMAGE]) {
        return;
    }
    let (repo, doc) = run_example(&["--executor", "docker"]);
    assert_example_passed(repo.path(), &doc);
}

#[test]
fn example_python_app_passes_with_the_ssh_executor() {
    let Some(sshd) = runnel_exec::ssh::TestSshd::find() else {
        return;
    };
    let remote = tempfile::tempdir().expect("temporary directory");
    let known_hosts = remote.path().join("known_hosts");
    fs::write(&known_hosts, sshd.known_hosts_line()).expect("write known_hosts");
    let port = sshd.port.to_string();
    let identity = sshd.identity_file();
    let builds = remote.path().join("builds");
    let (repo, doc) = run_example(&[
        "--executor",
        "ssh",
        "--ssh-host",
        "127.0.0.1",
        "--ssh-port",
        &port,
        "--ssh-user",
        "root",
        "--ssh-identity-file",
        &identity.display().to_string(),
        "--ssh-known-hosts-file",
        &known_hosts.display().to_string(),
        "--builds-dir",
        &builds.display().to_string(),
    ]);
    assert_example_passed(repo.path(), &doc);
    assert!(
        builds.join("0").is_dir() || builds.read_dir().is_ok_and(|mut d| d.next().is_some()),
        "the jobs ran under the remote builds directory"
    );
}

/// Whether a Slurm controller answers; with `CI=true` a missing one fails the test.
fn slurm_available() -> bool {
    let reason = match Command::new("scontrol").arg("ping").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("UP") => return true,
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(err) => format!("`scontrol`: {err}"),
    };
    assert!(
        !std::env::var("CI").is_ok_and(|ci| ci == "true"),
        "no Slurm cluster ({reason}); .ci/run starts one with scripts/start-slurm.sh"
    );
    println!("SKIPPED: no Slurm cluster ({reason}); scripts/start-slurm.sh starts one");
    false
}

#[test]
fn example_python_app_passes_with_the_custom_executor_on_slurm() {
    if !slurm_available() {
        return;
    }
    // examples/custom-slurm/config.toml with the drivers where this checkout has them.
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/custom-slurm");
    let drivers = drivers.canonicalize().expect("examples/custom-slurm");
    let example = fs::read_to_string(drivers.join("config.toml")).expect("the example config");
    let config_dir = tempfile::tempdir().expect("temporary directory");
    let config = config_dir.path().join("config.toml");
    fs::write(
        &config,
        example.replace("/opt/runnel/custom-slurm", &drivers.display().to_string()),
    )
    .expect("write config.toml");
    let config = config.display().to_string();
    let (repo, doc) = run_example(&["--executor", "custom", "--runner-config", &config]);
    assert_example_passed(repo.path(), &doc);
    // Each job's full trace (`.runnel/logs/`) names the driver.
    let logs: Vec<String> = fs::read_dir(repo.path().join(".runnel/logs"))
        .expect("the job logs")
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .collect();
    let through_slurm = logs
        .iter()
        .filter(|log| log.contains("Using Custom executor with driver slurm"))
        .count();
    assert_eq!(
        through_slurm, 5,
        "not every job went through the Slurm driver"
    );
}
