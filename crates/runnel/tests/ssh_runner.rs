//! `runnel run` with `executor = "ssh"` end to end: the binary, the fake GitLab and the test
//! sshd on 127.0.0.1. A job runs on the remote side; a daemon killed with SIGKILL mid-job
//! leaves no remote process (the remote watchdog ends the script when the connection drops).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use runnel_exec::ssh::TestSshd;
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};
use tokio::process::Child;

mod support;
use support::runnel_command as runnel;

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
    runnel()
        .args(["run", "-c"])
        .arg(config)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .kill_on_drop(true)
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !processes(sleeper).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the remote script survived the killed daemon: {:?}",
            processes(sleeper)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
