//! The operator log formats of `runnel run` (gitlab-runner `log/configuration.go`): `json` and
//! `text` as logrus writes them, from the command line or from `config.toml`, the command line
//! winning, and `log_level` applied again when the config is reloaded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use runnel_runner::test_support::FakeGitLab;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

mod support;
use support::runnel_command as runnel;

/// A config with one shell runner named `name` and an unknown key (so a warning is logged).
fn config_text(fake: &FakeGitLab, dir: &Path, global: &str, names: &[&str]) -> String {
    let mut text = format!("concurrent = 1\ncheck_interval = 1\nunknown_global = 1\n{global}\n");
    for name in names {
        text.push_str(&format!(
            "[[runners]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"{}\"\nexecutor = \"shell\"\nbuilds_dir = \"{}\"\n",
            fake.url(),
            fake.create_runner(),
            dir.join("builds").display()
        ));
    }
    text
}

struct Daemon {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runnel run starts");
        let stderr = child.stderr.take().expect("stderr piped");
        Self {
            child,
            lines: BufReader::new(stderr).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; panics with what was read at the end.
    async fn wait_for(&mut self, needle: &str) -> String {
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(Some(line)) => line,
            _ => panic!("no line with {needle:?} in:\n{}", self.seen.join("\n")),
        }
    }

    /// Stops the daemon with SIGQUIT and returns every stderr line.
    async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-QUIT", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let status = self.child.wait().await.expect("exits");
        assert!(status.success(), "{}", self.seen.join("\n"));
        self.seen
    }
}

/// Go's `time.RFC3339` in UTC, logrus's default time layout: `2026-11-28T00:23:54Z`.
fn is_rfc3339(time: &str) -> bool {
    let bytes = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b'T')
        && digits(11..13)
        && digits(14..16)
        && digits(17..19)
        && time.len() == 20
        && time.ends_with('Z')
}

fn assert_json_lines(lines: &[String]) -> Vec<serde_json::Map<String, Value>> {
    assert!(!lines.is_empty());
    lines
        .iter()
        .map(|line| {
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
                panic!("not a JSON object: {line}");
            };
            let level = object.get("level").and_then(Value::as_str);
            assert!(
                matches!(level, Some("debug" | "info" | "warning" | "error")),
                "{line}"
            );
            assert!(object.get("msg").is_some_and(Value::is_string), "{line}");
            let time = object.get("time").and_then(Value::as_str).unwrap_or("");
            assert!(is_rfc3339(time), "{line}");
            let keys: Vec<&String> = object.keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "logrus writes keys sorted: {line}");
            object
        })
        .collect()
}

fn find<'a>(
    objects: &'a [serde_json::Map<String, Value>],
    msg: &str,
) -> &'a serde_json::Map<String, Value> {
    objects
        .iter()
        .find(|o| o.get("msg").and_then(Value::as_str) == Some(msg))
        .unwrap_or_else(|| panic!("no {msg:?} in {objects:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_logrus_object_per_line() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let session = "[session_server]\nlisten_address = \"127.0.0.1:0\"\nsession_timeout = 1800";
    std::fs::write(
        &config,
        config_text(&fake, dir.path(), session, &["json-box"]),
    )
    .expect("write");
    let mut daemon = Daemon::start(
        runnel()
            .args(["--log-format", "json", "run", "-c"])
            .arg(&config),
    );
    daemon.wait_for("runner started").await;
    let objects = assert_json_lines(&daemon.stop().await);
    let started = find(&objects, "runner started");
    assert_eq!(started["level"], "info");
    // The event's fields are top-level keys.
    assert_eq!(started["name"], "json-box");
    assert_eq!(started["executor"], "shell");
    let warning = objects
        .iter()
        .find(|o| {
            o["msg"]
                .as_str()
                .is_some_and(|m| m.contains("unknown key `unknown_global`"))
        })
        .expect("the unknown key is reported");
    assert_eq!(warning["level"], "warning");
    // `[session_server]` starts the session server, with its address in the event's fields.
    let session = find(&objects, "session server listening");
    assert_eq!(session["level"], "info");
    assert!(
        session["advertise"]
            .as_str()
            .is_some_and(|a| a.starts_with("https://127.0.0.1:")),
        "{session:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_text_writes_logrus_text_lines() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&fake, dir.path(), "", &["text-box"])).expect("write");
    let mut daemon = Daemon::start(
        runnel()
            .args(["run", "-c"])
            .arg(&config)
            .env("LOG_FORMAT", "text"),
    );
    let line = daemon.wait_for("runner started").await;
    let time = line
        .strip_prefix("time=\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    assert!(is_rfc3339(time), "{line}");
    let after_time = line
        .split_once("\" ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    assert!(
        after_time.starts_with("level=info msg=\"runner started\" "),
        "{line}"
    );
    // Fields sorted by key; plain values unquoted.
    assert!(
        after_time.contains(" executor=shell name=text-box runner="),
        "{line}"
    );
    let lines = daemon.stop().await;
    assert!(
        lines.iter().all(|l| l.starts_with("time=\"")),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" level=warning msg=\"") && l.contains("unknown_global")),
        "{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_in_config_applies_unless_the_command_line_sets_one() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&fake, dir.path(), "log_format = \"json\"", &["box"]),
    )
    .expect("write");
    let mut daemon = Daemon::start(runnel().args(["run", "-c"]).arg(&config));
    daemon.wait_for("runner started").await;
    let objects = assert_json_lines(&daemon.stop().await);
    assert_eq!(find(&objects, "runner started")["name"], "box");

    let mut daemon = Daemon::start(
        runnel()
            .args(["run", "--log-format", "text", "-c"])
            .arg(&config),
    );
    let line = daemon.wait_for("runner started").await;
    assert!(line.starts_with("time=\""), "{line}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_log_settings_stop_run_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "log_level = \"verbose\"\n").expect("write");
    let out = runnel()
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid log level `verbose`: expected one of debug, info, warn"),
        "{stderr}"
    );

    let out = runnel()
        .args(["--log-format", "pretty", "list", "-c"])
        .arg(&config)
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown log format `pretty`: expected one of runner, text, json"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_in_config_is_applied_again_on_reload() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&fake, dir.path(), "log_level = \"warn\"", &["first"]),
    )
    .expect("write");
    let mut daemon = Daemon::start(
        runnel()
            .args(["run", "--log-format", "text", "-c"])
            .arg(&config),
    );
    // Warnings pass at `warn`: the daemon has read its config.
    daemon.wait_for("unknown_global").await;
    std::fs::write(
        &config,
        config_text(&fake, dir.path(), "log_level = \"info\"", &["second"]),
    )
    .expect("rewrite");
    daemon.wait_for("name=second").await;
    let lines = daemon.stop().await;
    // Nothing at info before the reload: the start-up message was filtered out.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("msg=\"runnel is running\"")),
        "{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_log_level_the_command_line_overrides_does_not_stop_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "log_level = \"verbose\"\nlog_format = \"pretty\"\n",
    )
    .expect("write");
    // gitlab-runner `updateLoggingConfiguration` reads only what the command line left open.
    let mut daemon = Daemon::start(
        runnel()
            .args(["--log-level", "info", "--log-format", "json", "run", "-c"])
            .arg(&config),
    );
    daemon.wait_for("runnel is running").await;
    let objects = assert_json_lines(&daemon.stop().await);
    assert_eq!(find(&objects, "runnel is running")["level"], "info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_runner_format_is_gitlab_runners() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&fake, dir.path(), "", &["plain-box"])).expect("write");
    let mut daemon = Daemon::start(runnel().args(["run", "-c"]).arg(&config));
    let line = daemon.wait_for("runner started").await;
    // gitlab-runner `RunnerTextFormatter`: the message padded to 50 columns, sorted fields, no
    // colours when stderr is not a terminal.
    assert!(
        line.starts_with(&format!(
            "{:<50}  executor=shell name=plain-box runner=",
            "runner started"
        )),
        "{line:?}"
    );
    let lines = daemon.stop().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARNING: ") && l.contains("unknown_global")),
        "{}",
        lines.join("\n")
    );
    assert!(!lines.iter().any(|l| l.contains('\x1b')), "{lines:?}");
}
