//! `runnel register --template-config` and `--leave-runner` end to end: the binary against the
//! fake GitLab from runnel-runner's test support (gitlab-runner `commands/register.go`).

use std::path::Path;

use runnel_runner::test_support::FakeGitLab;
use tokio::process::Command;

mod support;
use support::runnel_command as runnel;

struct Output {
    code: Option<i32>,
    stderr: String,
}

async fn output(command: &mut Command) -> Output {
    let out = command.output().await.expect("runnel runs");
    Output {
        code: out.status.code(),
        stderr: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The written config with what changes from run to run replaced.
fn redacted(config: &Path, fake: &FakeGitLab, token: &str) -> String {
    let text = std::fs::read_to_string(config).expect("config written");
    text.replace(&fake.url(), "http://[GITLAB]/")
        .replace(token, "[TOKEN]")
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("token_obtained_at") {
                "token_obtained_at = [TIME]"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const TEMPLATE: &str = r#"[[runners]]
  name = "from-template"
  url = "http://template.invalid/"
  token = "template-token-is-dropped"
  executor = "docker"
  limit = 3
  output_limit = 8192
  environment = ["FROM_TEMPLATE=1"]
  [runners.docker]
    image = "alpine:3"
    privileged = true
    volumes = ["/var/run/docker.sock:/var/run/docker.sock"]
  [runners.cache]
    Type = "s3"
    Shared = true
    [runners.cache.s3]
      BucketName = "runner-cache"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_config_fills_what_the_flags_leave_unset() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let template = dir.path().join("template.toml");
    std::fs::write(&template, TEMPLATE).expect("write template");
    let out = output(
        runnel()
            .args(["register", "--non-interactive", "-c"])
            .arg(&config)
            .arg("--template-config")
            .arg(&template)
            .args(["--url", &fake.url(), "--token", &token])
            // Flags win over the template, lists as a whole.
            .args(["--limit", "5", "--env", "FROM_FLAG=1"])
            .args(["--docker-image", "ruby:3.3", "--docker-privileged=false"]),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    insta::assert_snapshot!(redacted(&config, &fake, &token));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_config_is_read_from_template_config_file() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let template = dir.path().join("template.toml");
    std::fs::write(
        &template,
        format!(
            "[[runners]]\nname = \"env-template\"\nurl = \"{}\"\nexecutor = \"shell\"\n",
            fake.url()
        ),
    )
    .expect("write template");
    // Only the token is given: URL, name and executor come from the template.
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(&config)
            .env("TEMPLATE_CONFIG_FILE", &template)
            .env("CI_SERVER_TOKEN", &token),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = std::fs::read_to_string(&config).expect("config written");
    assert!(written.contains("name = \"env-template\""), "{written}");
    assert!(written.contains("executor = \"shell\""), "{written}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_sections_of_other_executors_are_dropped_and_its_cache_volume_kept() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let template = dir.path().join("template.toml");
    std::fs::write(
        &template,
        "[[runners]]\n[runners.docker]\nimage = \"alpine:3\"\nvolumes = [\"/srv/cache:/cache\"]\n\
         [runners.kubernetes]\nnamespace = \"ci\"\n[runners.ssh]\nhost = \"build.example\"\n",
    )
    .expect("write template");
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(&config)
            .arg("--template-config")
            .arg(&template)
            .args([
                "--url",
                &fake.url(),
                "--token",
                &token,
                "--executor",
                "docker",
            ]),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = std::fs::read_to_string(&config).expect("config written");
    // gitlab-runner `askExecutorOptions` keeps only the executor's own section, and
    // `askDocker` sees `/srv/cache:/cache` as the cache volume already.
    assert!(!written.contains("[runners.kubernetes]"), "{written}");
    assert!(!written.contains("[runners.ssh]"), "{written}");
    assert!(
        written.contains("volumes = [\"/srv/cache:/cache\"]\n"),
        "{written}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_with_two_runners_is_refused_before_anything_is_registered() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let template = dir.path().join("template.toml");
    std::fs::write(
        &template,
        "[[runners]]\nexecutor = \"shell\"\n[[runners]]\nexecutor = \"docker\"\n",
    )
    .expect("write template");
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(&config)
            .arg("--template-config")
            .arg(&template)
            .args(["--url", &fake.url(), "--token", &token]),
    )
    .await;
    assert_ne!(out.code, Some(0));
    let template_path = template.display().to_string();
    insta::assert_snapshot!(
        out.stderr
            .lines()
            .last()
            .unwrap_or_default()
            .replace(&template_path, "[TEMPLATE]"),
        @"error: configuration template `[TEMPLATE]` must contain exactly one [[runners]] entry, found 2"
    );
    assert_eq!(fake.requests(), Vec::<String>::new());
    assert!(!config.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_template_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(dir.path().join("config.toml"))
            .arg("--template-config")
            .arg(dir.path().join("missing.toml"))
            .args(["--url", "http://127.0.0.1:9/", "--token", "glrt-x"]),
    )
    .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("failed to load configuration template file"),
        "{}",
        out.stderr
    );
}

/// A config path under a regular file: registration succeeds, saving cannot (even as root).
fn unsavable_config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("not-a-directory");
    std::fs::write(&file, "").expect("write");
    file.join("config.toml")
}

async fn register_unsavable(fake: &FakeGitLab, token_flag: &str, token: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = output(
        runnel()
            .args(["register", "-n", "-c"])
            .arg(unsavable_config(dir.path()))
            .args(["--url", &fake.url(), token_flag, token])
            .args(["--executor", "shell"])
            .args(extra),
    )
    .await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("failed to read config file"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsaved_runner_manager_is_removed_from_gitlab_again() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    register_unsavable(&fake, "--token", &token, &[]).await;
    assert_eq!(
        fake.requests(),
        [
            "POST /api/v4/runners/verify",
            "DELETE /api/v4/runners/managers"
        ]
    );
    assert_eq!(fake.managers(), Vec::<(String, String)>::new());
    // The runner itself was created in GitLab's UI and stays.
    assert!(fake.runner_exists(&token));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsaved_legacy_runner_is_deleted_again() {
    let fake = FakeGitLab::start().await;
    fake.add_registration_token("legacy-registration-token");
    register_unsavable(
        &fake,
        "--registration-token",
        "legacy-registration-token",
        &[],
    )
    .await;
    assert_eq!(
        fake.requests(),
        ["POST /api/v4/runners", "DELETE /api/v4/runners"]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_runner_keeps_an_unsaved_runner_on_gitlab() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    register_unsavable(&fake, "--token", &token, &["--leave-runner"]).await;
    assert_eq!(fake.requests(), ["POST /api/v4/runners/verify"]);
    assert_eq!(fake.managers().len(), 1);

    fake.add_registration_token("legacy-registration-token");
    register_unsavable(
        &fake,
        "--registration-token",
        "legacy-registration-token",
        &["--leave-runner"],
    )
    .await;
    assert_eq!(
        fake.requests(),
        ["POST /api/v4/runners/verify", "POST /api/v4/runners"]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_above_concurrent_are_warned_through_the_log_format() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let out = runnel()
        .args(["--log-format", "json", "register", "-n", "-c"])
        .arg(&config)
        .args([
            "--url",
            &fake.url(),
            "--token",
            &token,
            "--executor",
            "shell",
        ])
        .args(["--limit", "5", "--request-concurrency", "3"])
        .output()
        .await
        .expect("runnel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // gitlab-runner `commands/register.go`: both warnings, as log entries.
    let warnings: Vec<String> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .filter(|entry| entry["level"] == "warning")
        .filter_map(|entry| entry["msg"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with(
            "The specified runner job concurrency limit (5) is larger than current global concurrency limit (1)."
        ),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with(
            "The specified runner request concurrency (3) is larger than the current global concurrent limit (1)."
        ),
        "{warnings:?}"
    );
}

/// Runs runnel with `--log-format json` and returns its stdout and its log entries.
async fn json_entries(args: &[&str], config: &Path) -> (String, Vec<serde_json::Value>) {
    let out = runnel()
        .args(["--log-format", "json"])
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .await
        .expect("runnel runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let entries = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), entries)
}

/// The entry whose `msg` is `msg`.
fn entry<'a>(entries: &'a [serde_json::Value], msg: &str) -> &'a serde_json::Value {
    entries
        .iter()
        .find(|entry| entry["msg"] == msg)
        .unwrap_or_else(|| panic!("no {msg:?} in {entries:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_verify_list_and_unregister_log_gitlab_runners_messages_on_stderr() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let register = [
        "register",
        "-n",
        "--url",
        &fake.url(),
        "--token",
        &token,
        "--name",
        "box",
        "--executor",
        "shell",
    ];
    let (stdout, entries) = json_entries(&register, &config).await;
    assert_eq!(stdout, "");
    // gitlab-runner's short token (`helpers.ShortenToken`).
    let short = runnel_runner::config::short_token(&token);
    let verified = entry(&entries, "Verifying runner... is valid");
    assert_eq!(
        (&verified["level"], &verified["runner"]),
        (&"info".into(), &short.clone().into())
    );
    let registered = entry(
        &entries,
        "Runner registered successfully. Feel free to start it, but if it's running already the config should be automatically reloaded!",
    );
    assert_eq!(registered["level"], "info");
    let saved = format!(
        "Configuration (with the authentication token) was saved in {:?}",
        config.display().to_string()
    );
    assert_eq!(entry(&entries, &saved)["level"], "info");
    assert!(entries.iter().all(|e| e["level"] == "info"), "{entries:#?}");

    let (stdout, entries) = json_entries(&["verify"], &config).await;
    assert_eq!(stdout, "");
    assert_eq!(
        entry(&entries, "Verifying runner... is valid")["runner"],
        short.as_str()
    );

    let (stdout, entries) = json_entries(&["list"], &config).await;
    assert_eq!(stdout, "");
    let listing = entry(&entries, "Listing configured runners");
    assert_eq!(listing["ConfigFile"], config.display().to_string());
    let runner = entry(&entries, "box");
    assert_eq!(
        (&runner["Executor"], &runner["Token"], &runner["URL"]),
        (&"shell".into(), &short.clone().into(), &fake.url().into())
    );

    let (stdout, entries) = json_entries(&["unregister", "--name", "box"], &config).await;
    assert_eq!(stdout, "");
    let unregistered = entry(
        &entries,
        "Unregistering runner manager from GitLab succeeded",
    );
    assert_eq!(unregistered["runner"], short.as_str());
    entry(&entries, &format!("Updated {}", config.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_registration_warns_that_registration_tokens_are_deprecated() {
    let fake = FakeGitLab::start().await;
    fake.add_registration_token("GR1348941legacy");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let register = [
        "register",
        "-n",
        "--url",
        &fake.url(),
        "--registration-token",
        "GR1348941legacy",
        "--name",
        "old",
        "--executor",
        "shell",
    ];
    let (stdout, entries) = json_entries(&register, &config).await;
    assert_eq!(stdout, "");
    let messages: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| Some((e["level"].as_str()?, e["msg"].as_str()?)))
        .collect();
    assert_eq!(
        messages[..2],
        [
            (
                "warning",
                runnel_runner::register::LEGACY_REGISTRATION_DEPRECATION
            ),
            ("info", "Registering runner... succeeded"),
        ],
        "{entries:#?}"
    );
    assert_eq!(entries[1]["runner"], "legacy");
}
