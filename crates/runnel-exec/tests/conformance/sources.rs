//! `get_sources` from a Git repository (the daemon's path), honouring `GIT_STRATEGY`,
//! `GIT_DEPTH` and `GIT_CHECKOUT`.

use std::path::Path;
use std::process::Command;

use runnel_exec::test_support::{ContextExt, PayloadBuilder, TestProject};
use runnel_exec::{JobStatus, Sources};

use crate::https_repo::HttpsRepo;
use crate::{executors, project_dir, run_with};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A repository with two commits on `main`; returns the sha of each.
fn repository(project: &TestProject) -> (String, String) {
    let dir = project.path();
    git(dir, &["checkout", "-q", "-b", "main"]);
    project.write("file.txt", "first");
    git(dir, &["add", "file.txt"]);
    git(dir, &["commit", "-q", "-m", "one"]);
    let first = git(dir, &["rev-parse", "HEAD"]);
    project.write("file.txt", "second");
    git(dir, &["commit", "-q", "-am", "two"]);
    let second = git(dir, &["rev-parse", "HEAD"]);
    (first, second)
}

fn git_payload(project: &TestProject, id: u64, sha: &str, script: &[&str]) -> PayloadBuilder {
    let mut payload = PayloadBuilder::new(id, "git").script(script).build();
    payload.git_info.repo_url = format!("file://{}", project.path().display());
    payload.git_info.sha = sha.to_owned();
    payload.git_info.ref_name = "main".to_owned();
    payload.git_info.refspecs = vec!["+refs/heads/*:refs/remotes/origin/*".to_owned()];
    PayloadBuilder::from(payload)
}

#[tokio::test]
async fn git_sources_check_out_the_requested_commit() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let (first, second) = repository(&project);
        for (id, sha, expected) in [(80, &first, "first"), (81, &second, "second")] {
            let payload = git_payload(&project, id, sha, &["cat file.txt"]).build();
            let mut ctx = project.context(&id.to_string());
            ctx.sources = Sources::Git;
            let ran = run_with(make, payload, ctx).await;
            ran.assert_status(JobStatus::Success, name);
            assert!(
                ran.output.contains(&format!(
                    "Checking out {} as detached HEAD (ref is main)",
                    &sha[..8]
                )),
                "{name}"
            );
            ran.assert_output_contains(&format!("\n{expected}"), name);
        }
    }
}

#[tokio::test]
async fn git_strategy_none_and_empty_leave_or_clear_the_directory() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let (_, second) = repository(&project);
        let payload = git_payload(&project, 82, &second, &["echo kept > kept.txt"]).build();
        let mut ctx = project.context("82");
        ctx.sources = Sources::Git;
        let ran = run_with(make, payload, ctx.clone()).await;
        ran.assert_status(JobStatus::Success, name);

        let payload = git_payload(&project, 83, &second, &["cat kept.txt"])
            .var("GIT_STRATEGY", "none")
            .build();
        let ran = run_with(
            make,
            payload,
            project.context("83").with_sources(Sources::Git),
        )
        .await;
        assert_eq!(
            ran.outcome.status,
            JobStatus::Success,
            "{name}: none keeps the directory: {}",
            ran.output
        );

        let payload = git_payload(
            &project,
            84,
            &second,
            &["test ! -e file.txt", "test ! -e kept.txt"],
        )
        .var("GIT_STRATEGY", "empty")
        .build();
        let ran = run_with(
            make,
            payload,
            project.context("84").with_sources(Sources::Git),
        )
        .await;
        assert_eq!(
            ran.outcome.status,
            JobStatus::Success,
            "{name}: empty clears it: {}",
            ran.output
        );
        let _ = project_dir(&project);
    }
}

#[tokio::test]
async fn unreachable_repository_fails_the_job() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let mut payload = PayloadBuilder::new(85, "git").script(&["echo ran"]).build();
        payload.git_info.repo_url = format!("file://{}/missing", project.path().display());
        payload.git_info.sha = "0123456789abcdef0123456789abcdef01234567".to_owned();
        let ran = run_with(
            make,
            payload,
            project.context("85").with_sources(Sources::Git),
        )
        .await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        assert!(!ran.output.contains("\nran"), "{name}");
    }
}

#[tokio::test]
async fn submodules_are_checked_out_with_git_submodule_strategy() {
    // SAFETY: nextest runs each test in its own process, and nothing else runs yet.
    unsafe {
        std::env::set_var("GIT_CONFIG_COUNT", "1");
        std::env::set_var("GIT_CONFIG_KEY_0", "protocol.file.allow");
        std::env::set_var("GIT_CONFIG_VALUE_0", "always");
    }
    for (name, make) in executors() {
        let sub = TestProject::new();
        sub.write("lib.txt", "from the submodule");
        sub.commit_all("sub");
        let project = TestProject::new();
        let (_, _) = repository(&project);
        let url = format!("file://{}", sub.path().display());
        git(project.path(), &["submodule", "add", "-q", &url, "sub"]);
        git(project.path(), &["commit", "-q", "-m", "add submodule"]);
        let head = git(project.path(), &["rev-parse", "HEAD"]);
        // The same allowance as job variables, for the executors whose git runs elsewhere (the
        // SSH executor's remote host, where this process's environment does not reach).
        let payload = git_payload(&project, 86, &head, &["cat sub/lib.txt"])
            .var("GIT_SUBMODULE_STRATEGY", "normal")
            .var("GIT_CONFIG_COUNT", "1")
            .var("GIT_CONFIG_KEY_0", "protocol.file.allow")
            .var("GIT_CONFIG_VALUE_0", "always")
            .build();
        let ran = run_with(
            make,
            payload,
            project.context("86").with_sources(Sources::Git),
        )
        .await;
        ran.assert_status(JobStatus::Success, name);
        assert!(
            ran.output.contains("Updating/initializing submodules..."),
            "{name}"
        );
        ran.assert_output_contains("\nfrom the submodule", name);
    }
}

#[tokio::test]
async fn depth_zero_unshallows_a_shallow_clone() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let (_, second) = repository(&project);
        let mut payload =
            git_payload(&project, 87, &second, &["git rev-list --count HEAD"]).build();
        payload.git_info.depth = 1;
        let ran = run_with(
            make,
            payload,
            project.context("87").with_sources(Sources::Git),
        )
        .await;
        ran.assert_status(JobStatus::Success, name);
        ran.assert_output_contains("\n1\n", name);

        let payload = git_payload(&project, 88, &second, &["git rev-list --count HEAD"])
            .var("GIT_STRATEGY", "fetch")
            .build();
        let ran = run_with(
            make,
            payload,
            project.context("88").with_sources(Sources::Git),
        )
        .await;
        ran.assert_status(JobStatus::Success, name);
        ran.assert_output_contains("\n2\n", name);
    }
}

/// GitLab: gitlab-runner gives git the GitLab server's CA chain (`CI_SERVER_TLS_CA_FILE`, from
/// the runner's `tls-ca-file`) as `http.<scheme://host>.sslCAInfo` (`shells/abstract.go`
/// `writeGitSSLConfig`), so a GitLab with a self-signed certificate serves its repositories.
#[tokio::test]
async fn server_ca_file_lets_git_fetch_from_a_self_signed_https_gitlab() {
    // A `GIT_SSL_CAINFO` in the environment overrides git's `http.sslCAInfo` (and a runner's
    // environment reaches a shell job's git, in gitlab-runner as in runnel); some machines set
    // it for their own CA bundle.
    // SAFETY: nextest runs each test in its own process, and nothing else runs yet.
    unsafe {
        std::env::remove_var("GIT_SSL_CAINFO");
    }
    for (name, make) in executors() {
        let project = TestProject::new();
        let (_, second) = repository(&project);
        let served = tempfile::tempdir().expect("a temporary directory");
        let bare = served.path().join("repo.git");
        let source = project.path().display().to_string();
        git(
            served.path(),
            &["clone", "-q", "--bare", &source, "repo.git"],
        );
        git(&bare, &["update-server-info"]);
        let server = HttpsRepo::serve(served.path());
        let payload = |id: u64| {
            let mut payload = git_payload(&project, id, &second, &["cat file.txt"]).build();
            payload.git_info.repo_url = format!("{}/repo.git", server.url);
            PayloadBuilder::from(payload)
        };

        // Without the CA, git refuses the server's certificate.
        let ran = run_with(
            make,
            payload(89).build(),
            project.context("89").with_sources(Sources::Git),
        )
        .await;
        assert_eq!(
            ran.outcome.status,
            JobStatus::Failed,
            "{name}: {}",
            ran.output
        );

        let with_ca = payload(90)
            .file_var("CI_SERVER_TLS_CA_FILE", &server.ca_pem)
            .build();
        let ran = run_with(
            make,
            with_ca,
            project.context("90").with_sources(Sources::Git),
        )
        .await;
        ran.assert_status(JobStatus::Success, name);
        ran.assert_output_contains("\nsecond", name);
    }
}
