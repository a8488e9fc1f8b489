//! The daemon cloning and fetching the project repository from the fake GitLab over smart HTTP,
//! authenticated with `gitlab-ci-token:<job token>` as GitLab's `git_info.repo_url` carries it.

mod daemon_shell_support;

use std::path::Path;

use daemon_shell_support::start_shell_daemon;
use runnel_runner::test_support::{
    FakeGitLab, FakeJobState, GitSource, JobSpec, commit_readme, new_repository,
};

fn git_job(strategy: &str, sha: &str, script: &[&str]) -> JobSpec {
    JobSpec {
        git: Some(GitSource::new(strategy, sha)),
        ..JobSpec::script(script)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_checks_out_the_job_commit_and_fetch_reuses_the_directory_for_a_new_commit() {
    let repo = new_repository();
    let first = commit_readme(repo.path(), "first version");
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());
    let token = fake.create_runner();
    let cloned = fake.add_job(git_job(
        "clone",
        &first,
        &[
            "cat README",
            "echo \"HEAD=$(git rev-parse HEAD)\"",
            "echo kept > .git/runnel-test-mark",
        ],
    ));
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", "");
    let job = fake.wait_for_final(cloned).await;
    let trace = fake.trace_text(cloned);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("first version"), "{trace}");
    assert!(trace.contains(&format!("HEAD={first}")), "{trace}");

    let second = commit_readme(repo.path(), "second version");
    let fetched = fake.add_job(git_job(
        "fetch",
        &second,
        &[
            "cat README",
            "echo \"HEAD=$(git rev-parse HEAD)\"",
            "cat .git/runnel-test-mark",
        ],
    ));
    let job = fake.wait_for_final(fetched).await;
    let trace = fake.trace_text(fetched);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("second version"), "{trace}");
    assert!(trace.contains(&format!("HEAD={second}")), "{trace}");
    assert!(
        trace.contains("\nkept"),
        "fetch must reuse the clone's .git: {trace}"
    );
    daemon.stop().await;

    // Each job fetched with its own token: upload-pack requests authorized for both jobs, and
    // no credentials of another job.
    let requests = fake.git_requests();
    for id in [cloned, fetched] {
        assert!(
            requests
                .iter()
                .any(|r| r.job == Some(id) && r.authorized && r.path == "git-upload-pack"),
            "job {id} fetched nothing: {requests:?}"
        );
    }
    assert!(
        requests.iter().all(|r| r.job.is_none() || r.authorized),
        "{requests:?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_whose_token_the_repository_refuses_fails_before_its_script() {
    let repo = new_repository();
    let sha = commit_readme(repo.path(), "content");
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());
    let token = fake.create_runner();
    let mut spec = git_job("clone", &sha, &["echo the script ran"]);
    if let Some(git) = spec.git.as_mut() {
        git.reject_token = true;
    }
    let id = fake.add_job(spec);
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", "");
    let job = fake.wait_for_final(id).await;
    daemon.stop().await;
    let trace = fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Failed, "{trace}");
    assert!(!trace.contains("the script ran"), "{trace}");
    let requests = fake.git_requests();
    assert!(
        requests.iter().any(|r| r.job == Some(id) && !r.authorized),
        "the fake must have answered the job's credentials with a 401: {requests:?}"
    );
    assert!(requests.iter().all(|r| !r.authorized), "{requests:?}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The files under `dir` whose contents hold `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(path);
            }
        }
    }
    found
}

/// The value of the `KEY=` line the job printed.
fn printed<'a>(trace: &'a str, key: &str) -> &'a str {
    trace
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line: {trace}"))
        .trim_end()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_token_stays_out_of_dot_git_and_stale_locks_do_not_break_the_next_fetch() {
    let repo = new_repository();
    let first = commit_readme(repo.path(), "first version");
    let fake = FakeGitLab::start().await;
    fake.serve_git(repo.path());
    let token = fake.create_runner();
    // What each job checks: `origin` has no credentials and no file under `.git` the token.
    let checks = [
        "echo \"ORIGIN=$(git remote get-url origin)\"",
        "if grep -rqF \"$CI_JOB_TOKEN\" .git; then echo TOKEN-UNDER-GIT; exit 1; fi",
        "echo \"DIR=$PWD\"",
    ];
    // A job killed during a git command leaves lock files like these behind.
    let plant = "touch .git/index.lock .git/refs/heads/x.lock";
    let cloned = fake.add_job(git_job("clone", &first, &[&checks[..], &[plant]].concat()));
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", "");
    let job = fake.wait_for_final(cloned).await;
    let trace = fake.trace_text(cloned);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("Created fresh repository."), "{trace}");
    let origin = printed(&trace, "ORIGIN=");
    assert!(
        origin.starts_with("http://") && !origin.contains('@'),
        "{trace}"
    );
    let dir = std::path::PathBuf::from(printed(&trace, "DIR="));
    assert_eq!(
        files_containing(&dir.join(".git"), &format!("job{cloned}secret")),
        Vec::<std::path::PathBuf>::new()
    );

    let second = commit_readme(repo.path(), "second version");
    let unlocked = [
        "test ! -e .git/index.lock",
        "test ! -e .git/refs/heads/x.lock",
        "cat README",
    ];
    let fetched = fake.add_job(git_job(
        "fetch",
        &second,
        &[&checks[..], &unlocked].concat(),
    ));
    let job = fake.wait_for_final(fetched).await;
    let trace = fake.trace_text(fetched);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(
        trace.contains("Reinitialized existing Git repository"),
        "{trace}"
    );
    assert!(trace.contains("second version"), "{trace}");
    assert_eq!(printed(&trace, "ORIGIN="), origin);
    for id in [cloned, fetched] {
        assert_eq!(
            files_containing(&dir.join(".git"), &format!("job{id}secret")),
            Vec::<std::path::PathBuf>::new()
        );
    }
    daemon.stop().await;
    // The fetch authenticated although `origin` carries no credentials.
    let requests = fake.git_requests();
    assert!(
        requests
            .iter()
            .any(|r| r.job == Some(fetched) && r.authorized && r.path == "git-upload-pack"),
        "{requests:?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// GitLab: gitlab-runner's `GetCITLSVariables` gives every job the CA chain of `tls-ca-file` as
/// the file variable `CI_SERVER_TLS_CA_FILE` (its git gets it as `http.<host>.sslCAInfo`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_file_reaches_the_job_as_ci_server_tls_ca_file() {
    let fake = FakeGitLab::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = rcgen::KeyPair::generate().expect("a key");
    let params = rcgen::CertificateParams::new(vec!["gitlab.example".to_owned()]).expect("params");
    let pem = params.self_signed(&key).expect("a certificate").pem();
    let ca = dir.path().join("gitlab-ca.crt");
    std::fs::write(&ca, &pem).expect("write the CA");
    let id = fake.add_job(JobSpec::script(&[
        "test -f \"$CI_SERVER_TLS_CA_FILE\" && echo ca-file-is-a-file",
        "cat \"$CI_SERVER_TLS_CA_FILE\"",
        "echo cert=${CI_SERVER_TLS_CERT_FILE:-none}",
    ]));
    let token = fake.create_runner();
    let runner = format!("tls-ca-file = {:?}\n", ca.display().to_string());
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", &runner);
    let job = fake.wait_for_final(id).await;
    let trace = fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    assert!(trace.contains("ca-file-is-a-file"), "{trace}");
    let first_line = pem.lines().nth(1).expect("a PEM body");
    assert!(trace.contains(first_line), "{trace}");
    assert!(trace.contains("cert=none"), "no client pair: {trace}");
    daemon.stop().await;
}
