//! Extracting cache and artifact archives (zip, and tar+zstd through [`crate::tarzstd`]) without
//! ever writing outside the target directory.
//!
//! GitLab: gitlab-runner extracts with `commands/helpers/archive/fastzip` (saracen/fastzip's
//! `Extractor`) and `archive/tarzstd/tarzstd_extractor.go`: a name that leaves the directory
//! fails the extraction; symlinks are recreated *as stored*, whatever their target (a Python
//! venv's `bin/python3 -> /usr/bin/python3` must survive a cache round trip), and are created
//! after every file and directory, so no entry of the archive is written through one of its own
//! symlinks. runnel keeps that behaviour and is stricter where gitlab-runner follows links:
//!
//! - the whole archive is checked before anything is written ([`check_plan`]); one bad entry
//!   refuses it all: an absolute name or `..`, an entry below a symlink of the archive, below an
//!   existing symlink of the target directory (unless the archive has a directory there, which
//!   then replaces the link), or below a file of the archive;
//! - writing never follows a symlink: parents are created component by component and a
//!   symlink met there is an error ([`Writer`]), a file or symlink entry first removes what is
//!   at its path (a link is removed, not followed) and files are created with `O_EXCL`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::archive::{ArchiveError, from_zip_time, io_err, relative_inside};

/// One checked entry of an archive: its position in the archive, where it goes, what it is.
pub(crate) struct Planned {
    pub(crate) index: usize,
    pub(crate) path: PathBuf,
    pub(crate) kind: EntryKind,
}

/// What an entry is.
pub(crate) enum EntryKind {
    Dir,
    /// A file with its permission bits.
    File(u32),
    /// A symlink with its target, kept as stored.
    Symlink(PathBuf),
}

pub(crate) fn hostile(archive: &Path, entry: &Path, reason: &'static str) -> ArchiveError {
    ArchiveError::Hostile {
        archive: archive.to_owned(),
        entry: entry.to_string_lossy().into_owned(),
        reason,
    }
}

/// The checks every entry name passes, whatever the format: relative, without `..`. Returns
/// where the entry goes, relative to the target directory.
pub(crate) fn checked_name(archive: &Path, name: &str) -> Result<PathBuf, ArchiveError> {
    if name.starts_with('/') || (name.contains('\\') && name.contains(':')) {
        return Err(hostile(archive, Path::new(name), "has an absolute path"));
    }
    match relative_inside(Path::new(""), name) {
        Some(path) if !name.split('/').any(|part| part == "..") => Ok(path),
        _ => Err(hostile(
            archive,
            Path::new(name),
            "points outside the target directory",
        )),
    }
}

/// Checks the whole plan before anything is written: only a directory may stand for the target
/// directory itself, and no entry lies below a symlink or a file of the archive, or below a
/// symlink already in `dest` that the archive does not replace by a directory. Symlink targets
/// are not checked: links are recreated as stored, and nothing is ever written through one.
pub(crate) fn check_plan(
    archive: &Path,
    dest: &Path,
    planned: &[Planned],
) -> Result<(), ArchiveError> {
    // The last entry of a name wins, as it does when the archive is written out in order.
    let kinds: HashMap<&Path, &EntryKind> = planned
        .iter()
        .map(|item| (item.path.as_path(), &item.kind))
        .collect();
    let mut checked: HashSet<&Path> = HashSet::new();
    for item in planned {
        if item.path.as_os_str().is_empty() && !matches!(item.kind, EntryKind::Dir) {
            return Err(hostile(
                archive,
                &item.path,
                "would replace the target directory",
            ));
        }
        for parent in item.path.ancestors().skip(1) {
            if parent.as_os_str().is_empty() || checked.contains(parent) {
                break;
            }
            let reason = match kinds.get(parent) {
                Some(EntryKind::Symlink(_)) => Some("would be written through a symlink"),
                Some(EntryKind::File(_)) => Some("would be written below a file"),
                Some(EntryKind::Dir) => None,
                None => fs::symlink_metadata(dest.join(parent))
                    .is_ok_and(|m| m.file_type().is_symlink())
                    .then_some("would be written through a symlink"),
            };
            if let Some(reason) = reason {
                return Err(hostile(archive, &item.path, reason));
            }
            checked.insert(parent);
        }
    }
    Ok(())
}

/// Writes checked entries below `dest` without following any symlink. Use it in three passes,
/// as gitlab-runner's extractors order them: [`Writer::new`] makes `dest` and every directory
/// of the plan, [`Writer::file`] writes each file, [`Writer::symlinks`] makes the links last.
pub(crate) struct Writer<'a> {
    dest: &'a Path,
    archive: &'a Path,
    /// Directories (relative) made or found to be real directories during this extraction.
    dirs: HashSet<PathBuf>,
}

impl<'a> Writer<'a> {
    /// Makes `dest`, the directories of `planned` (an existing symlink or file where the
    /// archive has a directory is replaced by the directory) and the parents of every other
    /// entry, so that files can then be written from several threads.
    pub(crate) fn new(
        archive: &'a Path,
        dest: &'a Path,
        planned: &[Planned],
    ) -> Result<Self, ArchiveError> {
        fs::create_dir_all(dest).map_err(io_err("create the directory", dest))?;
        let mut writer = Self {
            dest,
            archive,
            dirs: HashSet::new(),
        };
        let mut dirs: Vec<&Path> = planned
            .iter()
            .filter(|item| matches!(item.kind, EntryKind::Dir))
            .map(|item| item.path.as_path())
            .collect();
        // Parents sort before their children.
        dirs.sort_unstable();
        for dir in dirs {
            writer.make_dir(dir, true)?;
        }
        for item in planned {
            if let Some(parent) = item.path.parent() {
                writer.make_dir(parent, false)?;
            }
        }
        Ok(writer)
    }

    /// Makes the directory `rel` and its parents, each checked with `lstat`: a symlink or a
    /// file in the way is an error, or (`replace`, for `rel` itself) is removed first.
    fn make_dir(&mut self, rel: &Path, replace: bool) -> Result<(), ArchiveError> {
        if rel.as_os_str().is_empty() || self.dirs.contains(rel) {
            return Ok(());
        }
        if let Some(parent) = rel.parent() {
            self.make_dir(parent, false)?;
        }
        let full = self.dest.join(rel);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) if replace => {
                fs::remove_file(&full).map_err(io_err("remove", &full))?;
                fs::create_dir(&full).map_err(io_err("create the directory", &full))?;
            }
            Ok(_) => {
                return Err(hostile(
                    self.archive,
                    rel,
                    "would be written through a symlink or below a file",
                ));
            }
            Err(_) => match fs::create_dir(&full) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    return self.make_dir(rel, replace);
                }
                Err(err) => return Err(io_err("create the directory", &full)(err)),
            },
        }
        self.dirs.insert(rel.to_owned());
        Ok(())
    }

    /// Writes the file entry `item` with `content`; whatever is at its path (a symlink
    /// included) is removed first, never followed. Its parent was made by [`Writer::new`].
    pub(crate) fn file(
        &self,
        item: &Planned,
        content: &mut dyn io::Read,
        modified: Option<std::time::SystemTime>,
    ) -> Result<(), ArchiveError> {
        let EntryKind::File(mode) = item.kind else {
            return Ok(());
        };
        if let Some(parent) = item.path.parent()
            && !parent.as_os_str().is_empty()
            && !self.dirs.contains(parent)
        {
            return Err(hostile(self.archive, &item.path, "has no planned parent"));
        }
        let target = self.dest.join(&item.path);
        remove_existing(&target)?;
        let mode = if mode == 0 { 0o644 } else { mode };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&target)
            .map_err(io_err("create", &target))?;
        io::copy(content, &mut out).map_err(io_err("write", &target))?;
        if let Some(time) = modified {
            let _ = out.set_modified(time);
        }
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("set permissions of", &target))?;
        Ok(())
    }

    /// Makes every symlink of `planned`, with its target as stored.
    pub(crate) fn symlinks(&mut self, planned: &[Planned]) -> Result<(), ArchiveError> {
        for item in planned {
            let EntryKind::Symlink(link) = &item.kind else {
                continue;
            };
            if let Some(parent) = item.path.parent() {
                self.make_dir(parent, false)?;
            }
            let target = self.dest.join(&item.path);
            remove_existing(&target)?;
            self.dirs.remove(&item.path);
            symlink(link, &target).map_err(io_err("create the symlink", &target))?;
        }
        Ok(())
    }
}

/// Extracts the zip `archive` into `dest`. Every entry is checked first ([`checked_name`],
/// [`check_plan`]); one bad entry refuses the whole archive and nothing is written. Files are
/// inflated and written on every core, as fastzip's extractor does. Blocking.
pub(crate) fn extract_zip(archive: &Path, dest: &Path) -> Result<usize, ArchiveError> {
    let file = fs::File::open(archive).map_err(io_err("open", archive))?;
    let len = file.metadata().map_err(io_err("read", archive))?.len();
    let read_err = |source| ArchiveError::Read {
        archive: archive.to_owned(),
        source,
    };
    let reader = SharedFile {
        file: Arc::new(file),
        pos: 0,
        len,
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(read_err)?;
    let mut planned = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(read_err)?;
        let name = entry.name().map_err(read_err)?.into_owned();
        let path = checked_name(archive, &name)?;
        if entry.enclosed_name().is_none() {
            return Err(hostile(
                archive,
                Path::new(&name),
                "points outside the target directory",
            ));
        }
        let kind = if entry.is_symlink() {
            let mut target = String::new();
            io::Read::read_to_string(&mut entry, &mut target).map_err(io_err("read", archive))?;
            EntryKind::Symlink(PathBuf::from(target))
        } else if entry.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File(entry.unix_mode().unwrap_or(0o644) & 0o777)
        };
        planned.push(Planned { index, path, kind });
    }
    check_plan(archive, dest, &planned)?;
    let writer = Writer::new(archive, dest, &planned)?;
    let files: Vec<&Planned> = planned
        .iter()
        .filter(|item| matches!(item.kind, EntryKind::File(_)))
        .collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let write_files = |mut zip: zip::ZipArchive<SharedFile>| -> Result<(), ArchiveError> {
        loop {
            let start = next.fetch_add(FILES_PER_CLAIM, Ordering::Relaxed);
            if start >= files.len() || failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            for item in &files[start..(start + FILES_PER_CLAIM).min(files.len())] {
                let result = zip
                    .by_index(item.index)
                    .map_err(read_err)
                    .and_then(|mut entry| {
                        let modified = entry.last_modified().and_then(from_zip_time);
                        writer.file(item, &mut entry, modified)
                    });
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                    return result;
                }
            }
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(files.len().div_ceil(FILES_PER_CLAIM).max(1));
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                let zip = zip.clone();
                scope.spawn(|| write_files(zip))
            })
            .collect();
        let mut result = write_files(zip.clone());
        for helper in helpers {
            let joined = helper.join().unwrap_or_else(|_| {
                Err(ArchiveError::Io {
                    action: "extract",
                    path: archive.to_owned(),
                    source: io::Error::other("an extracting thread panicked"),
                })
            });
            result = result.and(joined);
        }
        result
    })?;
    let mut writer = writer;
    writer.symlinks(&planned)?;
    Ok(planned.len())
}

/// Files one extracting thread takes at a time.
const FILES_PER_CLAIM: usize = 32;

/// The archive file, read with `pread` at each reader's own position, so every thread can
/// read it through its own clone of the [`zip::ZipArchive`].
#[derive(Clone)]
struct SharedFile {
    file: Arc<fs::File>,
    pos: u64,
    len: u64,
}

impl io::Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read_at(buf, self.pos)?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl io::Seek for SharedFile {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let pos = match to {
            io::SeekFrom::Start(pos) => Some(pos),
            io::SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            io::SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = pos
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Removes a file, symlink or directory at `path`, so extraction never writes through a link.
pub(crate) fn remove_existing(path: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(io_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
