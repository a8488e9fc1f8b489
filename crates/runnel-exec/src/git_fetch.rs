//! Cloning or fetching `git_info.repo_url` at `git_info.sha` into the project directory, the way
//! gitlab-runner's `shells/abstract.go` `writeRefspecFetchCmd` does:
//!
//! - stale lock files a killed job left behind are removed first (`writeGitCleanup`);
//! - `git init` runs with a template whose config sets `init.defaultBranch none`,
//!   `fetch.recurseSubmodules false`, `credential.interactive never` and `gc.autoDetach false`;
//! - `origin` is the URL **without** the job token. The token reaches git only through a
//!   temporary config file (`url.<with token>.insteadOf <without>`) outside the work tree, named
//!   on the command line of the commands that talk to the server (`-c include.path=…`) and
//!   removed when the stage ends, so no file under `.git` ever holds it (gitlab-runner keeps its
//!   credentials in a temporary file included by the repository config for the same reason);
//! - the fetch sends `http.userAgent` `runnel <version> <os>/<arch>` and `--unshallow`s a shallow
//!   repository when `GIT_DEPTH` is 0.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use runnel_api::JobPayload;
use tokio::process::Command;

use crate::error::ExecError;
use crate::git_script::{SubmodulePlan, checkout_line, checkout_steps, fetch_args};
use crate::sources::{GitStrategy, create_dir, remove_dir};
use crate::trace::Trace;
use crate::variables::JobVariables;

/// The files under `.git` (and, with submodules, under `.git/modules/**`) that a job killed
/// during a git command can leave behind and that fail the next one. GitLab: gitlab-runner
/// `shells/abstract.go` `writeGitCleanup`.
pub(crate) const STALE_FILES: [&str; 5] = [
    "index.lock",
    "shallow.lock",
    "HEAD.lock",
    "hooks/post-checkout",
    "config.lock",
];

/// The config of the `git init` template. GitLab: gitlab-runner `shells/abstract.go`
/// `writeRefspecFetchCmd`.
pub(crate) const TEMPLATE_CONFIG: &str = "[init]\n\tdefaultBranch = none\n[fetch]\n\trecurseSubmodules = false\n\
     [credential]\n\tinteractive = never\n[gc]\n\tautoDetach = false\n";

/// Clones or fetches the repository of `payload` into `project_dir`.
/// Returns `Ok(Some(code))` when a git command failed (a job failure), `Ok(None)` on success.
pub(crate) async fn fetch_git(
    payload: &JobPayload,
    variables: &JobVariables,
    project_dir: &Path,
    strategy: GitStrategy,
    trace: &mut Trace,
) -> Result<Option<i32>, ExecError> {
    match strategy {
        GitStrategy::None => {
            trace.println("Skipping Git repository setup");
            create_dir(project_dir)?;
            return Ok(None);
        }
        GitStrategy::Empty => {
            trace.println("Skipping Git repository setup and creating an empty build directory");
            remove_dir(project_dir)?;
            create_dir(project_dir)?;
            return Ok(None);
        }
        GitStrategy::Clone => remove_dir(project_dir)?,
        GitStrategy::Fetch => {}
    }
    create_dir(project_dir)?;
    let depth = payload.git_info.depth;
    if depth > 0 {
        trace.println(&format!(
            "Fetching changes with git depth set to {depth}..."
        ));
    } else {
        trace.println("Fetching changes...");
    }
    let submodules = matches!(
        variables.get("GIT_SUBMODULE_STRATEGY"),
        Some("normal" | "recursive")
    );
    remove_stale_files(&project_dir.join(".git"), submodules);
    let remote = RemoteUrl::parse(&payload.git_info.repo_url);
    let tls = crate::git_tls::settings(variables, &payload.git_info.repo_url);
    let scratch = Scratch::create(&remote, &tls)?;
    if let Some(code) = init_repository(payload, &remote, &scratch, project_dir, trace).await? {
        return Ok(Some(code));
    }
    let fetch = fetch_command(payload, variables, &scratch, project_dir);
    if let Some(code) = run_git(&fetch, project_dir, trace).await? {
        return Ok(Some(code));
    }
    checkout(payload, variables, &scratch, project_dir, trace).await
}

/// `git init` with the template, then `origin` set to the URL without credentials.
async fn init_repository(
    payload: &JobPayload,
    remote: &RemoteUrl,
    scratch: &Scratch,
    project_dir: &Path,
    trace: &mut Trace,
) -> Result<Option<i32>, ExecError> {
    let mut init = vec![
        "init".to_owned(),
        ".".to_owned(),
        "--template".to_owned(),
        path_arg(&scratch.template_dir()),
    ];
    if payload.git_info.repo_object_format == "sha256" {
        init.push("--object-format=sha256".into());
    }
    // git's own "Initialized empty Git repository" / "Reinitialized existing Git repository"
    // reaches the trace, as in gitlab-runner's job logs.
    if let Some(code) = run_git(&init, project_dir, trace).await? {
        return Ok(Some(code));
    }
    let add = ["remote", "add", "origin", remote.plain.as_str()].map(str::to_owned);
    if git_succeeds(&add, project_dir).await? {
        trace.println("Created fresh repository.");
        return Ok(None);
    }
    let set = ["remote", "set-url", "origin", remote.plain.as_str()].map(str::to_owned);
    run_git(&set, project_dir, trace).await
}

/// `git fetch origin` with the job's refspecs, depth and `GIT_FETCH_EXTRA_FLAGS`.
fn fetch_command(
    payload: &JobPayload,
    variables: &JobVariables,
    scratch: &Scratch,
    project_dir: &Path,
) -> Vec<String> {
    let mut fetch = scratch.config_args();
    fetch.extend(fetch_args(payload, variables));
    // GitLab: `writeRefspecFetchCmd` deepens a shallow repository to full history at depth 0.
    if payload.git_info.depth == 0 && project_dir.join(".git/shallow").is_file() {
        fetch.push("--unshallow".into());
    }
    fetch
}

/// `checkout -f`, `clean` and the submodules, unless `GIT_CHECKOUT` is false.
async fn checkout(
    payload: &JobPayload,
    variables: &JobVariables,
    scratch: &Scratch,
    project_dir: &Path,
    trace: &mut Trace,
) -> Result<Option<i32>, ExecError> {
    let git = &payload.git_info;
    if matches!(variables.get("GIT_CHECKOUT"), Some("false" | "0")) {
        trace.println("Skipping Git checkout");
        return Ok(None);
    }
    trace.println(&checkout_line(payload));
    let steps = checkout_steps(payload, variables);
    for args in steps {
        if let Some(code) = run_git(&args, project_dir, trace).await? {
            return Ok(Some(code));
        }
    }
    update_submodules(variables, git.depth, scratch, project_dir, trace).await
}

/// `GIT_SUBMODULE_STRATEGY` (`none`, `normal`, `recursive`). An invalid strategy fails the job.
async fn update_submodules(
    variables: &JobVariables,
    depth: u32,
    scratch: &Scratch,
    project_dir: &Path,
    trace: &mut Trace,
) -> Result<Option<i32>, ExecError> {
    let (message, sync, update) = match SubmodulePlan::of(variables, depth) {
        SubmodulePlan::Skip => {
            trace.println("Skipping Git submodules setup");
            return Ok(None);
        }
        SubmodulePlan::Invalid(error) => {
            trace.error(&error);
            return Ok(Some(1));
        }
        SubmodulePlan::Update {
            message,
            sync,
            update,
        } => (message, sync, update),
    };
    trace.println(message);
    // Submodules on the project's host authenticate with the job token like the project.
    let mut authenticated = scratch.config_args();
    authenticated.extend(update);
    for args in [sync, authenticated] {
        if let Some(code) = run_git(&args, project_dir, trace).await? {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// Removes what a job killed during a git command leaves under `git_dir`: the lock files and
/// `hooks/post-checkout` of [`STALE_FILES`] (also under `modules/` when the job uses
/// submodules) and every `refs/**/*.lock`. GitLab: gitlab-runner `shells/abstract.go`
/// `writeGitCleanup`. Blocking, but a handful of `unlink`s and a walk of `refs`.
pub(crate) fn remove_stale_files(git_dir: &Path, submodules: bool) {
    for name in STALE_FILES {
        let _ = fs::remove_file(git_dir.join(name));
    }
    let in_modules = |path: &Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        STALE_FILES
            .iter()
            .any(|stale| stale.rsplit('/').next() == Some(name))
    };
    remove_matching(&git_dir.join("refs"), |path| {
        path.extension().is_some_and(|ext| ext == "lock")
    });
    if submodules {
        remove_matching(&git_dir.join("modules"), in_modules);
    }
}

/// Removes the files under `dir` that `stale` picks.
fn remove_matching(dir: &Path, stale: impl Fn(&Path) -> bool) {
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_file() && stale(entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// `git_info.repo_url` split into the URL `origin` gets and the credentials git needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteUrl {
    /// The URL without user info: what `git remote get-url origin` shows.
    pub(crate) plain: String,
    /// `(scheme://user:token@host/, scheme://host/)`: a URL prefix with the credentials and the
    /// prefix it stands in for, when the URL had credentials.
    pub(crate) instead_of: Option<(String, String)>,
}

impl RemoteUrl {
    /// Splits `url` (`scheme://[user[:password]@]host[:port]/path`); a URL of another form
    /// (`git@host:path`, a local path) is kept as it is.
    pub(crate) fn parse(url: &str) -> Self {
        let unchanged = || Self {
            plain: url.to_owned(),
            instead_of: None,
        };
        let Some(scheme_end) = url.find("://") else {
            return unchanged();
        };
        let (scheme, rest) = (&url[..scheme_end + 3], &url[scheme_end + 3..]);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let Some(at) = authority.rfind('@') else {
            return unchanged();
        };
        let (user_info, host) = (&authority[..at], &authority[at + 1..]);
        // A newline cannot be written into a config subsection; such a URL keeps its credentials
        // out of the config and fails to authenticate.
        let instead_of = (!url.contains('\n')).then(|| {
            (
                format!("{scheme}{user_info}@{host}/"),
                format!("{scheme}{host}/"),
            )
        });
        Self {
            plain: format!("{scheme}{host}{path}"),
            instead_of,
        }
    }
}

/// A private directory (mode 0700, outside the work tree) for the `git init` template and the
/// credentials config; removed on drop, so the token lives on disk only while the stage runs.
struct Scratch {
    dir: PathBuf,
    credentials: Option<PathBuf>,
}

impl Scratch {
    /// `tls`: the TLS settings of [`crate::git_tls::settings`]; each file is written into the
    /// directory and named in the configuration the server commands include.
    fn create(remote: &RemoteUrl, tls: &[(&str, String, &str)]) -> Result<Self, ExecError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "runnel-git-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(ExecError::io("create the directory", &dir))?;
        let mut scratch = Self {
            dir,
            credentials: None,
        };
        let template = scratch.template_dir();
        create_dir(&template)?;
        write_private(&template.join("config"), TEMPLATE_CONFIG)?;
        let mut text = String::new();
        if let Some((with, without)) = &remote.instead_of {
            text.push_str(&format!(
                "[url \"{}\"]\n\tinsteadOf = \"{}\"\n",
                config_escape(with),
                config_escape(without)
            ));
        }
        for (variable, key, content) in tls {
            let path = scratch.dir.join(variable);
            write_private(&path, content)?;
            text.push_str(&tls_section(key, &path));
        }
        if !text.is_empty() {
            let path = scratch.dir.join("credentials.config");
            write_private(&path, &text)?;
            scratch.credentials = Some(path);
        }
        Ok(scratch)
    }

    fn template_dir(&self) -> PathBuf {
        self.dir.join("template")
    }

    /// `-c include.path=<credentials>` for a command that talks to the server.
    fn config_args(&self) -> Vec<String> {
        match &self.credentials {
            Some(path) => vec!["-c".to_owned(), format!("include.path={}", path.display())],
            None => Vec::new(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The config section setting `key` (`http.<url>.<name>`) to `path`.
fn tls_section(key: &str, path: &Path) -> String {
    let rest = key.strip_prefix("http.").unwrap_or(key);
    let (url, name) = rest.rsplit_once('.').unwrap_or((rest, ""));
    format!(
        "[http \"{}\"]\n\t{name} = \"{}\"\n",
        config_escape(url),
        config_escape(&path.to_string_lossy())
    )
}

fn write_private(path: &Path, text: &str) -> Result<(), ExecError> {
    fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(ExecError::io("write", path))
}

/// Escapes `"` and `\` for a quoted config subsection or value.
pub(crate) fn config_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn git_command(args: &[String], dir: &Path) -> Command {
    let mut command = Command::new("git");
    // When jobs run as another user (`run --user`), the project directory is theirs and git
    // refuses a repository owned by someone else ("dubious ownership"); the daemon made this
    // directory for the job, so it trusts it.
    if owned_by_someone_else(dir) {
        command
            .arg("-c")
            .arg(format!("safe.directory={}", dir.display()));
    }
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "Never")
        .stdin(std::process::Stdio::null());
    command
}

fn owned_by_someone_else(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).is_ok_and(|m| m.uid() != nix::unistd::geteuid().as_raw())
}

/// Runs git quietly; whether it succeeded.
async fn git_succeeds(args: &[String], dir: &Path) -> Result<bool, ExecError> {
    let output = git_command(args, dir)
        .output()
        .await
        .map_err(ExecError::io("run git in", dir))?;
    Ok(output.status.success())
}

/// Runs git with its output in the trace; `Some(code)` when it failed.
pub(crate) async fn run_git(
    args: &[String],
    dir: &Path,
    trace: &mut Trace,
) -> Result<Option<i32>, ExecError> {
    let output = git_command(args, dir)
        .output()
        .await
        .map_err(ExecError::io("run git in", dir))?;
    trace.write(&output.stdout);
    trace.write(&output.stderr);
    trace.flush();
    Ok((!output.status.success()).then(|| output.status.code().unwrap_or(-1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_url_without_credentials_keeps_them_only_in_the_instead_of_prefix() {
        let remote = RemoteUrl::parse("https://gitlab-ci-token:s3cr3t@gitlab.example:8443/g/p.git");
        assert_eq!(remote.plain, "https://gitlab.example:8443/g/p.git");
        assert_eq!(
            remote.instead_of,
            Some((
                "https://gitlab-ci-token:s3cr3t@gitlab.example:8443/".to_owned(),
                "https://gitlab.example:8443/".to_owned()
            ))
        );
    }

    #[test]
    fn remote_url_without_user_info_or_scheme_is_kept() {
        for url in [
            "https://gitlab.example/g/p.git",
            "git@gitlab.example:g/p.git",
            "/srv/repo",
        ] {
            let remote = RemoteUrl::parse(url);
            assert_eq!(remote.plain, url);
            assert_eq!(remote.instead_of, None);
        }
    }

    #[test]
    fn remote_url_with_an_at_in_the_path_splits_at_the_authority() {
        let remote = RemoteUrl::parse("http://u:p@host/a@b/repo.git");
        assert_eq!(remote.plain, "http://host/a@b/repo.git");
    }

    #[test]
    fn stale_lock_files_and_post_checkout_hook_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = dir.path();
        let planted = [
            "index.lock",
            "shallow.lock",
            "HEAD.lock",
            "config.lock",
            "hooks/post-checkout",
            "refs/heads/x.lock",
            "refs/remotes/origin/deep/y.lock",
            "modules/sub/index.lock",
        ];
        let kept = ["index", "refs/heads/x", "hooks/pre-commit"];
        for file in planted.iter().chain(&kept) {
            let path = git.join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, "x").expect("write");
        }
        remove_stale_files(git, true);
        for file in planted {
            assert!(!git.join(file).exists(), "{file} must be removed");
        }
        for file in kept {
            assert!(git.join(file).exists(), "{file} must be kept");
        }
    }

    #[test]
    fn submodule_locks_stay_without_a_submodule_strategy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("modules/sub/index.lock");
        fs::create_dir_all(lock.parent().expect("parent")).expect("mkdir");
        fs::write(&lock, "x").expect("write");
        remove_stale_files(dir.path(), false);
        assert!(lock.exists());
    }

    #[test]
    fn credentials_config_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let remote = RemoteUrl::parse("http://gitlab-ci-token:tok\"en@h/p.git");
        let scratch = Scratch::create(&remote, &[]).expect("scratch");
        let path = scratch.credentials.clone().expect("credentials");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("[url \"http://gitlab-ci-token:tok\\\"en@h/\"]"),
            "{text}"
        );
        let mode = fs::metadata(&scratch.dir)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let dir = scratch.dir.clone();
        drop(scratch);
        assert!(!dir.exists());
    }
}
