//! Least privilege: `runnel run --user U` runs shell-executor jobs as `U`, as gitlab-runner does
//! (`su -s /bin/bash U -c "bash -l"`), with U's `HOME`, the checkout and the builds and cache
//! directories owned by U, and no way for a job to read `config.toml` or the runners' tokens.
//! Needs root and the user `runnel-test-job` (scripts/setup-test-user.sh, run by .ci/run).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use runnel_runner::test_support::{FakeGitLab, FakeJobState, GitSource, JobSpec};

mod support;
use support::runnel_command as runnel;

const JOB_USER: &str = "runnel-test-job";

/// The job user's uid and home, or `None` (with a SKIPPED message) where the test cannot run.
fn job_user() -> Option<(u32, String)> {
    let why = if !StdCommand::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    {
        "not running as root (switching users needs root)".to_owned()
    } else {
        let out = StdCommand::new("getent")
            .args(["passwd", JOB_USER])
            .output()
            .expect("getent runs");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let fields: Vec<&str> = line.split(':').collect();
        if let (true, Some(uid), Some(home)) = (out.status.success(), fields.get(2), fields.get(5))
        {
            return Some((uid.parse().expect("numeric uid"), (*home).to_owned()));
        }
        format!("no user `{JOB_USER}` (scripts/setup-test-user.sh creates it)")
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI=true needs this test to run");
    }
    eprintln!("SKIPPED: {why}; .ci/run sets this up");
    None
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn register(
    config: &Path,
    fake: &FakeGitLab,
    name: &str,
    builds: &Path,
    cache: &Path,
) -> String {
    let token = fake.create_runner();
    let out = runnel()
        .args(["register", "--non-interactive", "-c"])
        .arg(config)
        .args(["--url", &fake.url(), "--token", &token, "--name", name])
        .args(["--executor", "shell", "--builds-dir"])
        .arg(builds)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .await
        .expect("register runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_jobs_run_as_the_user_and_cannot_read_the_config_or_the_tokens() {
    let Some((uid, home)) = job_user() else {
        return;
    };
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README"), "hello").expect("write");
    git(repo.path(), &["add", "README"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let sha = git(repo.path(), &["rev-parse", "HEAD"]);
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());

    // The config's directory is open to everyone: only the file's own 0600 protects it.
    let etc = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = etc.path().join("config.toml");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (builds, cache) = (work.path().join("builds"), work.path().join("cache"));
    let token = register(&config, &fake, "mine", &builds, &cache).await;
    // Another runner of the same daemon: its token is in the same file.
    let other = register(&config, &fake, "other", &builds, &cache).await;
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .expect("read")
            .replace("check_interval = 0", "check_interval = 1"),
    )
    .expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let script = [
        "echo \"whoami=$(id -un) home=$HOME user=$USER\"".to_owned(),
        "echo \"owner=$(stat -c %U .) readme=$(stat -c %U README)\"".to_owned(),
        "touch made-by-job && echo \"made=$(stat -c %U made-by-job)\"".to_owned(),
        format!("if cat {} ; then echo \"config read: $((40 + 2))\"; else echo config-refused; fi", config.display()),
        // The daemon's environment and command line, where a token could be.
        "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; done | tr '\\0' '\\n' > seen.txt || true".to_owned(),
        "env >> seen.txt".to_owned(),
        format!("grep -rhs '' {} >> seen.txt || true", etc.path().display()),
        "echo \"seen=$(wc -l < seen.txt)\"".to_owned(),
    ];
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let clone = fake.add_job(JobSpec {
        git: Some(GitSource::new("clone", &sha)),
        ..JobSpec::script(&script)
    });
    let log = etc.path().join("run.log");
    let mut daemon = runnel()
        .args(["run", "--user", JOB_USER, "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("runnel run starts");
    let wait = tokio::time::timeout(Duration::from_secs(120), fake.wait_for_final(clone)).await;
    let job = wait.unwrap_or_else(|_| {
        panic!(
            "the job did not end: {}\n{}",
            fake.trace_text(clone),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let trace = fake.trace_text(clone);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains(&format!("whoami={JOB_USER} home={home} user={JOB_USER}")),
        "{trace}"
    );
    assert!(
        trace.contains(&format!("owner={JOB_USER} readme={JOB_USER}")),
        "{trace}"
    );
    assert!(trace.contains(&format!("made={JOB_USER}")), "{trace}");
    assert!(
        trace.contains("Permission denied") && trace.contains("config-refused"),
        "{trace}"
    );
    assert!(!trace.contains("config read: 42"), "{trace}");

    // What the first job could see of the machine: no runner token anywhere.
    let project = builds
        .read_dir()
        .expect("builds")
        .flatten()
        .next()
        .expect("a runner dir")
        .path();
    let seen = find_file(&project, "seen.txt").expect("seen.txt in the checkout");
    let seen_text = std::fs::read_to_string(&seen).expect("read");
    assert!(seen_text.lines().count() > 5, "{seen_text}");
    assert_eq!(std::fs::metadata(&seen).expect("stat").uid(), uid);
    // A second job fetches into the checkout the first one (as the job user) owns.
    let fetch = fake.add_job(JobSpec {
        git: Some(GitSource::new("fetch", &sha)),
        ..JobSpec::script(&["cat README", "touch again && stat -c %U again"])
    });
    let job = fake.wait_for_final(fetch).await;
    let second = fake.trace_text(fetch);
    assert_eq!(job.state, FakeJobState::Success, "{second}");
    assert!(
        second.contains("hello") && second.contains(&format!("\n{JOB_USER}\n")),
        "{second}"
    );
    for secret in [&token, &other] {
        assert!(
            !seen_text.contains(secret.as_str()),
            "a job saw a runner token"
        );
        assert!(!trace.contains(secret.as_str()) && !second.contains(secret.as_str()));
    }
    for dir in [&builds, &cache] {
        assert_eq!(
            std::fs::metadata(dir).expect("stat").uid(),
            uid,
            "{}",
            dir.display()
        );
    }
    let mode = std::fs::metadata(&config)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config.toml must stay 0600");
    daemon.start_kill().expect("kill");
    let _ = daemon.wait().await;
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn find_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find_file(&path, name)
        {
            return Some(found);
        }
    }
    None
}

#[tokio::test]
async fn run_refuses_a_user_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "concurrent = 1\n").expect("write");
    let out = runnel()
        .args(["run", "--user", "no-such-user-runnel", "-c"])
        .arg(&config)
        .output()
        .await
        .expect("runnel runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the user `no-such-user-runnel` does not exist"),
        "{stderr}"
    );
}
