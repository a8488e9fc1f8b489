//! A job's directories as a tar stream, for the executors that copy them to where the job runs
//! and back: the Kubernetes executor (`runnel helper pack`/`unpack` in the pod, the same
//! functions on the runner's host, as `kubectl cp`) and the SSH executor (gzip'd, with the
//! remote host's own `tar` on the other end).
//!
//! An archive holds whole top-level directories (the project directory and its `.tmp`
//! sibling). Unpacking first removes each top-level directory the archive carries, so the
//! receiver ends up with exactly the sender's files: what a script deleted stays deleted.
//! Entries that would land outside the target directory are refused (`tar`'s `unpack_in`).

use std::io::{self, Read, Write};
use std::path::{Component, Path};

/// Writes a tar archive of the directories `entries` (`(directory, its name in the archive)`)
/// to `out` and returns `out`; directories that do not exist are left out.
pub fn pack<W: Write>(entries: &[(&Path, &str)], out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    for (dir, name) in entries {
        if dir.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
            builder.append_dir_all(name, dir)?;
        }
    }
    builder.into_inner()
}

/// Who should own what is unpacked (the build container's user, when it is not root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl std::str::FromStr for Owner {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (uid, gid) = text.split_once(':').unwrap_or((text, text));
        let parse = |id: &str| {
            id.parse::<u32>()
                .map_err(|_| format!("expected `uid[:gid]` with numeric ids, found `{text}`"))
        };
        Ok(Self {
            uid: parse(uid)?,
            gid: parse(gid)?,
        })
    }
}

/// How [`unpack`] treats an archive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unpack<'a> {
    /// Only entries under these top-level names are taken (others are skipped); all with `None`.
    pub only: Option<&'a [&'a str]>,
    /// With an owner, everything extracted is given to that user.
    pub owner: Option<Owner>,
}

/// Extracts the archive on `input` into `parent`, replacing each top-level directory it holds.
pub fn unpack(input: impl Read, parent: &Path, how: Unpack<'_>) -> io::Result<()> {
    std::fs::create_dir_all(parent)?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut replaced: Vec<std::ffi::OsString> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(Component::Normal(top)) = path.components().next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("archive entry `{}` is not a relative path", path.display()),
            ));
        };
        // Refused before anything is replaced: a hostile entry must not cost the copy here.
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("archive entry `{}` is outside the target", path.display()),
            ));
        }
        if how
            .only
            .is_some_and(|names| !names.iter().any(|name| top == *name))
        {
            continue;
        }
        if !replaced.iter().any(|done| done == top) {
            let existing = parent.join(top);
            match existing.symlink_metadata() {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&existing)?,
                Ok(_) => std::fs::remove_file(&existing)?,
                Err(_) => {}
            }
            replaced.push(top.to_owned());
        }
        if !entry.unpack_in(parent)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("archive entry `{}` is outside the target", path.display()),
            ));
        }
        if let Some(owner) = how.owner {
            std::os::unix::fs::lchown(parent.join(&path), Some(owner.uid), Some(owner.gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Owner, Unpack, pack, unpack};

    #[test]
    fn unpacking_mirrors_the_packed_directories() {
        let from = tempfile::tempdir().expect("tempdir");
        let to = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(from.path().join("p/sub")).expect("mkdir");
        std::fs::write(from.path().join("p/sub/a.txt"), "a").expect("write");
        std::fs::create_dir_all(from.path().join("p.tmp")).expect("mkdir");
        std::fs::write(from.path().join("p.tmp/VAR"), "v").expect("write");
        std::os::unix::fs::symlink("sub/a.txt", from.path().join("p/link")).expect("symlink");
        // A stale file on the receiving side disappears, an unrelated directory stays.
        std::fs::create_dir_all(to.path().join("p")).expect("mkdir");
        std::fs::write(to.path().join("p/stale"), "old").expect("write");
        std::fs::create_dir_all(to.path().join("other")).expect("mkdir");
        let mut archive = Vec::new();
        let dirs = ["p", "p.tmp", "missing"].map(|name| from.path().join(name));
        let entries: Vec<(&Path, &str)> = dirs
            .iter()
            .zip(["p", "p.tmp", "missing"])
            .map(|(dir, name)| (dir.as_path(), name))
            .collect();
        pack(&entries, &mut archive).expect("pack");
        unpack(archive.as_slice(), to.path(), Unpack::default()).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(to.path().join("p/sub/a.txt")).expect("a"),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(to.path().join("p.tmp/VAR")).expect("var"),
            "v"
        );
        assert_eq!(
            std::fs::read_link(to.path().join("p/link")).expect("link"),
            Path::new("sub/a.txt")
        );
        assert!(!to.path().join("p/stale").exists());
        assert!(to.path().join("other").is_dir());
    }

    #[test]
    fn entries_outside_the_target_are_refused() {
        let to = tempfile::tempdir().expect("tempdir");
        // The copy here survives the hostile archive.
        std::fs::create_dir_all(to.path().join("p")).expect("mkdir");
        std::fs::write(to.path().join("p/kept"), "kept").expect("write");
        let mut archive = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut archive);
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_cksum();
            // `append_data` refuses `..`; write the raw name as a hostile archive would.
            let name = b"p/../../escape";
            header.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
            header.set_cksum();
            builder.append(&header, &b"x"[..]).expect("append");
            builder.finish().expect("finish");
        }
        assert!(unpack(archive.as_slice(), to.path(), Unpack::default()).is_err());
        assert!(!to.path().parent().expect("parent").join("escape").exists());
        assert_eq!(
            std::fs::read_to_string(to.path().join("p/kept")).expect("kept"),
            "kept"
        );
    }

    #[test]
    fn only_the_named_directories_are_taken() {
        let from = tempfile::tempdir().expect("tempdir");
        let to = tempfile::tempdir().expect("tempdir");
        for name in ["p", "intruder"] {
            std::fs::create_dir_all(from.path().join(name)).expect("mkdir");
            std::fs::write(from.path().join(name).join("f"), name).expect("write");
        }
        let (p, intruder) = (from.path().join("p"), from.path().join("intruder"));
        let archive = pack(&[(&p, "p"), (&intruder, "intruder")], Vec::new()).expect("pack");
        let how = Unpack {
            only: Some(&["p", "p.tmp"]),
            owner: None,
        };
        unpack(archive.as_slice(), to.path(), how).expect("unpack");
        assert!(to.path().join("p/f").is_file());
        assert!(!to.path().join("intruder").exists());
    }

    #[test]
    fn owners_parse_as_uid_and_gid() {
        assert_eq!(
            "1000:1001".parse(),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            "1000".parse(),
            Ok(Owner {
                uid: 1000,
                gid: 1000
            })
        );
        assert!("me".parse::<Owner>().is_err());
    }
}
