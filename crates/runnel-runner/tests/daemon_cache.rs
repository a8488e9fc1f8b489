//! The distributed cache (`[runners.cache]` with `Type = "s3"`) against real S3 servers (moto,
//! s3rver and s3s-fs, started by `scripts/start-s3.sh`): runner daemons on the fake GitLab push and restore caches
//! through pre-signed URLs, with the shell and the Docker executor. Each daemon has its own
//! builds and cache directories, so a restore can only come from the bucket.

mod daemon_shell_support;

use std::sync::Arc;

use daemon_shell_support::start_shell_daemon;
use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, docker_available};
use runnel_runner::docker_adapter::RunnerExecutors;
use runnel_runner::test_support::{
    AUTH_ACCESS_KEY, AUTH_BUCKET, FakeGitLab, FakeJobState, JobSpec, S3Server, SIGV4_ACCESS_KEY,
    SIGV4_BUCKET, SIGV4_SECRET_KEY, TestDaemon, s3_auth_server, s3_server, s3_sigv4_server,
};
use serde_json::{Value, json};

const SECRET: &str = "runnel-secret-key-do-not-print";

fn cache(key: &str, policy: &str, fallback_keys: &[&str]) -> Value {
    json!({"key": key, "untracked": false, "policy": policy, "paths": ["venv/"], "when": "on_success", "fallback_keys": fallback_keys})
}

/// A real venv (`python3 -m venv`: `bin/python3` is a symlink to the interpreter outside the
/// project, `lib64 -> lib`), a package in its site-packages, a script and a relative link.
const MAKE_VENV: &str = "python3 -m venv --without-pip venv && sp=$(venv/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && mkdir -p $sp/pkg && echo 'VALUE = 42' > $sp/pkg/__init__.py && printf '#!/bin/sh\\necho tool\\n' > venv/bin/tool && chmod +x venv/bin/tool && ln -s tool venv/bin/tool-link";
/// The restored venv works: its interpreter link was recreated as stored and runs, finds the
/// venv (`sys.prefix`) and the package in it.
const CHECK_VENV: &str = "test -L venv/bin/python3 && venv/bin/python3 -c 'import pkg, sys; assert pkg.VALUE == 42, pkg.VALUE; assert sys.prefix != sys.base_prefix; print(\"venv ok\", sys.prefix)' && test -L venv/bin/tool-link && venv/bin/tool-link";

/// Runs `spec` on a new daemon for `token` with the runner lines `runner`; returns the job's
/// final state and trace.
async fn run_on_new_daemon(
    fake: &FakeGitLab,
    token: &str,
    runner: &str,
    spec: JobSpec,
) -> (FakeJobState, String) {
    let daemon = start_shell_daemon(fake, token, "check_interval = 1", runner);
    let id = fake.add_job(spec);
    let job = fake.wait_for_final(id).await;
    daemon.stop().await;
    let trace = fake.trace_text(id);
    assert!(
        !trace.contains(SECRET),
        "the secret key is in the trace:\n{trace}"
    );
    assert!(
        !trace.contains("X-Amz-"),
        "a signed URL is in the trace:\n{trace}"
    );
    (job.state, trace)
}

fn push_job(key: &str) -> JobSpec {
    JobSpec {
        cache: vec![cache(key, "push", &[])],
        ..JobSpec::script(&[MAKE_VENV])
    }
}

fn pull_job(key: &str, fallback_keys: &[&str], check: &str) -> JobSpec {
    JobSpec {
        cache: vec![cache(key, "pull", fallback_keys)],
        ..JobSpec::script(&[check])
    }
}

async fn setup() -> Option<(S3Server, FakeGitLab, String)> {
    let s3 = s3_server()?;
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    Some((s3, fake, token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_cache_pushed_on_one_runner_is_restored_on_another() {
    let Some((s3, fake, token_a)) = setup().await else {
        return;
    };
    let token_b = fake.create_runner();
    let bucket = s3.create_bucket("shared").await;
    let runner = s3.cache_section(&bucket, "    Shared = true\n    Path = \"ci\"");

    let (state, trace) =
        run_on_new_daemon(&fake, &token_a, &runner, push_job("venv-non_protected")).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Uploading cache.zip to http://"), "{trace}");
    // Shared: no `runner/<token>` part, so every runner finds it.
    assert_eq!(s3.list(&bucket).await, ["ci/project/7/venv-non_protected"]);

    let (state, trace) = run_on_new_daemon(
        &fake,
        &token_b,
        &runner,
        pull_job("venv-non_protected", &[], CHECK_VENV),
    )
    .await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains(&format!(
            "Downloading cache from http://{}/{bucket}/ci/project/7/venv-non_protected",
            s3.address
        )),
        "{trace}"
    );
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
    assert!(trace.contains("venv ok"), "{trace}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_and_unprotected_refs_never_share_a_cache() {
    let Some((s3, fake, token)) = setup().await else {
        return;
    };
    let bucket = s3.create_bucket("protected").await;
    let runner = s3.cache_section(&bucket, "");
    let short = runnel_runner::config::short_token(&token);

    let mut push = push_job("venv-protected");
    push.protected = true;
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, push).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    // Not shared: under this runner's short token.
    assert_eq!(
        s3.list(&bucket).await,
        [format!("runner/{short}/project/7/venv-protected")]
    );

    // An unprotected job cannot reach the protected cache, not even through
    // CACHE_FALLBACK_KEY (CVE-2022-1423).
    let mut poison = pull_job("venv-non_protected", &[], "test ! -e venv");
    poison.variables = vec![("CACHE_FALLBACK_KEY".into(), "venv-protected".into(), false)];
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, poison).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(
        trace
            .contains("CACHE_FALLBACK_KEY \"venv-protected\" not allowed to end in \"-protected\""),
        "{trace}"
    );
    assert!(
        !trace.contains("Checking cache for venv-protected"),
        "{trace}"
    );
    assert!(trace.contains("Failed to extract cache"), "{trace}");

    // A protected job restores it.
    let mut pull = pull_job("venv-protected", &[], CHECK_VENV);
    pull.protected = true;
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, pull).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_keys_and_cache_fallback_key_restore_from_the_bucket() {
    let Some((s3, fake, token)) = setup().await else {
        return;
    };
    let bucket = s3.create_bucket("fallback").await;
    let runner = s3.cache_section(&bucket, "    Shared = true");
    let (state, trace) =
        run_on_new_daemon(&fake, &token, &runner, push_job("main-non_protected")).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");

    let (state, trace) = run_on_new_daemon(
        &fake,
        &token,
        &runner,
        pull_job(
            "feature-non_protected",
            &["missing-non_protected", "main-non_protected"],
            CHECK_VENV,
        ),
    )
    .await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    let checked: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("Checking cache for"))
        .collect();
    assert_eq!(checked.len(), 3, "{trace}");
    assert!(checked[2].contains("main-non_protected"), "{trace}");
    assert!(trace.contains("Successfully extracted cache"), "{trace}");

    let mut by_variable = pull_job("other-non_protected", &[], CHECK_VENV);
    by_variable.variables = vec![(
        "CACHE_FALLBACK_KEY".into(),
        "main-non_protected".into(),
        false,
    )];
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, by_variable).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_over_max_uploaded_archive_size_stays_local() {
    let Some((s3, fake, token)) = setup().await else {
        return;
    };
    let bucket = s3.create_bucket("limit").await;
    let runner = s3.cache_section(&bucket, "    MaxUploadedArchiveSize = 4096");
    let job = JobSpec {
        cache: vec![cache("big-non_protected", "push", &[])],
        ..JobSpec::script(&["mkdir -p venv && head -c 20000 /dev/urandom > venv/blob"])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains("is too big (Limit is set to 4096). Cache will be stored only locally."),
        "{trace}"
    );
    assert!(!trace.contains("Uploading cache.zip"), "{trace}");
    assert_eq!(s3.list(&bucket).await, Vec::<String>::new());

    // Under the limit, the same job uploads.
    let job = JobSpec {
        cache: vec![cache("small-non_protected", "push", &[])],
        ..JobSpec::script(&["mkdir -p venv && head -c 1000 /dev/urandom > venv/blob"])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert_eq!(s3.list(&bucket).await.len(), 1, "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_a_dead_endpoint_is_one_warning_and_the_job_goes_on() {
    let Some((s3, fake, token)) = setup().await else {
        return;
    };
    let runner = s3.cache_section("no-such-bucket-runnel", "");
    let job = JobSpec {
        cache: vec![cache("venv-non_protected", "pull-push", &[])],
        ..JobSpec::script(&[MAKE_VENV])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains("the cache server answered 404 Not Found (NoSuchBucket)"),
        "{trace}"
    );
    assert!(trace.contains("Failed to create cache"), "{trace}");

    let dead = S3Server {
        address: "127.0.0.1:1".into(),
    };
    let runner = dead.cache_section("cache", "");
    let job = JobSpec {
        cache: vec![cache("venv-non_protected", "pull-push", &[])],
        ..JobSpec::script(&[MAKE_VENV])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    let reasons: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("failed to reach the cache server"))
        .collect();
    // One line for the download, one for the upload.
    assert_eq!(reasons.len(), 2, "{trace}");
    assert!(reasons[0].contains("failed to download the cache from http://127.0.0.1:1/cache/"));
    assert!(trace.contains("Failed to create cache"), "{trace}");
}

/// As [`run_on_new_daemon`], with the Docker executor.
async fn run_on_new_docker_daemon(
    fake: &FakeGitLab,
    token: &str,
    runner: &str,
    spec: JobSpec,
) -> (FakeJobState, String) {
    let daemon = TestDaemon::with_one_runner(
        fake,
        token,
        ("docker", Arc::new(RunnerExecutors::new())),
        "docker-cache-runner",
        "concurrent = 1\ncheck_interval = 1",
        runner,
    );
    let id = fake.add_job(spec);
    let job = fake.wait_for_final(id).await;
    daemon.stop().await;
    let trace = fake.trace_text(id);
    assert!(
        !trace.contains(SECRET),
        "the secret key is in the trace:\n{trace}"
    );
    (job.state, trace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runners_share_a_cache_through_the_bucket() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let Some((s3, fake, token_a)) = setup().await else {
        return;
    };
    let token_b = fake.create_runner();
    let bucket = s3.create_bucket("docker").await;
    let runner = format!(
        "  [runners.docker]\n    image = \"{TEST_BUSYBOX_IMAGE}\"\n    pull_policy = [\"if-not-present\"]\n{}",
        s3.cache_section(&bucket, "    Shared = true")
    );
    let push = JobSpec {
        cache: vec![cache("venv-non_protected", "push", &[])],
        ..JobSpec::script(&[
            "mkdir -p venv/bin && echo 'VALUE = 42' > venv/v.py && ln -s /usr/bin/python3 venv/bin/python3",
        ])
    };
    let (state, trace) = run_on_new_docker_daemon(&fake, &token_a, &runner, push).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Uploading cache.zip to http://"), "{trace}");
    assert_eq!(s3.list(&bucket).await, ["project/7/venv-non_protected"]);

    let pull = JobSpec {
        cache: vec![cache("venv-non_protected", "pull", &[])],
        ..JobSpec::script(&[
            "cat venv/v.py",
            "echo \"python3 -> $(readlink venv/bin/python3)\"",
        ])
    };
    let (state, trace) = run_on_new_docker_daemon(&fake, &token_b, &runner, pull).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Downloading cache from http://"), "{trace}");
    assert!(trace.contains("Successfully extracted cache"), "{trace}");
    assert!(trace.contains("\nVALUE = 42"), "{trace}");
    assert!(trace.contains("python3 -> /usr/bin/python3"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_one_warning_and_the_job_goes_on() {
    // s3rver refuses an access key it does not know (moto takes any).
    let Some(auth) = s3_auth_server() else {
        return;
    };
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    // The bucket outlives the test: one key per run.
    let key = format!("creds-{}-non_protected", std::process::id());
    let wrong_key = "AKIAWRONGRUNNELKEY";
    let runner = auth.cache_section_with_keys(AUTH_BUCKET, "    Shared = true", wrong_key, SECRET);
    let job = JobSpec {
        cache: vec![cache(&key, "pull-push", &[])],
        ..JobSpec::script(&[MAKE_VENV])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    let reasons: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("the cache server answered 403 Forbidden (InvalidAccessKeyId)"))
        .collect();
    // One line for the download, one for the upload.
    assert_eq!(reasons.len(), 2, "{trace}");
    assert!(
        reasons[0].contains(&format!(
            "failed to download the cache from http://{}/{AUTH_BUCKET}/project/7/{key}",
            auth.address
        )),
        "{trace}"
    );
    assert!(reasons[1].contains("failed to upload the cache"), "{trace}");
    assert!(trace.contains("Failed to create cache"), "{trace}");
    assert!(
        !trace.contains(wrong_key),
        "the access key is printed:\n{trace}"
    );

    // With the key the server knows, the same cache is pushed and restored: the refusal above
    // was the credentials'.
    let runner = auth.cache_section_with_keys(
        AUTH_BUCKET,
        "    Shared = true",
        AUTH_ACCESS_KEY,
        AUTH_ACCESS_KEY,
    );
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, push_job(&key)).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Created cache"), "{trace}");
    assert!(!trace.contains("403"), "{trace}");
    let (state, trace) =
        run_on_new_daemon(&fake, &token, &runner, pull_job(&key, &[], CHECK_VENV)).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("venv ok"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_one_warning_and_the_job_goes_on() {
    // s3s-fs verifies the signature of pre-signed URLs (moto and s3rver do not).
    let Some(sigv4) = s3_sigv4_server() else {
        return;
    };
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    // The bucket outlives the test: one key per run.
    let key = format!("secret-{}-non_protected", std::process::id());
    // The right access key with a wrong secret key (SECRET, which no trace may show).
    let runner =
        sigv4.cache_section_with_keys(SIGV4_BUCKET, "    Shared = true", SIGV4_ACCESS_KEY, SECRET);
    let job = JobSpec {
        cache: vec![cache(&key, "pull-push", &[])],
        ..JobSpec::script(&[MAKE_VENV])
    };
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, job).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    let reasons: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("the cache server answered 403 Forbidden"))
        .collect();
    // One line for the download, one for the upload, each naming the storage's reason.
    assert_eq!(reasons.len(), 2, "{trace}");
    assert!(
        reasons
            .iter()
            .all(|l| l.contains("(SignatureDoesNotMatch)")),
        "{trace}"
    );
    assert!(
        reasons[0].contains(&format!(
            "failed to download the cache from http://{}/{SIGV4_BUCKET}/project/7/{key}",
            sigv4.address
        )),
        "{trace}"
    );
    assert!(reasons[1].contains("failed to upload the cache"), "{trace}");
    assert!(trace.contains("Failed to create cache"), "{trace}");
    assert!(
        !trace.contains(SIGV4_ACCESS_KEY),
        "the access key is printed:\n{trace}"
    );

    // With the right secret key, the same cache is pushed and restored: the refusal above was
    // the signature's.
    let runner = sigv4.cache_section_with_keys(
        SIGV4_BUCKET,
        "    Shared = true",
        SIGV4_ACCESS_KEY,
        SIGV4_SECRET_KEY,
    );
    let (state, trace) = run_on_new_daemon(&fake, &token, &runner, push_job(&key)).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Created cache"), "{trace}");
    assert!(!trace.contains("403"), "{trace}");
    assert!(!trace.contains(SIGV4_SECRET_KEY), "{trace}");
    let (state, trace) =
        run_on_new_daemon(&fake, &token, &runner, pull_job(&key, &[], CHECK_VENV)).await;
    assert_eq!(state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("venv ok"), "{trace}");
}
