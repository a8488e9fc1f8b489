//! `runnel exec --cache-config`: caches go to the S3 bucket of a gitlab-runner `config.toml`
//! (moto, started by `scripts/start-s3.sh`), so a run in another clone of the repository finds
//! them; a config without a usable `[runners.cache]` stops the run before any job.

use std::path::Path;
use std::process::Command;

use runnel_runner::test_support::s3_server;

mod support;
use support::{commit_repo, copy_tree, job, json_document};

fn clone_of_cache_fixture(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repos/cache");
    copy_tree(&fixture, dir, &|_| false);
    commit_repo(dir, "Initial");
}

fn exec(repo: &Path, config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .current_dir(repo)
        .args(["exec", "--json", "--cache-config"])
        .arg(config)
        .output()
        .expect("runnel runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_saved_by_one_clone_is_restored_in_another() {
    let Some(s3) = s3_server() else {
        return;
    };
    let bucket = s3.create_bucket("exec").await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[runners]]\n  name = \"local\"\n  url = \"https://gitlab.example.com\"\n  token = \"glrt-exectoken123\"\n  executor = \"shell\"\n{}",
            s3.cache_section(&bucket, "    Shared = true")
        ),
    )
    .expect("config written");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    clone_of_cache_fixture(&first);
    clone_of_cache_fixture(&second);

    let (code, doc) = json_document(&exec(&first, &config));
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        job(&doc, "job")["output"]
            .to_string()
            .contains("cache cold"),
        "{doc:#}"
    );
    assert_eq!(s3.list(&bucket).await.len(), 1);

    let (code, doc) = json_document(&exec(&second, &config));
    assert_eq!(code, 0, "{doc:#}");
    let output = job(&doc, "job")["output"].to_string();
    assert!(output.contains("cache warm"), "{doc:#}");
    assert!(
        !output.contains("runnel-secret-key-do-not-print"),
        "{doc:#}"
    );
}

#[test]
fn a_cache_config_without_a_cache_type_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[runners]]\n  name = \"local\"\n  token = \"t\"\n  executor = \"shell\"\n  [runners.cache]\n    Type = \"s3\"\n",
    )
    .expect("config written");
    let repo = dir.path().join("repo");
    clone_of_cache_fixture(&repo);
    let out = exec(&repo, &config);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[runners.cache.s3] BucketName is required"),
        "{stderr}"
    );
    assert!(!repo.join(".runnel/logs").exists());
}
