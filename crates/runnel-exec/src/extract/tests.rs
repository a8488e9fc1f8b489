//! Hostile zip archives (the tar+zstd ones are in `tarzstd.rs`), and the symlinks a real venv
//! holds.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use super::extract_zip;
use crate::archive::ArchiveError;

/// One entry of a test archive: a file with its content, a directory, or a symlink.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

/// Writes `entries` in order as a zip archive, as an attacker could.
fn zip_of(dir: &Path, entries: &[Entry<'_>]) -> PathBuf {
    let archive = dir.join("cache.zip");
    let mut zip = zip::ZipWriter::new(fs::File::create(&archive).expect("create the archive"));
    let options = SimpleFileOptions::default().unix_permissions(0o644);
    for entry in entries {
        match entry {
            Entry::File(name, data) => {
                zip.start_file(*name, options).expect("file");
                zip.write_all(data).expect("write");
            }
            Entry::Dir(name) => zip.add_directory(*name, options).expect("directory"),
            Entry::Link(name, target) => zip.add_symlink(*name, *target, options).expect("link"),
        }
    }
    zip.finish().expect("finish");
    archive
}

/// A target directory with one file of the job in it, and a sibling `outside` with a secret.
fn target(out: &Path) -> PathBuf {
    let dest = out.join("dest");
    fs::create_dir_all(&dest).expect("mkdir");
    fs::create_dir_all(out.join("outside")).expect("mkdir");
    fs::write(dest.join("kept.txt"), "kept\n").expect("write");
    fs::write(out.join("outside/secret"), "secret\n").expect("write");
    dest
}

fn refused(archive: &Path, dest: &Path) -> String {
    match extract_zip(archive, dest) {
        Err(err @ ArchiveError::Hostile { .. }) => err.to_string(),
        other => panic!("not refused as hostile: {other:?}"),
    }
}

/// The names below `dir`, sorted: what an extraction left there.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .expect("below")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn zip_symlinks_are_recreated_as_stored_whatever_their_target() {
    // A venv's interpreter points outside the project; `here -> .` then `escape ->
    // here/../outside` only names a place; nothing is written through either.
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    let archive = zip_of(
        out.path(),
        &[
            Entry::Dir("venv/"),
            Entry::Dir("venv/bin/"),
            Entry::Link("venv/bin/python3", "/usr/bin/python3"),
            Entry::Link("venv/bin/python", "python3"),
            Entry::Link("venv/lib64", "lib"),
            Entry::Link("up", "../outside/secret"),
            Entry::Link("here", "."),
            Entry::Link("escape", "here/../outside"),
        ],
    );
    assert_eq!(extract_zip(&archive, &dest).expect("extracted"), 8);
    for (link, target) in [
        ("venv/bin/python3", "/usr/bin/python3"),
        ("venv/bin/python", "python3"),
        ("venv/lib64", "lib"),
        ("up", "../outside/secret"),
        ("here", "."),
        ("escape", "here/../outside"),
    ] {
        assert_eq!(
            fs::read_link(dest.join(link)).expect("a symlink"),
            PathBuf::from(target),
            "{link}"
        );
    }
    assert_eq!(listing(&out.path().join("outside")), ["secret"]);
}

#[test]
fn a_zip_entry_below_a_symlink_of_the_archive_refuses_it_whatever_the_order() {
    for link_first in [true, false] {
        let out = tempfile::tempdir().expect("temporary directory");
        let dest = target(out.path());
        let outside = out.path().join("outside");
        let link = Entry::Link("link", outside.to_str().expect("utf-8"));
        let file = Entry::File("link/evil.txt", b"bad");
        let entries = if link_first {
            [link, file]
        } else {
            [file, link]
        };
        let archive = zip_of(out.path(), &entries);
        assert!(refused(&archive, &dest).contains("through a symlink"));
        assert_eq!(listing(&outside), ["secret"]);
        assert_eq!(listing(&dest), ["kept.txt"], "nothing is written");
    }
}

#[test]
fn a_zip_entry_below_an_existing_symlink_refuses_it() {
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    symlink(out.path().join("outside"), dest.join("old")).expect("symlink");
    for name in ["old/evil.txt", "old/sub/evil.txt"] {
        let archive = zip_of(out.path(), &[Entry::File(name, b"bad")]);
        assert!(
            refused(&archive, &dest).contains("through a symlink"),
            "{name}"
        );
    }
    // A symlink entry below it neither.
    let archive = zip_of(out.path(), &[Entry::Link("old/link", "/etc/passwd")]);
    assert!(refused(&archive, &dest).contains("through a symlink"));
    assert_eq!(listing(&out.path().join("outside")), ["secret"]);
}

#[test]
fn a_zip_file_or_link_landing_on_an_existing_symlink_replaces_the_link() {
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    let secret = out.path().join("outside/secret");
    symlink(&secret, dest.join("file")).expect("symlink");
    symlink(&secret, dest.join("link")).expect("symlink");
    let archive = zip_of(
        out.path(),
        &[Entry::File("file", b"mine\n"), Entry::Link("link", "file")],
    );
    extract_zip(&archive, &dest).expect("extracted");
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
fn a_zip_directory_replaces_an_existing_symlink_instead_of_following_it() {
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    symlink(out.path().join("outside"), dest.join("venv")).expect("symlink");
    let archive = zip_of(
        out.path(),
        &[
            Entry::Dir("venv/"),
            Entry::File("venv/pyvenv.cfg", b"home = /usr/bin\n"),
        ],
    );
    extract_zip(&archive, &dest).expect("extracted");
    assert!(
        fs::symlink_metadata(dest.join("venv"))
            .expect("exists")
            .is_dir()
    );
    assert!(dest.join("venv/pyvenv.cfg").is_file());
    assert_eq!(listing(&out.path().join("outside")), ["secret"]);
}

#[test]
fn a_zip_entry_below_a_file_of_the_archive_refuses_it() {
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    let archive = zip_of(
        out.path(),
        &[Entry::File("a", b"file"), Entry::File("a/b", b"below")],
    );
    assert!(refused(&archive, &dest).contains("below a file"));
    assert_eq!(listing(&dest), ["kept.txt"]);
}

#[test]
fn a_zip_entry_with_an_absolute_or_parent_name_refuses_it() {
    let out = tempfile::tempdir().expect("temporary directory");
    let dest = target(out.path());
    for (name, reason) in [
        ("/tmp/evil.txt", "absolute path"),
        ("../outside/evil.txt", "outside the target"),
        ("sub/../../outside/evil.txt", "outside the target"),
        ("C:\\evil.txt", "absolute path"),
    ] {
        let archive = zip_of(out.path(), &[Entry::File(name, b"bad")]);
        assert!(refused(&archive, &dest).contains(reason), "{name}");
    }
    assert_eq!(listing(&out.path().join("outside")), ["secret"]);
    assert_eq!(listing(&dest), ["kept.txt"]);
}
