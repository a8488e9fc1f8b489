//! The `tarzstd` cache format: a tar stream compressed with Zstandard, and the extraction that
//! tells it from a zip archive by its first bytes.
//!
//! GitLab: gitlab-runner `commands/helpers/archive/tarzstd` (entries sorted by name, directories
//! with a trailing `/`, symlinks as links, sockets and devices skipped) and
//! `commands/helpers/artifacts_downloader.go` `openArchive` (a file starting with the zstd magic
//! is tar+zstd, anything else zip; the cache file keeps the name `cache.zip` whatever its format).
//! As for zip, one entry that would land outside the target directory refuses the whole archive
//! before anything is written.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveError};
use crate::settings::CompressionLevel;

/// The four bytes every Zstandard frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_owned();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}

/// Whether `archive` starts with the Zstandard magic.
fn is_zstd(archive: &Path) -> Result<bool, ArchiveError> {
    let mut magic = [0u8; 4];
    let mut file = fs::File::open(archive).map_err(io_err("open", archive))?;
    let read = file.read(&mut magic).map_err(io_err("read", archive))?;
    Ok(read == 4 && magic == ZSTD_MAGIC)
}

/// Extracts a cache or artifact archive in either format into `dest`. Blocking.
pub(crate) fn extract(archive: &Path, dest: &Path) -> Result<usize, ArchiveError> {
    if is_zstd(archive)? {
        extract_tar_zstd(archive, dest)
    } else {
        archive::extract_zip(archive, dest)
    }
}

/// Writes `entries` (relative to `root`) as a tar+zstd archive at `archive`. Blocking.
pub(crate) fn write_tar_zstd(
    root: &Path,
    entries: &BTreeSet<PathBuf>,
    archive: &Path,
    level: CompressionLevel,
) -> Result<u64, ArchiveError> {
    if let Some(parent) = archive.parent() {
        fs::create_dir_all(parent).map_err(io_err("create the directory", parent))?;
    }
    let file = fs::File::create(archive).map_err(io_err("create", archive))?;
    let encoder = zstd::Encoder::new(io::BufWriter::new(file), level.zstd())
        .map_err(io_err("write", archive))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let mut count = 0;
    for rel in entries {
        let full = root.join(rel);
        let Ok(meta) = fs::symlink_metadata(&full) else {
            continue;
        };
        let kind = meta.file_type();
        let mut name = rel.clone();
        if kind.is_dir() {
            name.push("");
        } else if !kind.is_file() && !kind.is_symlink() {
            continue;
        }
        tar.append_path_with_name(&full, &name)
            .map_err(io_err("archive", &full))?;
        count += 1;
    }
    let encoder = tar.into_inner().map_err(io_err("write", archive))?;
    let mut out = encoder.finish().map_err(io_err("write", archive))?;
    out.flush().map_err(io_err("write", archive))?;
    Ok(count)
}

fn open_tar(archive: &Path) -> Result<tar::Archive<impl io::Read>, ArchiveError> {
    let file = fs::File::open(archive).map_err(io_err("open", archive))?;
    let decoder = zstd::Decoder::new(io::BufReader::new(file))
        .map_err(io_err("read the archive", archive))?;
    Ok(tar::Archive::new(decoder))
}

enum Kind {
    Dir,
    File(u32),
    Symlink(PathBuf),
}

/// Extracts a tar+zstd archive: every entry is checked first (no absolute names, no `..`, no
/// symlink pointing outside `dest`, nothing written through a symlink), then written. Blocking.
pub(crate) fn extract_tar_zstd(archive: &Path, dest: &Path) -> Result<usize, ArchiveError> {
    let read_err = io_err("read the archive", archive);
    let hostile = |entry: &str, reason| ArchiveError::Hostile {
        archive: archive.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let mut planned: Vec<(PathBuf, Kind)> = Vec::new();
    let mut symlinks = BTreeSet::new();
    let mut tar = open_tar(archive)?;
    let entries = tar.entries().map_err(read_err)?;
    for entry in entries {
        let entry = entry.map_err(io_err("read the archive", archive))?;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        if name.starts_with('/') {
            return Err(hostile(&name, "has an absolute path"));
        }
        let Some(path) = archive::relative_inside(Path::new(""), &name) else {
            return Err(hostile(&name, "points outside the target directory"));
        };
        if name.split('/').any(|part| part == "..") {
            return Err(hostile(&name, "points outside the target directory"));
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io_err("read the archive", archive))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let base = path.parent().unwrap_or(Path::new(""));
                let joined = base.join(&target);
                if target.is_absolute()
                    || archive::relative_inside(Path::new(""), &joined.to_string_lossy()).is_none()
                {
                    return Err(hostile(
                        &name,
                        "is a symlink pointing outside the target directory",
                    ));
                }
                symlinks.insert(path.clone());
                Kind::Symlink(target)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                Kind::File(header.mode().unwrap_or(0o644) & 0o777)
            }
            // Hard links, devices, fifos: gitlab-runner skips what is not a file, directory or
            // symlink.
            _ => continue,
        };
        planned.push((path, kind));
    }
    for (path, _) in &planned {
        for ancestor in path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
        {
            let through_link = symlinks.contains(ancestor)
                || fs::symlink_metadata(dest.join(ancestor))
                    .is_ok_and(|m| m.file_type().is_symlink());
            if through_link {
                return Err(hostile(
                    &path.to_string_lossy(),
                    "would be written through a symlink",
                ));
            }
        }
    }
    write_planned(archive, dest, &planned)?;
    Ok(planned.len())
}

/// The second pass: reads the archive again and writes the checked entries.
fn write_planned(
    archive: &Path,
    dest: &Path,
    planned: &[(PathBuf, Kind)],
) -> Result<(), ArchiveError> {
    let mut tar = open_tar(archive)?;
    let entries = tar.entries().map_err(io_err("read the archive", archive))?;
    let mut planned = planned.iter().peekable();
    for entry in entries {
        let mut entry = entry.map_err(io_err("read the archive", archive))?;
        let Some(path) =
            archive::relative_inside(Path::new(""), &String::from_utf8_lossy(&entry.path_bytes()))
        else {
            continue;
        };
        let Some((planned_path, kind)) = planned.next_if(|(p, _)| *p == path) else {
            continue;
        };
        let target = dest.join(planned_path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create the directory", parent))?;
        }
        match kind {
            Kind::Dir => {
                fs::create_dir_all(&target).map_err(io_err("create the directory", &target))?
            }
            Kind::Symlink(link) => {
                archive::remove_existing(&target)?;
                symlink(link, &target).map_err(io_err("create the symlink", &target))?;
            }
            Kind::File(mode) => {
                archive::remove_existing(&target)?;
                let mut out = fs::File::create(&target).map_err(io_err("create", &target))?;
                io::copy(&mut entry, &mut out).map_err(io_err("write", &target))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = out.set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
                    );
                }
                let mode = if *mode == 0 { 0o644 } else { *mode };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err("set permissions of", &target))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    use super::{extract, write_tar_zstd};
    use crate::archive::{self, ArchiveError};
    use crate::settings::CompressionLevel;

    fn tree() -> (tempfile::TempDir, BTreeSet<PathBuf>) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        fs::create_dir_all(root.join("vendor/lib")).expect("mkdir");
        fs::write(root.join("vendor/lib/a.txt"), "alpha\n").expect("write");
        fs::write(root.join("vendor/b.txt"), "beta\n").expect("write");
        symlink("lib/a.txt", root.join("vendor/link")).expect("symlink");
        let entries = [
            "vendor",
            "vendor/lib",
            "vendor/lib/a.txt",
            "vendor/b.txt",
            "vendor/link",
        ]
        .map(PathBuf::from)
        .into_iter()
        .collect();
        (dir, entries)
    }

    #[test]
    fn a_tar_zstd_archive_round_trips_files_directories_and_symlinks() {
        let (src, entries) = tree();
        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("cache.zip");
        let written = write_tar_zstd(src.path(), &entries, &archive, CompressionLevel::Slowest)
            .expect("archive written");
        assert_eq!(written, 5);
        assert_eq!(
            fs::read(&archive).expect("read")[..4],
            [0x28, 0xb5, 0x2f, 0xfd]
        );
        let dest = out.path().join("dest");
        assert_eq!(extract(&archive, &dest).expect("extracted"), 5);
        assert_eq!(
            fs::read_to_string(dest.join("vendor/lib/a.txt")).expect("read"),
            "alpha\n"
        );
        assert_eq!(
            fs::read_link(dest.join("vendor/link")).expect("a symlink"),
            PathBuf::from("lib/a.txt")
        );
    }

    #[test]
    fn extraction_still_reads_zip_archives() {
        let (src, entries) = tree();
        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("cache.zip");
        archive::write_zip(src.path(), &entries, &archive, CompressionLevel::Fastest)
            .expect("zip written");
        let dest = out.path().join("dest");
        assert_eq!(extract(&archive, &dest).expect("extracted"), 5);
        assert_eq!(
            fs::read_to_string(dest.join("vendor/b.txt")).expect("read"),
            "beta\n"
        );
    }

    #[test]
    fn a_tar_entry_leaving_the_target_refuses_the_whole_archive() {
        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("evil.tar.zst");
        let file = fs::File::create(&archive).expect("create");
        let encoder = zstd::Encoder::new(file, 3).expect("encoder").auto_finish();
        let mut tar = tar::Builder::new(encoder);
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`, so write the raw name as an attacker would.
        header.as_old_mut().name[..11].copy_from_slice(b"../evil.txt");
        header.set_cksum();
        tar.append(&header, &b"bad"[..]).expect("append");
        drop(tar.into_inner().expect("finish"));
        let dest = out.path().join("dest");
        let err = extract(&archive, &dest).expect_err("refused");
        assert!(matches!(err, ArchiveError::Hostile { .. }), "{err}");
        assert!(!out.path().join("evil.txt").exists());
    }

    #[test]
    fn a_corrupt_zstd_stream_is_an_error() {
        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("cache.zip");
        fs::write(&archive, [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4]).expect("write");
        assert!(extract(&archive, &out.path().join("dest")).is_err());
    }
}
