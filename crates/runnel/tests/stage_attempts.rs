//! `runnel exec` end to end for the stage attempt variables and the cache compression format:
//! each test writes a `.gitlab-ci.yml` into a committed temporary repository, runs the binary
//! and reads its `--json` document and the job logs under `.runnel/logs/`.
//!
//! GitLab: gitlab-runner `common/build.go` `attemptExecuteStage` (each attempt runs the whole
//! stage again), `shells/abstract.go` (a cache that cannot be extracted is a warning inside a
//! stage that succeeds, so `RESTORE_CACHE_ATTEMPTS` does not retry it),
//! `commands/helpers/cache_archiver.go` (`CACHE_COMPRESSION_FORMAT: tarzstd`, still named
//! `cache.zip`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod support;
use support::{commit_repo, job, json_document};

/// A committed repository holding `ci` as its `.gitlab-ci.yml`.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(ci: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("directory created");
        std::fs::write(repo.join(".gitlab-ci.yml"), ci).expect("ci file written");
        std::fs::write(repo.join("README"), "hello\n").expect("file written");
        commit_repo(&repo, "Initial");
        Repo { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn json(&self) -> (i32, Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["exec", "--json"])
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs");
        json_document(&out)
    }

    /// The trace of `name` as written to `.runnel/logs/`, made readable: no colours, section
    /// markers as `[start name]`, temporary paths as `[TMP]`.
    fn log(&self, name: &str) -> String {
        let path = self.path().join(".runnel/logs").join(format!("{name}.log"));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let colours = regex::Regex::new(r"\x1b\[[0-9;]*[mK]").expect("regex");
        let sections = regex::Regex::new(r"section_(start|end):\d+:(\S+?)\r").expect("regex");
        let temporary = regex::Regex::new(r"/tmp/\.tmp\w+").expect("regex");
        let text = String::from_utf8_lossy(&raw);
        let text = colours.replace_all(&text, "");
        let text = sections.replace_all(&text, "[$1 $2] ");
        temporary.replace_all(&text, "[TMP]").into_owned()
    }
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    job(doc, name)["status"].as_str().unwrap_or("")
}

/// Every `cache.zip` under `dir`.
fn cache_archives(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(cache_archives(&path));
        } else if path.file_name().is_some_and(|n| n == "cache.zip") {
            found.push(path);
        }
    }
    found
}

#[test]
fn get_sources_attempts_run_the_stage_again_until_the_hook_passes() {
    let counter_dir = tempfile::tempdir().expect("temporary directory");
    let counter = counter_dir.path().join("tries");
    let ci = format!(
        r#"variables:
  GET_SOURCES_ATTEMPTS: "3"
  FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY: "false"
job:
  hooks:
    pre_get_sources_script:
      - n=$(cat '{counter}' 2>/dev/null || echo 0); echo $((n+1)) > '{counter}'; echo "get_sources try $((n+1))"; test $n -ge 2
  script:
    - cat README
"#,
        counter = counter.display()
    );
    let repo = Repo::new(&ci);
    let (code, doc) = repo.json();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(status(&doc, "job"), "success");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "3"
    );
    let log = repo.log("job");
    let excerpt: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("[start get_sources]")
                || l.contains("[start clear_worktree]")
                || l.starts_with("get_sources try")
                || l.starts_with("Deleting")
                || l.contains("Job succeeded")
        })
        .collect();
    insta::assert_snapshot!(excerpt.join("\n"));
}

#[test]
fn a_corrupt_cache_with_restore_cache_attempts_warns_once_and_the_job_runs() {
    let ci = r#"variables:
  RESTORE_CACHE_ATTEMPTS: "3"
  FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY: "false"
job:
  cache:
    key: deps
    paths: [deps/]
  script:
    - test -f deps/warm && echo "cache warm" || echo "cache cold"
    - mkdir -p deps && touch deps/warm
"#;
    let repo = Repo::new(ci);
    let (code, _) = repo.json();
    assert_eq!(code, 0);
    let archives = cache_archives(&repo.path().join(".runnel/cache"));
    assert_eq!(archives.len(), 1, "{archives:?}");
    std::fs::write(&archives[0], b"not an archive at all").expect("cache corrupted");

    let (code, doc) = repo.json();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(job(&doc, "job")["output"][0], "cache cold");
    let log = repo.log("job");
    assert_eq!(log.matches("[start restore_cache]").count(), 1, "{log}");
    assert_eq!(log.matches("Checking cache for deps").count(), 1, "{log}");
    assert_eq!(
        log.matches("WARNING: Failed to extract cache").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_tarzstd_cache_written_by_one_job_is_restored_by_the_next() {
    let ci = r#"stages: [build, test]
variables:
  CACHE_COMPRESSION_FORMAT: tarzstd
  CACHE_COMPRESSION_LEVEL: fast
build:
  stage: build
  cache:
    key: deps
    paths: [vendor/]
  script:
    - mkdir -p vendor/lib && echo "from the cache" > vendor/lib/file.txt
test:
  stage: test
  variables:
    CACHE_COMPRESSION_FORMAT: zip
  cache:
    key: deps
    paths: [vendor/]
    policy: pull
  script:
    - cat vendor/lib/file.txt
"#;
    let repo = Repo::new(ci);
    let (code, doc) = repo.json();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(job(&doc, "test")["output"][0], "from the cache");
    let archives = cache_archives(&repo.path().join(".runnel/cache"));
    assert_eq!(archives.len(), 1, "{archives:?}");
    let bytes = std::fs::read(&archives[0]).expect("archive read");
    assert_eq!(bytes[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd stream");
    assert!(repo.log("test").contains("Successfully extracted cache"));
}
