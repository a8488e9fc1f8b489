//! `runnel run` with `executor = "custom"` end to end: the binary, the fake GitLab and drivers
//! written in shell. A job runs through the driver; a daemon killed with SIGKILL mid-job leaves
//! its driver processes and job directory behind, and the next start sweeps them up (kills the
//! processes, runs `cleanup_exec` with the job's environment).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use runnel_runner::test_support::{FakeGitLab, FakeJobState, GitSource, JobSpec};
use tokio::process::Child;

mod support;
use support::runnel_command as runnel;

/// Writes the bash driver `name` into `dir`.
fn driver(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).expect("write the driver");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A config with one custom runner whose drivers log to `<dir>/calls.log`.
fn write_config(dir: &Path, token: &str, url: &str) -> PathBuf {
    let log = dir.join("calls.log");
    let log = log.display();
    let config = driver(
        dir,
        "config.sh",
        r#"echo '{"driver": {"name": "test", "version": "v1"}, "job_env": {"DRIVER_SECRET": "from-config"}}'"#,
    );
    let run = driver(
        dir,
        "run.sh",
        &format!(
            r#"echo "run $2 $CUSTOM_ENV_CI_JOB_ID" >> {log}
bash "$1" || exit "$BUILD_FAILURE_EXIT_CODE""#
        ),
    );
    let cleanup = driver(
        dir,
        "cleanup.sh",
        &format!(r#"echo "cleanup $CUSTOM_ENV_CI_JOB_ID" >> {log}"#),
    );
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
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
    config_exec = "{config}"
    run_exec = "{run}"
    cleanup_exec = "{cleanup}"
    graceful_kill_timeout = 2
    force_kill_timeout = 2
"#,
            builds = dir.join("builds").display(),
            cache = dir.join("cache").display(),
            config = config.display(),
            run = run.display(),
            cleanup = cleanup.display(),
        ),
    )
    .expect("write config.toml");
    path
}

fn start_run(config: &Path, log: &Path) -> Child {
    runnel()
        .args(["run", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("runnel run starts")
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default()
}

/// Processes (not zombies) whose environment marks them as driver calls of a job under `dir`.
fn driver_processes(dir: &Path) -> Vec<String> {
    let prefix = format!("RUNNEL_CUSTOM_EXECUTOR_DIR={}/", dir.display());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            env.split(|b| *b == 0)
                .any(|v| v.starts_with(prefix.as_bytes()))
                && !status.contains("State:\tZ")
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_runner_runs_jobs_through_the_driver() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &fake.create_runner(), &fake.url());
    let ok = fake.add_job(JobSpec::script(&["echo driver said $DRIVER_SECRET"]));
    let failing = fake.add_job(JobSpec::script(&["exit 3"]));
    let log = dir.path().join("run.log");
    let mut child = start_run(&config, &log);
    let job = fake.wait_for_final(ok).await;
    let trace = fake.trace_text(ok);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains("Using Custom executor with driver test v1..."),
        "{trace}"
    );
    assert!(trace.contains("driver said from-config"), "{trace}");
    assert_eq!(
        fake.wait_for_final(failing).await.state,
        FakeJobState::Failed
    );
    assert_eq!(
        fake.final_field(failing, "failure_reason"),
        "script_failure"
    );
    let calls = calls(dir.path());
    assert!(
        calls.contains(&format!("run build_script {ok}\n")),
        "{calls}"
    );
    assert!(calls.contains(&format!("cleanup {ok}\n")), "{calls}");
    assert!(calls.contains(&format!("cleanup {failing}\n")), "{calls}");
    let pid = child.id().expect("running").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-QUIT", &pid])
        .status();
    assert!(child.wait().await.expect("exits").success());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_daemon_leaves_driver_processes_that_the_next_start_sweeps() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &fake.create_runner(), &fake.url());
    let id = fake.add_job(JobSpec::script(&["echo started", "sleep 986"]));
    let mut child = start_run(&config, &dir.path().join("run1.log"));
    fake.wait_for_trace(id, "started").await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    // Driver calls run in process groups of their own, so they outlive the killed daemon.
    assert!(!driver_processes(dir.path()).is_empty(), "nothing to sweep");
    let log = dir.path().join("run2.log");
    let mut again = start_run(&config, &log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !calls(dir.path()).contains(&format!("cleanup {id}\n")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cleanup: {}",
            calls(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(driver_processes(dir.path()), Vec::<String>::new());
    let pid = again.id().expect("running").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-QUIT", &pid])
        .status();
    assert!(again.wait().await.expect("exits").success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("cleaned up custom executor jobs left by an earlier runnel"),
        "{text}"
    );
}

/// `runnel exec --executor custom` with the `--custom-*` flags, and with a `--runner-config`
/// file whose flags override its keys.
#[test]
fn exec_runs_jobs_through_drivers_given_by_flags_or_a_runner_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    std::fs::write(
        repo.join(".gitlab-ci.yml"),
        "job:\n  script:\n    - echo \"job on $DRIVER_NAME\"\n",
    )
    .expect("write the pipeline");
    support::commit_repo(&repo, "pipeline");
    let drivers = dir.path().join("drivers");
    std::fs::create_dir(&drivers).expect("drivers dir");
    driver(
        &drivers,
        "config.sh",
        r#"echo '{"driver": {"name": "flags"}, "job_env": {"DRIVER_NAME": "the flags driver"}}'"#,
    );
    driver(
        &drivers,
        "run.sh",
        r#"echo "stage $2"; bash "$1" || exit "$BUILD_FAILURE_EXIT_CODE""#,
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["exec", "-C"])
            .arg(&repo)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let config_sh = drivers.join("config.sh").display().to_string();
    let run_sh = drivers.join("run.sh").display().to_string();
    let (code, text) = run(&[
        "--executor",
        "custom",
        "--custom-config-exec",
        &config_sh,
        "--custom-run-exec",
        &run_sh,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("stage build_script"), "{text}");
    assert!(text.contains("job on the flags driver"), "{text}");

    // A config file with relative driver paths; a flag overrides its run_exec.
    std::fs::write(
        dir.path().join("config.toml"),
        "[[runners]]\n  name = \"other\"\n  executor = \"shell\"\n\n[[runners]]\n  name = \"c\"\n  executor = \"custom\"\n  [runners.custom]\n    config_exec = \"drivers/config.sh\"\n    run_exec = \"drivers/missing.sh\"\n",
    )
    .expect("write config.toml");
    let config = dir.path().join("config.toml").display().to_string();
    let (code, text) = run(&[
        "--executor",
        "custom",
        "--runner-config",
        &config,
        "--custom-run-exec",
        &run_sh,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("job on the flags driver"), "{text}");

    // Without a run_exec, a clear error before any job.
    let (code, text) = run(&["--executor", "custom"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("custom executor is missing RunExec"),
        "{text}"
    );
    let (code, text) = run(&["--custom-run-exec", &run_sh]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("need `--executor custom`"), "{text}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// As gitlab-runner's custom executor, the driver runs the sources, cache and artifact stages
/// itself (`runnel helper stage`): here every `run_exec` call runs its script in a mount
/// namespace of its own where the runner's builds and cache directories are the driver's own
/// disk (`remote/`), so nothing the runner does on its side can reach the job. A first job
/// clones the repository, saves a cache and uploads an artifact; a second one fetches, restores
/// that cache and downloads that artifact. The runner's own directories stay without sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_environment_without_the_runners_files_gets_sources_cache_and_artifacts_itself() {
    let probe = std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            !std::env::var("CI").is_ok_and(|ci| ci == "true"),
            "`unshare --mount` does not work here (needs root)"
        );
        println!("SKIPPED: `unshare --mount` does not work here (needs root)");
        return;
    }
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README"), "hello from git").expect("write");
    git(repo.path(), &["add", "README"]);
    git(
        repo.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "-m",
            "first",
        ],
    );
    let sha = git(repo.path(), &["rev-parse", "HEAD"]);
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());

    let dir = tempfile::tempdir().expect("tempdir");
    let (builds, cache) = (dir.path().join("builds"), dir.path().join("cache"));
    let remote = dir.path().join("remote");
    for d in [
        &builds,
        &cache,
        &remote.join("builds"),
        &remote.join("cache"),
    ] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let log = dir.path().join("calls.log");
    let run = driver(
        dir.path(),
        "run.sh",
        &format!(
            r#"echo "run $2 $CUSTOM_ENV_CI_JOB_ID" >> {log}
cp "$1" {remote}/script.sh
unshare --mount bash -c 'mount --bind "$0" "$1" && mount --bind "$2" "$3" && exec bash "$4"' \
    {remote}/builds {builds} {remote}/cache {cache} {remote}/script.sh || exit "$BUILD_FAILURE_EXIT_CODE""#,
            log = log.display(),
            remote = remote.display(),
            builds = builds.display(),
            cache = cache.display(),
        ),
    );
    let token = fake.create_runner();
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
"#,
            url = fake.url(),
            builds = builds.display(),
            cache = cache.display(),
            run = run.display(),
        ),
    )
    .expect("write config.toml");
    let cache_entry = |policy: &str| {
        serde_json::json!({"key": "deps-non_protected", "untracked": false, "policy": policy,
            "paths": ["venv/"], "when": "on_success", "fallback_keys": []})
    };
    let first = fake.add_job(JobSpec {
        git: Some(GitSource::new("clone", &sha)),
        cache: vec![cache_entry("push")],
        artifact_paths: vec!["out/".to_owned()],
        ..JobSpec::script(&[
            "cat README",
            "mkdir -p venv out && echo cached-deps > venv/deps.txt && echo built-artifact > out/a.txt",
        ])
    });
    let second = fake.add_job(JobSpec {
        git: Some(GitSource::new("fetch", &sha)),
        cache: vec![cache_entry("pull")],
        dependencies: vec![first],
        ..JobSpec::script(&["cat README out/a.txt venv/deps.txt"])
    });
    let mut child = start_run(&config, &dir.path().join("run.log"));
    let one = fake.wait_for_final(first).await;
    let trace = fake.trace_text(first);
    assert_eq!(one.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("hello from git"), "{trace}");
    assert!(trace.contains("Created cache"), "{trace}");
    let two = fake.wait_for_final(second).await;
    let trace = fake.trace_text(second);
    assert_eq!(two.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains("hello from gitbuilt-artifact\ncached-deps"),
        "{trace}"
    );
    let calls = calls(dir.path());
    for stage in [
        "get_sources",
        "archive_cache",
        "upload_artifacts_on_success",
    ] {
        assert!(calls.contains(&format!("run {stage} {first}\n")), "{calls}");
    }
    for stage in [
        "get_sources",
        "restore_cache",
        "download_artifacts",
        "build_script",
    ] {
        assert!(
            calls.contains(&format!("run {stage} {second}\n")),
            "{calls}"
        );
    }
    // The runner's side never saw the sources, the cache or the artifact.
    let runner_side: Vec<String> = files_under(&builds)
        .into_iter()
        .chain(files_under(&cache))
        .filter(|f| !f.contains(".runnel-custom"))
        .collect();
    assert_eq!(runner_side, Vec::<String>::new());
    let remote_side = files_under(&remote);
    assert!(
        remote_side.iter().any(|f| f.ends_with("acme/app/README")),
        "{remote_side:?}"
    );
    assert!(
        remote_side.iter().any(
            |f| f.ends_with("deps-non_protected/cache.zip") || f.contains("deps-non_protected")
        ),
        "{remote_side:?}"
    );
    let pid = child.id().expect("running").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-QUIT", &pid])
        .status();
    assert!(child.wait().await.expect("exits").success());
    assert_eq!(fake.violations(), Vec::<String>::new());
}
