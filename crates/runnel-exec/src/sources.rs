//! The `get_sources` build stage: putting the project's files into the project directory.
//!
//! `WorkingTree` (local `runnel exec`) copies the user's working tree as it is now, uncommitted
//! edits included: the files `git ls-files -z --cached --others --exclude-standard` lists, read
//! once per run and shared by every job. `Git` (the daemon) clones or fetches
//! `git_info.repo_url` at `git_info.sha`, honouring `GIT_STRATEGY`, `GIT_DEPTH`,
//! `GIT_CLEAN_FLAGS` and `GIT_CHECKOUT` (GitLab: gitlab-runner `shells/abstract.go`
//! `writeCloneFetchCmds`); see `git_fetch`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_api::JobPayload;
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::error::ExecError;
pub(crate) use crate::git_fetch::fetch_git;
use crate::git_fetch::run_git;
use crate::trace::Trace;
use crate::variables::JobVariables;

/// Where the sources of a job come from.
#[derive(Debug, Clone)]
pub enum Sources {
    /// Copy the files of a local working tree (shared by all jobs of a run).
    WorkingTree(Arc<WorkingTree>),
    /// Clone or fetch `git_info.repo_url` at `git_info.sha`.
    Git,
}

/// A local working tree whose file list is read once and shared by every job of a run.
#[derive(Debug)]
pub struct WorkingTree {
    dir: PathBuf,
    files: OnceCell<Arc<Vec<PathBuf>>>,
    repository: OnceCell<Option<Repository>>,
}

/// The repository behind a working tree: its common git directory and `HEAD` commit.
#[derive(Debug, Clone)]
struct Repository {
    git_dir: PathBuf,
    head: String,
}

impl WorkingTree {
    /// The working tree at `dir` (the repository's top level).
    pub fn new(dir: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.into(),
            files: OnceCell::new(),
            repository: OnceCell::new(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files to copy, relative to the tree, read with `git ls-files` on first use. Files
    /// under `.runnel/` (runnel's own builds, caches and artifacts) are left out.
    pub async fn files(&self) -> Result<Arc<Vec<PathBuf>>, ExecError> {
        self.files
            .get_or_try_init(|| async {
                let output = Command::new("git")
                    .args([
                        "ls-files",
                        "-z",
                        "--cached",
                        "--others",
                        "--exclude-standard",
                    ])
                    .current_dir(&self.dir)
                    .output()
                    .await
                    .map_err(ExecError::io("run `git ls-files` in", &self.dir))?;
                if !output.status.success() {
                    return Err(ExecError::Git {
                        command: "ls-files".into(),
                        dir: self.dir.clone(),
                        code: output.status.code().unwrap_or(-1),
                    });
                }
                let mut seen = HashSet::new();
                let files = output
                    .stdout
                    .split(|&b| b == 0)
                    .filter(|name| !name.is_empty())
                    .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
                    .filter(|path| !path.starts_with(".runnel"))
                    .filter(|path| seen.insert(path.clone()))
                    .collect();
                Ok(Arc::new(files))
            })
            .await
            .cloned()
    }
}

impl WorkingTree {
    /// The git directory and `HEAD` of the tree, read once per run; `None` without a commit.
    async fn repository(&self) -> Option<Repository> {
        self.repository
            .get_or_init(|| async {
                let output = Command::new("git")
                    .args([
                        "rev-parse",
                        "--path-format=absolute",
                        "--git-common-dir",
                        "--verify",
                        "-q",
                        "HEAD",
                    ])
                    .current_dir(&self.dir)
                    .output()
                    .await
                    .ok()?;
                let text = String::from_utf8_lossy(&output.stdout);
                let mut lines = text.lines();
                let git_dir = PathBuf::from(lines.next()?);
                let head = lines.next()?.trim().to_owned();
                (output.status.success() && head.len() >= 40)
                    .then_some(Repository { git_dir, head })
            })
            .await
            .clone()
    }
}

/// Gives a working tree copy a `.git` of its own that borrows the user's objects (through
/// `objects/info/alternates`, nothing is copied) and tags, with `HEAD` at the user's commit, so
/// scripts can run `git describe`, `git rev-parse HEAD` or `git diff`. Returns whether `HEAD`
/// moved (the index must then be read again). Blocking.
fn link_repository(project_dir: &Path, repository: &Repository) -> std::io::Result<bool> {
    let git = project_dir.join(".git");
    if !git.join("HEAD").is_file() {
        fs::create_dir_all(git.join("objects/info"))?;
        fs::create_dir_all(git.join("refs/heads"))?;
        // A SHA-256 repository (64-hex `HEAD`) needs the object format extension.
        let config = if repository.head.len() == 64 {
            "[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n\tbare = false\n\
             [extensions]\n\tobjectformat = sha256\n"
        } else {
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
        };
        fs::write(git.join("config"), config)?;
    }
    let objects = repository.git_dir.join("objects");
    fs::write(
        git.join("objects/info/alternates"),
        format!("{}\n", objects.display()),
    )?;
    let packed = repository.git_dir.join("packed-refs");
    if packed.is_file() {
        fs::copy(&packed, git.join("packed-refs"))?;
    }
    let tags = repository.git_dir.join("refs/tags");
    for entry in walkdir::WalkDir::new(&tags)
        .min_depth(1)
        .into_iter()
        .flatten()
    {
        let Ok(rel) = entry.path().strip_prefix(&tags) else {
            continue;
        };
        let target = git.join("refs/tags").join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(entry.path(), &target)?;
        }
    }
    let head = format!("{}\n", repository.head);
    let moved = fs::read_to_string(git.join("HEAD")).ok().as_deref() != Some(head.as_str());
    if moved {
        fs::write(git.join("HEAD"), head)?;
    }
    Ok(moved)
}

/// `GIT_STRATEGY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GitStrategy {
    Clone,
    Fetch,
    None,
    Empty,
}

impl GitStrategy {
    /// GitLab: gitlab-runner `common/build.go` `GetGitStrategy` — invalid values fall back to the
    /// default (`fetch` when `allow_git_fetch`, else `clone`).
    pub(crate) fn of(payload: &JobPayload, variables: &JobVariables) -> Self {
        match variables.get("GIT_STRATEGY") {
            Some("clone") => Self::Clone,
            Some("fetch") => Self::Fetch,
            Some("none") => Self::None,
            Some("empty") => Self::Empty,
            _ if payload.allow_git_fetch => Self::Fetch,
            _ => Self::Clone,
        }
    }
}

/// Copies the working tree into `project_dir`. `clone` starts from an empty directory; every
/// other strategy except `none`/`empty` synchronises: unchanged files (same size and mtime) are
/// not copied again, and files the tree does not have are removed (like `git clean -ffdx`)
/// unless `GIT_CLEAN_FLAGS` is `none`.
pub(crate) async fn copy_working_tree(
    tree: &WorkingTree,
    project_dir: &Path,
    strategy: GitStrategy,
    clean: bool,
    trace: &mut Trace,
) -> Result<(), ExecError> {
    match strategy {
        GitStrategy::None => {
            trace.println("Skipping Git repository setup");
            return create_dir(project_dir);
        }
        GitStrategy::Empty => {
            trace.println("Skipping Git repository setup and creating an empty build directory");
            remove_dir(project_dir)?;
            return create_dir(project_dir);
        }
        GitStrategy::Clone => remove_dir(project_dir)?,
        GitStrategy::Fetch => {}
    }
    let files = tree.files().await?;
    trace.println(&format!(
        "Copying the working tree {} ({} files)...",
        tree.dir.display(),
        files.len()
    ));
    let from = tree.dir.clone();
    let to = project_dir.to_owned();
    let copied = tokio::task::spawn_blocking(move || sync_files(&from, &to, &files, clean))
        .await
        .map_err(ExecError::Join)??;
    trace.println(&format!("Updated {copied} files"));
    if let Some(repository) = tree.repository().await {
        let dir = project_dir.to_owned();
        let linked = tokio::task::spawn_blocking(move || link_repository(&dir, &repository))
            .await
            .map_err(ExecError::Join)?;
        match linked {
            // The index only changes with `HEAD`; later jobs in this directory reuse it.
            Ok(true) => {
                let args = ["read-tree".to_owned(), "HEAD".to_owned()];
                if run_git(&args, project_dir, trace).await?.is_some() {
                    trace.warning("failed to read the index of the working tree's HEAD");
                }
            }
            Ok(false) => {}
            Err(err) => trace.warning(&format!("failed to give the copy a .git directory: {err}")),
        }
    }
    Ok(())
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), ExecError> {
    fs::create_dir_all(dir).map_err(ExecError::io("create the directory", dir))
}

pub(crate) fn remove_dir(dir: &Path) -> Result<(), ExecError> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(ExecError::io("remove the directory", dir)(err))
        }
        _ => Ok(()),
    }
}

/// Makes `to` hold exactly `files` of `from`; returns how many files were written.
fn sync_files(from: &Path, to: &Path, files: &[PathBuf], clean: bool) -> Result<usize, ExecError> {
    create_dir(to)?;
    let mut keep: HashSet<&Path> = HashSet::with_capacity(files.len() * 2);
    let mut made: HashSet<&Path> = HashSet::new();
    let mut copied = 0;
    for rel in files {
        let src = from.join(rel);
        let dst = to.join(rel);
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        }; // Deleted, still in the index.
        for ancestor in rel.ancestors() {
            keep.insert(ancestor);
        }
        if let Some(parent) = rel.parent()
            && made.insert(parent)
        {
            create_dir(&to.join(parent))?;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(ExecError::io("read the symlink", &src))?;
            if fs::read_link(&dst).ok().as_deref() != Some(target.as_path()) {
                let _ = fs::remove_file(&dst);
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(ExecError::io("create the symlink", &dst))?;
                copied += 1;
            }
        } else if meta.is_file() {
            let existing = fs::symlink_metadata(&dst).ok();
            let same = existing.as_ref().is_some_and(|d| {
                d.is_file() && d.len() == meta.len() && d.modified().ok() == meta.modified().ok()
            });
            if !same {
                if existing.is_some_and(|d| !d.is_file()) {
                    let _ = fs::remove_dir_all(&dst);
                    let _ = fs::remove_file(&dst);
                }
                fs::copy(&src, &dst).map_err(ExecError::io("copy", &src))?;
                if let Ok(modified) = meta.modified() {
                    let file = fs::File::options()
                        .write(true)
                        .open(&dst)
                        .map_err(ExecError::io("open", &dst))?;
                    let _ = file.set_modified(modified);
                }
                copied += 1;
            }
        }
    }
    if clean {
        let mut walker = walkdir::WalkDir::new(to)
            .min_depth(1)
            .follow_links(false)
            .into_iter();
        while let Some(Ok(entry)) = walker.next() {
            let Ok(rel) = entry.path().strip_prefix(to) else {
                continue;
            };
            if keep.contains(rel) {
                continue;
            }
            if rel == Path::new(".git") {
                walker.skip_current_dir();
                continue;
            }
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
                fs::remove_dir_all(entry.path()).map_err(ExecError::io("remove", entry.path()))?;
            } else {
                fs::remove_file(entry.path()).map_err(ExecError::io("remove", entry.path()))?;
            }
        }
    }
    Ok(copied)
}

/// The files of the project directory git does not track (`git ls-files -o -z`, ignored files
/// included, as gitlab-runner's `untracked`). Without a `.git` directory (a working tree copy),
/// the files the copy did not bring.
pub(crate) async fn untracked_files(
    project_dir: &Path,
    sources: &Sources,
) -> Result<Vec<PathBuf>, ExecError> {
    if project_dir.join(".git").exists() {
        let output = Command::new("git")
            .args(["ls-files", "-o", "-z"])
            .current_dir(project_dir)
            .output()
            .await
            .map_err(ExecError::io("run `git ls-files` in", project_dir))?;
        return Ok(output
            .stdout
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .collect());
    }
    let copied: HashSet<PathBuf> = match sources {
        Sources::WorkingTree(tree) => tree.files().await?.iter().cloned().collect(),
        Sources::Git => HashSet::new(),
    };
    let dir = project_dir.to_owned();
    tokio::task::spawn_blocking(move || {
        walkdir::WalkDir::new(&dir)
            .min_depth(1)
            .follow_links(false)
            .into_iter()
            .flatten()
            .filter(|entry| !entry.file_type().is_dir())
            .filter_map(|entry| entry.path().strip_prefix(&dir).ok().map(Path::to_path_buf))
            .filter(|rel| !copied.contains(rel))
            .collect()
    })
    .await
    .map_err(ExecError::Join)
}
