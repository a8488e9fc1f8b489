//! `runnel run` with `executor = "custom"` and a distributed cache (`[runners.cache]`, S3 on
//! the moto server `scripts/start-s3.sh` starts): the driver's `restore_cache` and
//! `archive_cache` stages (`runnel helper stage`) go to the bucket through URLs the runner
//! signs, as gitlab-runner's `cache-extractor`/`cache-archiver` get a signed `--url`; the
//! credentials never reach the driver's scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec, s3_server};

mod support;

const SECRET: &str = "runnel-secret-key-do-not-print";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_driver_cache_stages_use_the_distributed_cache_through_signed_urls() {
    let Some(s3) = s3_server() else { return };
    let bucket = s3.create_bucket("custom-cache").await;
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).expect("mkdir");
    let run = dir.path().join("run.sh");
    std::fs::write(
        &run,
        format!(
            "#!/bin/bash\ncp \"$1\" {}/\"$CUSTOM_ENV_CI_JOB_ID-$2.sh\"\nbash \"$1\" || exit \"$BUILD_FAILURE_EXIT_CODE\"\n",
            scripts.display()
        ),
    )
    .expect("write the driver");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cache = dir.path().join("cache");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"concurrent = 1
check_interval = 1
shutdown_timeout = 10

[[runners]]
  name = "custom"
  url = "{url}"
  token = "{token}"
  executor = "custom"
  builds_dir = "{builds}"
  cache_dir = "{cache}"
  [runners.custom]
    run_exec = "{run}"
{section}"#,
            url = fake.url(),
            token = fake.create_runner(),
            builds = dir.path().join("builds").display(),
            cache = cache.display(),
            run = run.display(),
            section = s3.cache_section(&bucket, ""),
        ),
    )
    .expect("write config.toml");
    let entry = |policy: &str| {
        serde_json::json!({"key": "deps-non_protected", "untracked": false, "policy": policy,
            "paths": ["venv/"], "when": "on_success", "fallback_keys": []})
    };
    let pushed = fake.add_job(JobSpec {
        cache: vec![entry("push")],
        ..JobSpec::script(&["mkdir -p venv && echo cached-deps > venv/deps.txt"])
    });
    let _daemon = support::runnel_run(dir.path(), &config, &dir.path().join("run.log"))
        .spawn()
        .expect("runnel run starts");
    let job = fake.wait_for_final(pushed).await;
    let trace = fake.trace_text(pushed);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    let location = format!("http://{}/{bucket}/", s3.address);
    assert!(
        trace.contains(&format!("Uploading cache.zip to {location}")),
        "{trace}"
    );
    assert!(trace.contains("Created cache"), "{trace}");
    let objects = s3.list(&bucket).await;
    assert!(
        objects.iter().any(|o| o.ends_with("/deps-non_protected")),
        "{objects:?}"
    );

    // Without the local copy and the old project directory, the files can only come from the
    // bucket.
    std::fs::remove_dir_all(&cache).expect("remove the local cache");
    std::fs::remove_dir_all(dir.path().join("builds")).expect("remove the builds");
    let pulled = fake.add_job(JobSpec {
        cache: vec![entry("pull")],
        ..JobSpec::script(&["cat venv/deps.txt"])
    });
    let job = fake.wait_for_final(pulled).await;
    let trace = fake.trace_text(pulled);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains(&format!("Downloading cache from {location}")),
        "{trace}"
    );
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
    assert!(trace.contains("\ncached-deps"), "{trace}");

    for id in [pushed, pulled] {
        assert!(!fake.trace_text(id).contains(SECRET), "job {id}");
    }
    let stage_scripts = files(&scripts);
    assert!(
        stage_scripts
            .iter()
            .any(|f| f.ends_with("restore_cache.sh"))
            && stage_scripts
                .iter()
                .any(|f| f.ends_with("archive_cache.sh")),
        "{stage_scripts:?}"
    );
    for file in stage_scripts {
        let text = std::fs::read_to_string(scripts.join(&file)).unwrap_or_default();
        assert!(!text.contains(SECRET), "{file} holds the secret key");
    }
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
