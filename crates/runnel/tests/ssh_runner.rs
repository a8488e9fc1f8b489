//! `runnel run` with `executor = "ssh"` end to end: the binary, the fake GitLab and the test
//! sshd on 127.0.0.1. A job runs on the remote side; a daemon killed with SIGKILL mid-job
//! leaves no remote process (the remote watchdog ends the script when the connection drops).
//! Under the daemon the remote host fetches the sources itself, with git.

use std::path::{Path, PathBuf};

use runnel_exec::ssh::TestSshd;
use runnel_runner::test_support::{
    FakeGitLab, FakeJobState, GitSource, JobSpec, commit_readme, git, new_repository,
};
use tokio::process::Child;

mod support;

fn write_config(dir: &Path, sshd: &TestSshd, token: &str, url: &str) -> PathBuf {
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).expect("write known_hosts");
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"concurrent = 1
check_interval = 1
shutdown_timeout = 10

[[runners]]
  name = "ssh"
  url = "{url}"
  token = "{token}"
  executor = "ssh"
  builds_dir = "{builds}"
  cache_dir = "{cache}"
  [runners.ssh]
    host = "127.0.0.1"
    port = "{port}"
    user = "root"
    identity_file = "{key}"
    known_hosts_file = "{known_hosts}"
"#,
            builds = dir.join("remote-builds").display(),
            cache = dir.join("cache").display(),
            port = sshd.port,
            key = sshd.identity_file().display(),
            known_hosts = known_hosts.display(),
        ),
    )
    .expect("write config.toml");
    path
}

fn start_run(dir: &Path, config: &Path, log: &Path) -> Child {
    support::runnel_run(dir, config, log)
        .spawn()
        .expect("runnel run starts")
}

/// Processes (not zombies) whose command line is exactly `command`.
fn processes(command: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let words: Vec<&[u8]> = cmdline
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .collect();
            words.join(&b' ') == command.as_bytes() && !status.contains("State:\tZ")
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_runner_runs_jobs_remotely_and_a_sigkilled_daemon_leaves_no_remote_process() {
    let Some(sshd) = TestSshd::find() else { return };
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sshd, &fake.create_runner(), &fake.url());
    let ok = fake.add_job(JobSpec::script(&["echo remote dir=$CI_PROJECT_DIR"]));
    let mut child = start_run(dir.path(), &config, &dir.path().join("run1.log"));
    let job = fake.wait_for_final(ok).await;
    let trace = fake.trace_text(ok);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Using SSH executor..."), "{trace}");
    assert!(
        trace.contains(&format!(
            "remote dir={}/remote-builds/",
            dir.path().display()
        )),
        "{trace}"
    );

    let sleeper = "sleep 1000505";
    let id = fake.add_job(JobSpec::script(&["echo started", sleeper]));
    fake.wait_for_trace(id, "started").await;
    assert!(!processes(sleeper).is_empty(), "the remote script runs");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    support::wait_until("the remote script ends with the killed daemon", || {
        processes(sleeper).is_empty()
    })
    .await;
}

/// The value of the `KEY=` line the job printed.
fn printed(trace: &str, key: &str) -> String {
    trace
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line: {trace}"))
        .trim_end()
        .to_owned()
}

const SHOW: [&str; 2] = [
    "echo \"HEAD=$(git log -1 --format=%H)\"",
    "echo \"DIR=$PWD\"",
];

fn git_job(strategy: &str, sha: &str, script: &[&str]) -> JobSpec {
    JobSpec {
        git: Some(GitSource::new(strategy, sha)),
        ..JobSpec::script(&[&SHOW[..], script].concat())
    }
}

/// GitLab: gitlab-runner's SSH executor runs the whole generated script on the remote host,
/// `get_sources` included: the remote host clones with the job token's URL into its own builds
/// directory and keeps that checkout for the next job. The remote host is this one, so the test
/// can plant files into the remote checkout between jobs: a runner-side copy would erase them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_runner_fetches_sources_on_the_remote_host_with_git() {
    let Some(sshd) = TestSshd::find() else { return };
    let repo = new_repository();
    let first = commit_readme(repo.path(), "first version");
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sshd, &fake.create_runner(), &fake.url());
    let cloned = fake.add_job(git_job("clone", &first, &["cat README"]));
    let _daemon = start_run(dir.path(), &config, &dir.path().join("run.log"));
    let job = fake.wait_for_final(cloned).await;
    let trace = fake.trace_text(cloned);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Created fresh repository."), "{trace}");
    assert_eq!(printed(&trace, "HEAD="), first, "{trace}");
    let checkout = PathBuf::from(printed(&trace, "DIR="));
    assert!(
        checkout.starts_with(dir.path().join("remote-builds")),
        "the checkout is under the remote builds dir: {trace}"
    );
    assert_eq!(git(&checkout, &["log", "-1", "--format=%H"]), first);
    assert!(
        fake.git_requests()
            .iter()
            .any(|r| r.job == Some(cloned) && r.authorized && r.path == "git-upload-pack"),
        "the remote host fetched with the job's token: {:?}",
        fake.git_requests()
    );

    // Planted on the remote side only: `fetch` reuses the remote checkout.
    std::fs::write(checkout.join(".git/remote-mark"), "kept on the remote\n").expect("mark");
    let second = commit_readme(repo.path(), "second version");
    let fetched = fake.add_job(git_job("fetch", &second, &["cat .git/remote-mark"]));
    let job = fake.wait_for_final(fetched).await;
    let trace = fake.trace_text(fetched);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(!trace.contains("Created fresh repository."), "{trace}");
    assert_eq!(printed(&trace, "HEAD="), second, "{trace}");
    assert!(trace.contains("\nkept on the remote"), "{trace}");

    // `none` leaves the remote directory as it is, untracked files included.
    std::fs::write(checkout.join("remote-only"), "left alone\n").expect("write");
    let untouched = fake.add_job(git_job("none", &first, &["cat remote-only"]));
    let job = fake.wait_for_final(untouched).await;
    let trace = fake.trace_text(untouched);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Skipping Git repository setup"), "{trace}");
    assert_eq!(printed(&trace, "HEAD="), second, "{trace}");
    assert!(trace.contains("\nleft alone"), "{trace}");
    assert!(
        !fake.git_requests().iter().any(|r| r.job == Some(untouched)),
        "none fetches nothing"
    );

    // `clone` starts from an empty directory.
    let recloned = fake.add_job(git_job(
        "clone",
        &first,
        &["test ! -e .git/remote-mark", "test ! -e remote-only"],
    ));
    let job = fake.wait_for_final(recloned).await;
    let trace = fake.trace_text(recloned);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Created fresh repository."), "{trace}");
    assert_eq!(printed(&trace, "HEAD="), first, "{trace}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}
