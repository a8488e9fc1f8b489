//! `runnel register`, `verify`, `unregister`, `list` and `run` end to end: the binary against
//! the fake GitLab from runnel-runner's test support.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

mod support;
use support::runnel_command as runnel;

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn output(command: &mut Command) -> Output {
    let out = command
        .stdin(Stdio::null())
        .output()
        .await
        .expect("runnel runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn register_shell(fake: &FakeGitLab, config: &Path, name: &str) -> String {
    let token = fake.create_runner();
    let out = output(
        runnel()
            .args(["register", "--non-interactive", "-c"])
            .arg(config)
            .args([
                "--url",
                &fake.url(),
                "--token",
                &token,
                "--name",
                name,
                "--executor",
                "shell",
                "--builds-dir",
            ])
            .arg(config.parent().expect("dir").join("builds")),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    token
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_an_authentication_token_verifies_it_and_writes_a_private_config() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let token = register_shell(&fake, &config, "build-box").await;
    let text = read(&config);
    assert!(text.contains(&format!("token = \"{token}\"")), "{text}");
    assert!(
        text.contains("name = \"build-box\"") && text.contains("executor = \"shell\""),
        "{text}"
    );
    assert!(text.contains("token_obtained_at = "), "{text}");
    assert_eq!(
        std::fs::metadata(&config)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let system_id = read(&dir.path().join(".runner_system_id"));
    assert!(fake.managers().contains(&(token, system_id)));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_reads_gitlab_runner_environment_variables() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let token = fake.create_runner();
    let out = output(
        runnel()
            .args(["register", "--non-interactive"])
            .env("CONFIG_FILE", &config)
            .env("CI_SERVER_URL", fake.url())
            .env("CI_SERVER_TOKEN", &token)
            .env("RUNNER_NAME", "from-env")
            .env("RUNNER_EXECUTOR", "docker")
            .env("DOCKER_IMAGE", "alpine:3"),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = read(&config);
    assert!(text.contains("name = \"from-env\""), "{text}");
    assert!(
        text.contains("[runners.docker]") && text.contains("image = \"alpine:3\""),
        "{text}"
    );
    assert!(text.contains("volumes = [\"/cache\"]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_asks_like_gitlab_runner_when_interactive() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    fake.add_registration_token("GR1348941legacy");
    let mut child = runnel()
        .args(["register", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let answers = format!(
        "{}\nGR1348941legacy\nlegacy-runner\nlinux,fast\n\nshell\n",
        fake.url()
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(answers.as_bytes())
        .await
        .expect("write answers");
    drop(stdin);
    let out = child.wait_with_output().await.expect("runnel ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_in_order(
        &stdout,
        &[
            "Enter the GitLab instance URL (for example, https://gitlab.com/):",
            "Enter the registration token:",
            "Enter a description for the runner:",
            "Enter tags for the runner (comma-separated):",
            "Enter optional maintenance note for the runner:",
            "Enter an executor:",
        ],
    );
    // gitlab-runner logs its messages (stderr), only the prompts are on stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_in_order(
        &stderr,
        &[
            "WARNING: Support for registration tokens and runner parameters in the 'register' command has been deprecated in GitLab Runner 15.6",
            "Registering runner... succeeded",
            "runner=legacy",
            "Runner registered successfully. Feel free to start it, but if it's running already the config should be automatically reloaded!",
            "Configuration (with the authentication token) was saved in ",
        ],
    );
    assert!(!stdout.contains("Runner registered"), "{stdout}");
    let text = read(&config);
    assert!(text.contains("token = \"glrtr-"), "{text}");
    assert!(text.contains("name = \"legacy-runner\""), "{text}");
}

/// Asserts that `prompts` appear in `stdout` in this order.
fn assert_in_order(stdout: &str, prompts: &[&str]) {
    let mut rest = stdout;
    for prompt in prompts {
        let at = rest
            .find(prompt)
            .unwrap_or_else(|| panic!("missing {prompt:?} (or out of order) in {stdout}"));
        rest = &rest[at + prompt.len()..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_token_answered_as_the_registration_token_is_verified() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let token = fake.create_runner();
    let mut child = runnel()
        .args(["register", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let answers = format!("{}\n{token}\nbuild-box\nshell\n", fake.url());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(answers.as_bytes())
        .await
        .expect("write answers");
    drop(stdin);
    let out = child.wait_with_output().await.expect("runnel ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // gitlab-runner `commands/register.go` `askRunner`: a glrt- answer is verified and only the
    // name is asked for, never the legacy description, tags and maintenance note.
    assert_in_order(
        &stdout,
        &[
            "Enter the GitLab instance URL (for example, https://gitlab.com/):",
            "Enter the registration token:",
            "Enter a name for the runner. This is stored only in the local config.toml file:",
            "Enter an executor:",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_in_order(
        &stderr,
        &[
            "Verifying runner... is valid",
            "Runner registered successfully.",
        ],
    );
    assert!(!stderr.contains("deprecated"), "{stderr}");
    assert!(!stdout.contains("Enter tags"), "{stdout}");
    // gitlab-runner prints a default as `[value]: ` with the answer on the same line.
    assert!(stdout.contains("]: Enter an executor:"), "{stdout}");
    let text = read(&config);
    assert!(text.contains(&format!("token = \"{token}\"")), "{text}");
    assert!(text.contains("name = \"build-box\""), "{text}");
    let system_id = read(&dir.path().join(".runner_system_id"));
    assert!(fake.managers().contains(&(token, system_id)));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_token_in_registration_token_is_verified() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let token = fake.create_runner();
    let out = output(
        runnel()
            .args(["register", "--non-interactive", "-c"])
            .arg(&config)
            .env("REGISTRATION_TOKEN", &token)
            .args(["--url", &fake.url(), "--executor", "shell"]),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(read(&config).contains(&format!("token = \"{token}\"")));
    assert!(fake.managers().iter().any(|(t, _)| t == &token));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_tokens_refuse_server_owned_flags() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = fake.create_runner();
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(dir.path().join("c.toml"))
            .args([
                "--url",
                &fake.url(),
                "--token",
                &token,
                "--executor",
                "shell",
                "--tag-list",
                "a,b",
                "--locked",
            ]),
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("--tag-list, --locked cannot be set here"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_reported_and_nothing_is_written() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let out = output(runnel().args(["register", "-n", "-c"]).arg(&config).args([
        "--url",
        &fake.url(),
        "--token",
        "glrt-unknown",
        "--executor",
        "shell",
    ]))
    .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("403 Forbidden"), "{}", out.stderr);
    assert!(!config.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_delete_removes_runners_gitlab_forgot_and_keeps_comments() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "# managed by ops\nconcurrent = 2\n").expect("write");
    let kept = register_shell(&fake, &config, "kept").await;
    let gone = register_shell(&fake, &config, "gone").await;
    fake.delete_runner(&gone);
    let out = output(runnel().args(["verify", "--delete", "-c"]).arg(&config)).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // An authentication token GitLab no longer knows "is not valid" (gitlab-runner
    // `VerifyRunner`); `--delete` then saves the config without it.
    assert_in_order(
        &out.stderr,
        &[
            "Verifying runner... is valid",
            "Verifying runner... is not valid",
            "Updated ",
        ],
    );
    assert_eq!(out.stdout, "");
    let text = read(&config);
    assert!(
        text.starts_with("# managed by ops\nconcurrent = 2\n"),
        "{text}"
    );
    assert!(text.contains(&kept) && !text.contains(&gone), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_a_filter_that_matches_no_runner_fails() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    register_shell(&fake, &config, "kept").await;
    let out = output(
        runnel()
            .args(["verify", "--name", "typo", "-c"])
            .arg(&config),
    )
    .await;
    assert_ne!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("matches `--name typo`"),
        "{}",
        out.stderr
    );
    let named = output(
        runnel()
            .args(["verify", "--name", "kept", "-c"])
            .arg(&config),
    )
    .await;
    assert_eq!(named.code, Some(0), "{}{}", named.stdout, named.stderr);
    assert!(
        named.stderr.contains("Verifying runner... is valid"),
        "{}",
        named.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_by_name_removes_the_runner_manager_and_the_entry() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let first = register_shell(&fake, &config, "first").await;
    let second = register_shell(&fake, &config, "second").await;
    let out = output(
        runnel()
            .args(["unregister", "--name", "first", "-c"])
            .arg(&config),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = read(&config);
    assert!(!text.contains(&first) && text.contains(&second), "{text}");
    assert!(fake.managers().iter().all(|(token, _)| token != &first));
    assert!(
        out.stderr
            .contains("Unregistering runner manager from GitLab succeeded"),
        "{}",
        out.stderr
    );
    let list = output(runnel().args(["list", "-c"]).arg(&config)).await;
    assert!(
        list.stderr.contains("Listing configured runners")
            && list.stderr.contains("second")
            && list.stderr.contains("Executor=shell"),
        "{}",
        list.stderr
    );
    assert!(
        !list.stderr.contains(&second),
        "list must not print whole tokens: {}",
        list.stderr
    );
    let all = output(
        runnel()
            .args(["unregister", "--all-runners", "-c"])
            .arg(&config),
    )
    .await;
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    assert!(!read(&config).contains("[[runners]]"));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

async fn start_run(config: &Path, extra: &[&str]) -> Child {
    runnel()
        .args(["run", "-c"])
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runnel run starts")
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn scrape(port: u16) -> String {
    use tokio::io::AsyncReadExt;
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text).await;
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no metrics server on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_picks_up_jobs_serves_metrics_and_stops_gracefully_on_sigquit() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "concurrent = 2\ncheck_interval = 1\n").expect("write");
    register_shell(&fake, &config, "daemon").await;
    let ok = fake.add_job(JobSpec::script(&["echo hello from runnel run"]));
    let failing = fake.add_job(JobSpec::script(&["exit 7"]));
    let port = free_port();
    let mut child = start_run(&config, &["--listen-address", &format!("127.0.0.1:{port}")]).await;
    assert_eq!(fake.wait_for_final(ok).await.state, FakeJobState::Success);
    assert_eq!(
        fake.wait_for_final(failing).await.state,
        FakeJobState::Failed
    );
    let metrics = scrape(port).await;
    for name in [
        "gitlab_runner_concurrent 2",
        "gitlab_runner_version_info{",
        "gitlab_runner_api_request_statuses_total{",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "missing {name} in {metrics}");
    }
    signal(&child, "QUIT");
    let status = child.wait().await.expect("exits");
    assert!(status.success());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_edit_and_sigquit_leave_the_running_job_alone() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "concurrent = 2\ncheck_interval = 3\n").expect("write");
    register_shell(&fake, &config, "daemon").await;
    let running = fake.add_job(JobSpec::script(&[
        "echo started",
        "sleep 3",
        "echo finished",
    ]));
    let log = dir.path().join("run.log");
    let mut child = runnel()
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("runnel run starts");
    fake.wait_for_trace(running, "started").await;
    // An invalid edit, written as editors do (a new file renamed over the old one).
    let good = read(&config);
    let temp = dir.path().join("config.toml.new");
    std::fs::write(
        &temp,
        good.replacen("concurrent = 2", "concurrent = \"x", 1),
    )
    .expect("write");
    std::fs::rename(&temp, &config).expect("rename");
    let position = format!("{}:1:", config.display());
    while !read(&log).contains(&position) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        read(&log).contains("keeping the last good one"),
        "{}",
        read(&log)
    );
    // gitlab-runner's SIGQUIT: no new jobs, the running one ends normally.
    signal(&child, "QUIT");
    while !read(&log).contains("graceful shutdown") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Queued once polling stopped (a poll every 3 s leaves no request in flight here).
    let late = fake.add_job(JobSpec::script(&["echo too late"]));
    let job = fake.wait_for_final(running).await;
    assert_eq!(
        job.state,
        FakeJobState::Success,
        "{}",
        fake.trace_text(running)
    );
    assert_eq!(job.assignments, 1);
    assert!(fake.trace_text(running).contains("finished"));
    let status = child.wait().await.expect("exits");
    assert!(status.success(), "{}", read(&log));
    assert_eq!(fake.job(late).expect("job").state, FakeJobState::Pending);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn processes_with(marker: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let path = entry.path();
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            // Zombies wait for a lazy init to reap them; they run nothing.
            String::from_utf8_lossy(&cmdline).contains(marker) && !status.contains("State:\tZ")
        })
        .map(|entry| entry.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_aborts_running_jobs_reports_them_and_leaves_no_process() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "concurrent = 1\ncheck_interval = 1\nshutdown_timeout = 20\n",
    )
    .expect("write");
    register_shell(&fake, &config, "daemon").await;
    let id = fake.add_job(JobSpec::script(&["echo started", "sleep 987"]));
    let mut child = start_run(&config, &[]).await;
    fake.wait_for_trace(id, "started").await;
    signal(&child, "TERM");
    let status = child.wait().await.expect("exits");
    assert!(status.success());
    let job = fake.job(id).expect("job");
    assert_eq!(job.state, FakeJobState::Failed);
    assert!(
        processes_with("sleep 987").is_empty(),
        "the job's processes survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_warnings_and_errors_are_counted_in_gitlab_runner_errors_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    // One unknown key (a warning) and one runner whose executor runnel lacks (an error):
    // gitlab-runner's fleeting `instance` executor.
    std::fs::write(
        &config,
        "concurrent = 1\ncheck_interval = 1\nno_such_setting = 1\n\n[[runners]]\n  name = \"vm\"\n  url = \"http://127.0.0.1:9\"\n  token = \"glrt-unused\"\n  executor = \"instance\"\n",
    )
    .expect("write");
    let port = free_port();
    let mut child = start_run(&config, &["--listen-address", &format!("127.0.0.1:{port}")]).await;
    let metrics = scrape(port).await;
    signal(&child, "QUIT");
    assert!(child.wait().await.expect("exits").success());
    for line in [
        "gitlab_runner_errors_total{level=\"error\"} 1",
        "gitlab_runner_errors_total{level=\"warning\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in {metrics}"
        );
    }
}
