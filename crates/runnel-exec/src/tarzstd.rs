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
use std::path::{Path, PathBuf};

use crate::archive::ArchiveError;
use crate::extract::{self, EntryKind, Planned};
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
        extract::extract_zip(archive, dest)
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

/// Extracts a tar+zstd archive: every entry is checked first, as a zip's are
/// ([`extract::checked_name`], [`extract::check_plan`]), then written in the order of
/// [`extract::Writer`] (directories, files, symlinks last). Hard links, devices and
/// fifos are skipped. Blocking.
pub(crate) fn extract_tar_zstd(archive: &Path, dest: &Path) -> Result<usize, ArchiveError> {
    let read_err = || io_err("read the archive", archive);
    let mut planned = Vec::new();
    let mut tar = open_tar(archive)?;
    for (index, entry) in tar.entries().map_err(read_err())?.enumerate() {
        let entry = entry.map_err(read_err())?;
        let path = extract::checked_name(archive, &String::from_utf8_lossy(&entry.path_bytes()))?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(
                entry
                    .link_name()
                    .map_err(read_err())?
                    .map(|target| target.into_owned())
                    .unwrap_or_default(),
            ),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                EntryKind::File(header.mode().unwrap_or(0o644) & 0o777)
            }
            // Hard links, devices, fifos: gitlab-runner skips what is not a file, directory or
            // symlink.
            _ => continue,
        };
        planned.push(Planned { index, path, kind });
    }
    extract::check_plan(archive, dest, &planned)?;
    let mut writer = extract::Writer::new(archive, dest, &planned)?;
    // The second pass reads the archive again and writes the checked files, matched by their
    // position in it.
    let mut tar = open_tar(archive)?;
    let mut todo = planned
        .iter()
        .filter(|item| matches!(item.kind, EntryKind::File(_)))
        .peekable();
    for (index, entry) in tar.entries().map_err(read_err())?.enumerate() {
        if todo.peek().is_none() {
            break;
        }
        let Some(item) = todo.next_if(|item| item.index == index) else {
            continue;
        };
        let mut entry = entry.map_err(read_err())?;
        let modified = entry
            .header()
            .mtime()
            .ok()
            .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        writer.file(item, &mut entry, modified)?;
    }
    writer.symlinks(&planned)?;
    Ok(planned.len())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    use super::{extract, write_tar_zstd};
    use crate::archive::ArchiveError;
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
        crate::zip_write::write_zip(src.path(), &entries, &archive, CompressionLevel::Fastest)
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

    /// One raw entry of a hostile archive: name, type, link target, content.
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

    /// Writes `entries` as a tar+zstd archive the way an attacker would: names and link
    /// targets go into the header as they are (the builder would refuse `..` and `/`).
    fn hostile_archive(dir: &Path, entries: &[RawEntry<'_>]) -> PathBuf {
        let archive = dir.join("cache.zip");
        let file = fs::File::create(&archive).expect("create");
        let encoder = zstd::Encoder::new(file, 3).expect("encoder").auto_finish();
        let mut tar = tar::Builder::new(encoder);
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(*kind);
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            tar.append(&header, *data).expect("append");
        }
        drop(tar.into_inner().expect("finish"));
        archive
    }

    /// A target directory with one file of the job in it, and a sibling outside it.
    fn target(out: &Path) -> PathBuf {
        let dest = out.join("dest");
        fs::create_dir_all(&dest).expect("mkdir");
        fs::create_dir_all(out.join("outside")).expect("mkdir");
        fs::write(dest.join("kept.txt"), "kept\n").expect("write");
        dest
    }

    fn refused(archive: &Path, dest: &Path) -> String {
        match extract(archive, dest) {
            Err(err @ ArchiveError::Hostile { .. }) => err.to_string(),
            other => panic!("not refused as hostile: {other:?}"),
        }
    }

    #[test]
    fn a_tar_entry_with_an_absolute_name_refuses_the_archive() {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        let evil = out.path().join("outside/evil.txt");
        let name = evil.to_str().expect("utf-8");
        let archive = hostile_archive(out.path(), &[(name, Regular, "", b"bad")]);
        assert!(refused(&archive, &dest).contains("absolute path"));
        assert!(!evil.exists());
    }

    #[test]
    fn tar_symlinks_are_recreated_as_stored_whatever_their_target() {
        // gitlab-runner's tarzstd extractor makes every symlink as stored, after the files: a
        // venv's `bin/python3 -> /usr/bin/python3` must survive. `here -> .` then `escape ->
        // here/../outside` only names a place outside; nothing is written through it.
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        let links = [
            ("venv/bin/python3", "/usr/bin/python3"),
            ("out", "../outside"),
            ("deep", "sub/../../outside"),
            ("here", "."),
            ("escape", "here/../outside"),
        ];
        let entries: Vec<RawEntry<'_>> = links
            .iter()
            .map(|(name, link)| (*name, Symlink, *link, &b""[..]))
            .collect();
        let archive = hostile_archive(out.path(), &entries);
        assert_eq!(extract(&archive, &dest).expect("extracted"), links.len());
        for (name, link) in links {
            assert_eq!(
                fs::read_link(dest.join(name)).expect("a symlink"),
                PathBuf::from(link),
                "{name}"
            );
        }
        assert_eq!(
            fs::read_dir(out.path().join("outside"))
                .expect("read")
                .count(),
            0
        );
    }

    #[test]
    fn a_tar_file_or_link_landing_on_an_existing_symlink_replaces_the_link() {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        let secret = out.path().join("outside/secret");
        fs::write(&secret, "secret\n").expect("write");
        symlink(&secret, dest.join("file")).expect("symlink");
        symlink(&secret, dest.join("link")).expect("symlink");
        let archive = hostile_archive(
            out.path(),
            &[
                ("file", Regular, "", b"mine\n"),
                ("link", Symlink, "file", b""),
            ],
        );
        assert_eq!(extract(&archive, &dest).expect("extracted"), 2);
        assert!(
            fs::symlink_metadata(dest.join("file"))
                .expect("exists")
                .is_file()
        );
        assert_eq!(
            fs::read_to_string(dest.join("file")).expect("read"),
            "mine\n"
        );
        assert_eq!(
            fs::read_link(dest.join("link")).expect("link"),
            PathBuf::from("file")
        );
        assert_eq!(fs::read_to_string(&secret).expect("read"), "secret\n");
    }

    #[test]
    fn a_tar_directory_replaces_an_existing_symlink_instead_of_following_it() {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        symlink(out.path().join("outside"), dest.join("venv")).expect("symlink");
        let archive = hostile_archive(
            out.path(),
            &[
                ("venv/", Directory, "", b""),
                ("venv/pyvenv.cfg", Regular, "", b"home\n"),
            ],
        );
        extract(&archive, &dest).expect("extracted");
        assert!(
            fs::symlink_metadata(dest.join("venv"))
                .expect("exists")
                .is_dir()
        );
        assert!(dest.join("venv/pyvenv.cfg").is_file());
        assert_eq!(
            fs::read_dir(out.path().join("outside"))
                .expect("read")
                .count(),
            0
        );
    }

    #[test]
    fn a_tar_entry_below_a_symlink_refuses_the_archive() {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        let archive = hostile_archive(
            out.path(),
            &[
                ("sub", Directory, "", b""),
                ("link", Symlink, "sub", b""),
                ("link/x", Regular, "", b"x"),
            ],
        );
        assert!(refused(&archive, &dest).contains("through a symlink"));
        // The file before the link: refused too (the whole archive is checked first).
        let archive = hostile_archive(
            out.path(),
            &[
                ("link/x", Regular, "", b"x"),
                ("link", Symlink, "/tmp", b""),
            ],
        );
        assert!(refused(&archive, &dest).contains("through a symlink"));
        // A symlink already in the target directory is not written through either.
        symlink(out.path().join("outside"), dest.join("old")).expect("symlink");
        let archive = hostile_archive(out.path(), &[("old/evil.txt", Regular, "", b"bad")]);
        assert!(refused(&archive, &dest).contains("through a symlink"));
        assert!(!out.path().join("outside/evil.txt").exists());
    }

    #[test]
    fn a_tar_file_named_for_the_target_directory_refuses_the_archive() {
        for name in [".", "./"] {
            let out = tempfile::tempdir().expect("temporary directory");
            let dest = target(out.path());
            let archive = hostile_archive(out.path(), &[(name, Regular, "", b"bad")]);
            assert!(
                refused(&archive, &dest).contains("replace the target"),
                "{name}"
            );
            assert!(dest.join("kept.txt").exists(), "{name}");
        }
    }

    #[test]
    fn tar_hard_links_are_skipped_and_the_file_of_the_same_name_is_written() {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        fs::write(out.path().join("outside/secret"), "secret\n").expect("write");
        let secret = out.path().join("outside/secret");
        let archive = hostile_archive(
            out.path(),
            &[
                ("stolen", Link, secret.to_str().expect("utf-8"), b""),
                ("file", Link, "../outside/secret", b""),
                ("file", Regular, "", b"mine\n"),
            ],
        );
        assert_eq!(extract(&archive, &dest).expect("extracted"), 1);
        assert!(fs::symlink_metadata(dest.join("stolen")).is_err());
        assert_eq!(
            fs::read_to_string(dest.join("file")).expect("read"),
            "mine\n"
        );
        assert_eq!(
            fs::read_to_string(out.path().join("outside/secret")).expect("read"),
            "secret\n"
        );
    }

    #[test]
    fn a_corrupt_zstd_stream_is_an_error() {
        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("cache.zip");
        fs::write(&archive, [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4]).expect("write");
        assert!(extract(&archive, &out.path().join("dest")).is_err());
    }
}
