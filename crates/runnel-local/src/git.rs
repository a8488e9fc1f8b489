//! Reads what the planner needs from the local git repository, once per run: the commit, the
//! branch or tag, the default branch and the project path from the `origin` remote.
//!
//! Four short `git` invocations; anything missing falls back to a neutral value, so a directory
//! that is not a git repository still runs.

use std::path::Path;
use std::process::Command;

use runnel_pipeline::plan::{GitMeta, ProjectMeta, UserMeta};

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The commit, project and user of the repository at `dir`.
pub(crate) struct RepoMeta {
    pub(crate) git: GitMeta,
    pub(crate) project: ProjectMeta,
    pub(crate) user: UserMeta,
}

/// The standard output of `git -C dir args…`, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// [`git`]'s output trimmed, or `None` when it is empty: for commands that print one value.
pub fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    let text = git(dir, args)?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub(crate) fn read(dir: &Path) -> RepoMeta {
    let mut meta = GitMeta {
        before_sha: ZERO_SHA.to_owned(),
        ..GitMeta::default()
    };
    let (mut author_name, mut author_email) = (String::new(), String::new());
    if let Some(log) = git(
        dir,
        &["log", "-1", "--format=%H%x00%an%x00%ae%x00%cI%x00%B"],
    ) {
        let mut parts = log.splitn(5, '\0');
        meta.sha = parts.next().unwrap_or_default().to_owned();
        author_name = parts.next().unwrap_or_default().to_owned();
        author_email = parts.next().unwrap_or_default().to_owned();
        meta.timestamp = parts.next().unwrap_or_default().to_owned();
        meta.message = parts
            .next()
            .unwrap_or_default()
            .trim_end_matches('\n')
            .to_owned();
        meta.message.push('\n');
        meta.author = format!("{author_name} <{author_email}>");
    }
    match git_line(dir, &["symbolic-ref", "-q", "--short", "HEAD"]) {
        Some(branch) => meta.ref_name = branch,
        None => {
            if let Some(tag) = git_line(dir, &["describe", "--tags", "--exact-match"]) {
                meta.ref_name = tag;
                meta.is_tag = true;
            } else {
                meta.ref_name = meta.sha.get(..8).unwrap_or("HEAD").to_owned();
            }
        }
    }
    // GitLab: the project's default branch; locally what `origin/HEAD` points to.
    meta.default_branch = git_line(
        dir,
        &["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"],
    )
    .map(|r| r.trim_start_matches("origin/").to_owned())
    .filter(|b| !b.is_empty())
    .unwrap_or_else(|| "main".to_owned());
    let project = git_line(dir, &["config", "--get", "remote.origin.url"])
        .as_deref()
        .and_then(project_from_remote)
        .unwrap_or_else(|| {
            let name = dir
                .file_name()
                .map_or("project".into(), |n| n.to_string_lossy());
            ProjectMeta {
                path: format!("local/{name}"),
                ..ProjectMeta::default()
            }
        });
    let login = author_email
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let user = UserMeta {
        id: 1,
        login,
        name: author_name,
        email: author_email,
    };
    RepoMeta {
        git: meta,
        project,
        user,
    }
}

/// Files changed on this branch since it left the default branch, uncommitted edits included
/// (GitLab compares a push with the branch's previous tip: `rules:changes`). `None` when there
/// is no `origin/HEAD` to compare with, which makes `changes` true, as GitLab does for
/// pipelines without a diff.
pub(crate) fn changed_files(dir: &Path) -> Option<Vec<String>> {
    let out = git(
        dir,
        &[
            "diff",
            "--name-only",
            "--merge-base",
            "refs/remotes/origin/HEAD",
        ],
    )?;
    Some(
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// `git@host:group/project.git`, `ssh://git@host:port/group/project.git` or
/// `https://host/group/project.git` → the project as GitLab would name it.
pub fn project_from_remote(url: &str) -> Option<ProjectMeta> {
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (authority, path) = rest.split_once('/')?;
        let host = authority.split(':').next()?;
        let _ = scheme;
        (host, path)
    } else {
        let rest = url.rsplit_once('@').map_or(url, |(_, r)| r);
        rest.split_once(':')?
    };
    let path = path
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .trim_matches('/');
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(ProjectMeta {
        path: path.to_owned(),
        server_host: host.to_owned(),
        ..ProjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::project_from_remote;

    #[test]
    fn remote_urls_give_the_project_path() {
        for url in [
            "git@gitlab.com:gcl/test-project.git",
            "https://gitlab.com/gcl/test-project.git",
            "ssh://git@gitlab.com:2222/gcl/test-project",
            "https://user:token@gitlab.com/gcl/test-project/",
        ] {
            let project = project_from_remote(url).expect(url);
            assert_eq!(project.path, "gcl/test-project", "{url}");
            assert_eq!(project.server_host, "gitlab.com", "{url}");
            assert_eq!(project.namespace(), "gcl");
            assert_eq!(project.name(), "test-project");
        }
        assert!(project_from_remote("/some/local/path").is_none());
    }
}
