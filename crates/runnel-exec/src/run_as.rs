//! Running the shell executor's scripts as another user, as gitlab-runner does with `run --user`
//! (`shells/bash.go`, `GetConfiguration`: `su -s /bin/bash <user> -c "bash -l"`, a login shell
//! for the shell executor). `su` gives the script the user's `HOME`, `USER`, `LOGNAME` and
//! `SHELL`, and the login shell reads the user's profile. The daemon keeps running as root, so
//! the files it makes for a job (the checkout, restored caches and artifacts, file variables) are
//! handed to the user before each script runs.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// The user the scripts run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The login name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

/// Why a job user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    /// No such user.
    #[error("the user `{0}` does not exist")]
    NoSuchUser(String),
    /// The user database could not be read.
    #[error("failed to look up the user `{name}`")]
    Lookup {
        /// The user name.
        name: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// Only root can switch users without a password.
    #[error(
        "running jobs as `{0}` needs runnel to run as root (su asks anyone else for a password)"
    )]
    NotRoot(String),
}

impl RunAs {
    /// Looks `name` up in the user database; the caller must be root.
    pub fn lookup(name: &str) -> Result<Self, RunAsError> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|source| RunAsError::Lookup {
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| RunAsError::NoSuchUser(name.to_owned()))?;
        if !nix::unistd::geteuid().is_root() && user.uid != nix::unistd::geteuid() {
            return Err(RunAsError::NotRoot(name.to_owned()));
        }
        Ok(Self {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        })
    }

    /// `su -s <shell> <user> -c "<shell> -l '<script>'"`.
    pub(crate) fn command(&self, shell: &Path, script: &Path) -> Command {
        let shell_text = shell.to_string_lossy();
        let mut cmd = Command::new("su");
        cmd.arg("-s")
            .arg(shell)
            .arg(&self.name)
            .arg("-c")
            .arg(format!(
                "{} -l {}",
                quote(&shell_text),
                quote(&script.to_string_lossy())
            ));
        cmd
    }

    /// Gives `path` and everything under it to the user (symbolic links themselves, not their
    /// targets). A missing `path` is fine.
    pub fn chown_tree(&self, path: &Path) -> std::io::Result<()> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        for entry in walkdir::WalkDir::new(path) {
            let entry = entry.map_err(std::io::Error::other)?;
            std::os::unix::fs::lchown(entry.path(), Some(self.uid), Some(self.gid))?;
        }
        Ok(())
    }

    /// Creates `path` for the user: the directories this creates (`path` and missing parents)
    /// are the user's; existing ones are left as they are, except `path` itself.
    pub fn own_dir(&self, path: &Path) -> std::io::Result<()> {
        let mut missing = Vec::new();
        let mut at = path;
        while std::fs::symlink_metadata(at).is_err() {
            missing.push(at.to_owned());
            match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => break,
            }
        }
        std::fs::create_dir_all(path)?;
        for dir in missing.iter().map(PathBuf::as_path).chain([path]) {
            std::os::unix::fs::lchown(dir, Some(self.uid), Some(self.gid))?;
        }
        Ok(())
    }
}

/// Single-quotes `text` for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
