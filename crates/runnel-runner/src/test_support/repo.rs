//! Git repositories for the tests of jobs that fetch their sources (what the fake GitLab
//! serves with `FakeGitLab::serve_git`).

use std::path::Path;
use std::process::Command;

/// Runs git in `dir` (as the committer `Test`) and returns its trimmed standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Commits `README` with `text` on `main` of the repository at `repo`; returns the commit.
pub fn commit_readme(repo: &Path, text: &str) -> String {
    std::fs::write(repo.join("README"), text).expect("write README");
    git(repo, &["add", "README"]);
    git(repo, &["commit", "-q", "-m", text]);
    git(repo, &["rev-parse", "HEAD"])
}

/// An empty repository on `main` in a temporary directory.
pub fn new_repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    repo
}
