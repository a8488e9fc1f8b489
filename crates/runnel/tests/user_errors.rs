//! Mistakes in the user's input exit with code 2 (as clap's usage errors do) and name the flag
//! or file and what was expected; 101 is left for runnel's own failures. One test per kind of
//! input: flags, `--variables-file`, `config.toml`, `.gitlab-ci.yml`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod support;
use support::commit_repo;

/// The user-error exit code, documented in `runnel --help` and the README.
const USER_ERROR: i32 = 2;

fn runnel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CONFIG_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("runnel runs")
}

/// Exit code and standard error, with the temporary directory replaced by `[DIR]`.
fn failure(dir: &Path, args: &[&str]) -> String {
    let out = runnel(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir.display().to_string(), "[DIR]");
    format!("exit code: {}\n{stderr}", out.status.code().unwrap_or(-1))
}

/// A committed repository with a one-job pipeline.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "build:\n  script: echo built\n",
    )
    .expect("write .gitlab-ci.yml");
    commit_repo(dir.path(), "Initial");
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write file");
}

#[test]
fn help_documents_the_exit_codes() {
    let dir = project();
    for args in [&["--help"][..], &["exec", "--help"]] {
        let out = runnel(dir.path(), args);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("2    a mistake in the input") && help.contains("101  runnel itself"),
            "{help}"
        );
    }
}

#[test]
fn bad_flags_exit_with_the_user_error_code() {
    let dir = project();
    let dir = dir.path();
    insta::assert_snapshot!("var", failure(dir, &["exec", "--var", "NO_EQUALS_SIGN"]));
    insta::assert_snapshot!("dir", failure(dir, &["exec", "-C", "no-such-dir"]));
    insta::assert_snapshot!("manual", failure(dir, &["exec", "--manual", "nope"]));
    insta::assert_snapshot!("stage", failure(dir, &["exec", "--stage", "nope"]));
    insta::assert_snapshot!("lint_var", failure(dir, &["lint", "--var", "X"]));
    // clap's own usage errors have the same code.
    let out = runnel(dir, &["exec", "--concurrency", "many"]);
    assert_eq!(out.status.code(), Some(USER_ERROR));
}

#[test]
fn variables_file_of_the_wrong_shape_names_the_file_and_the_shape() {
    let dir = project();
    let dir = dir.path();
    write(dir, "list.json", "[\"A\", \"B\"]\n");
    write(dir, "broken.yml", "A: [1\n");
    write(dir, "field.yml", "A:\n  valeu: x\n");
    write(dir, "flag.yml", "A:\n  value: x\n  masked: 3\n");
    write(dir, "nested.yml", "A:\n  value: [1, 2]\n");
    for name in [
        "list.json",
        "broken.yml",
        "field.yml",
        "flag.yml",
        "nested.yml",
    ] {
        insta::assert_snapshot!(name, failure(dir, &["exec", "--variables-file", name]));
    }
    let out = runnel(dir, &["exec", "--variables-file", "missing.yml"]);
    assert_eq!(out.status.code(), Some(USER_ERROR));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.yml"), "{stderr}");
}

#[test]
fn invalid_config_toml_names_the_file_position_and_expected_type() {
    let dir = project();
    let dir = dir.path();
    write(dir, "config.toml", "concurrent = \"many\"\n");
    write(dir, "loud.toml", "log_level = \"loud\"\n");
    insta::assert_snapshot!("list", failure(dir, &["list", "-c", "config.toml"]));
    insta::assert_snapshot!("verify", failure(dir, &["verify", "-c", "config.toml"]));
    insta::assert_snapshot!(
        "unregister",
        failure(dir, &["unregister", "-c", "config.toml", "--all-runners"])
    );
    insta::assert_snapshot!("run_log_level", failure(dir, &["run", "-c", "loud.toml"]));
}

#[test]
fn register_without_the_required_answers_is_a_user_error() {
    let dir = project();
    insta::assert_snapshot!(failure(
        dir.path(),
        &["register", "--non-interactive", "-c", "config.toml"]
    ));
}

#[test]
fn gitlab_ci_yml_errors_stop_exec_with_the_user_error_code() {
    let dir = project();
    let dir = dir.path();
    write(
        dir,
        ".gitlab-ci.yml",
        "build:\n  script: echo\n  stage: nowhere\n",
    );
    insta::assert_snapshot!("invalid", failure(dir, &["exec"]));
    insta::assert_snapshot!("missing", failure(dir, &["exec", "--file", "missing.yml"]));
    // With `--json` the document carries the error; the code is the same.
    let out = runnel(dir, &["exec", "--json"]);
    assert_eq!(out.status.code(), Some(USER_ERROR));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON document");
    assert_eq!(doc["status"], "error");
    // `runnel lint` reports the same errors as its verdict: exit 1, as a failed pipeline.
    let out = runnel(dir, &["lint", ".gitlab-ci.yml"]);
    assert_eq!(out.status.code(), Some(1));
}
