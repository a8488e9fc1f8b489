//! Writing zip archives on every core: entries are deflated in parallel, in batches, and the
//! batches are joined in order into one archive with the layout gitlab-runner's fastzip
//! archiver writes (one entry per file, directory and symlink, paths relative to the project,
//! Unix modes and modification times), so gitlab-runner reads runnel's caches and artifacts.
//!
//! GitLab: gitlab-runner `commands/helpers/archive/fastzip/zip_fastzip_archiver.go` deflates
//! with `runtime.NumCPU()` workers too (saracen/fastzip's `Archiver`, which stages compressed
//! files in a temporary directory). Here each worker writes a small zip of its batch into a
//! spooled buffer (memory up to [`SPOOL_MEMORY`], then a temporary file), and the main thread
//! copies each finished batch's entries into the archive without recompressing them
//! (`ZipWriter::merge_archive`). At most [`IN_FLIGHT_PER_WORKER`] batches per worker wait at
//! once, so memory stays bounded whatever the size of the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use tempfile::SpooledTempFile;
use zip::write::SimpleFileOptions;

use crate::archive::{ArchiveError, io_err, to_zip_time};
use crate::settings::CompressionLevel;

/// A batch ends once its files hold this many bytes (a larger file is a batch of its own).
const BATCH_BYTES: u64 = 4 << 20;
/// … or once it has this many entries.
const BATCH_ENTRIES: usize = 256;
/// A batch's compressed bytes stay in memory up to this size, then go to a temporary file.
const SPOOL_MEMORY: usize = 16 << 20;
/// Batches handed out per worker and not yet written into the archive.
const IN_FLIGHT_PER_WORKER: usize = 2;
/// Write buffer of the archive file.
const OUT_BUFFER: usize = 1 << 20;

/// One entry to archive: its relative path and what `lstat` said of it.
struct Item {
    rel: PathBuf,
    meta: fs::Metadata,
}

/// A finished batch: its entries, compressed, as a small zip archive.
type Done = Result<zip::ZipArchive<SpooledTempFile>, ArchiveError>;

/// Writes `entries` (relative to `root`) into a new zip archive at `archive`, deflated at
/// `level` (stored at `fastest`) on every core. Entries that vanished since they were chosen
/// are skipped. Returns the number of entries written. Blocking.
pub(crate) fn write_zip(
    root: &Path,
    entries: &BTreeSet<PathBuf>,
    archive: &Path,
    level: CompressionLevel,
) -> Result<u64, ArchiveError> {
    if let Some(parent) = archive.parent() {
        fs::create_dir_all(parent).map_err(io_err("create the directory", parent))?;
    }
    let batches = batches(root, entries);
    let count: usize = batches.iter().map(Vec::len).sum();
    let file = fs::File::create(archive).map_err(io_err("create", archive))?;
    let mut zip = zip::ZipWriter::new(io::BufWriter::with_capacity(OUT_BUFFER, file));
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let write_err = |source| ArchiveError::Write {
        archive: archive.to_owned(),
        source,
    };
    let (job_tx, job_rx) = mpsc::channel::<(usize, Vec<Item>)>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Done)>();
    std::thread::scope(|scope| -> Result<(), ArchiveError> {
        // Moved in, so that dropping it below lets the workers end before the scope joins them.
        let job_tx = job_tx;
        for _ in 0..workers {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next batch.
                    let next = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, batch))) = next else {
                        return;
                    };
                    if done_tx.send((seq, compress(root, &batch, level))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let total = batches.len();
        let mut queue = batches.into_iter().enumerate();
        let mut sent = 0;
        let mut finished: BTreeMap<usize, zip::ZipArchive<SpooledTempFile>> = BTreeMap::new();
        let mut next = 0;
        let result = (|| {
            while next < total {
                while sent < total && sent - next < workers * IN_FLIGHT_PER_WORKER {
                    if let Some(job) = queue.next() {
                        // Workers only stop once this sender is dropped.
                        let _ = job_tx.send(job);
                    }
                    sent += 1;
                }
                let Ok((seq, done)) = done_rx.recv() else {
                    return Err(ArchiveError::Io {
                        action: "compress the entries of",
                        path: archive.to_owned(),
                        source: io::Error::other("the compressing threads stopped"),
                    });
                };
                finished.insert(seq, done?);
                while let Some(batch) = finished.remove(&next) {
                    zip.merge_archive(batch).map_err(write_err)?;
                    next += 1;
                }
            }
            Ok(())
        })();
        drop(job_tx);
        result
    })?;
    let mut out = zip.finish().map_err(write_err)?;
    out.flush().map_err(io_err("write", archive))?;
    Ok(count as u64)
}

/// The entries that still exist, with their metadata, cut into batches in order.
fn batches(root: &Path, entries: &BTreeSet<PathBuf>) -> Vec<Vec<Item>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for rel in entries {
        let Ok(meta) = fs::symlink_metadata(root.join(rel)) else {
            continue;
        };
        if meta.is_file() {
            bytes += meta.len();
        }
        batch.push(Item {
            rel: rel.clone(),
            meta,
        });
        if bytes >= BATCH_BYTES || batch.len() >= BATCH_ENTRIES {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Compresses `batch` into a small zip archive in a spooled buffer.
fn compress(root: &Path, batch: &[Item], level: CompressionLevel) -> Done {
    let spool_err = |source| ArchiveError::Io {
        action: "buffer the archive of",
        path: root.to_owned(),
        source,
    };
    let zip_err = |source: zip::result::ZipError| spool_err(io::Error::other(source));
    let mut zip = zip::ZipWriter::new(SpooledTempFile::new(SPOOL_MEMORY));
    let method = match level.deflate() {
        Some(_) => zip::CompressionMethod::Deflated,
        None => zip::CompressionMethod::Stored,
    };
    for item in batch {
        let full = root.join(&item.rel);
        let name = item.rel.to_string_lossy().into_owned();
        let mut options = SimpleFileOptions::default()
            .compression_method(method)
            .compression_level(level.deflate())
            .unix_permissions(item.meta.permissions().mode() & 0o7777)
            .large_file(item.meta.len() >= u64::from(u32::MAX));
        if let Some(time) = item.meta.modified().ok().and_then(to_zip_time) {
            options = options.last_modified_time(time);
        }
        let kind = item.meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&full).map_err(io_err("read the symlink", &full))?;
            zip.add_symlink(name, target.to_string_lossy(), options)
                .map_err(zip_err)?;
        } else if kind.is_dir() {
            zip.add_directory(format!("{name}/"), options)
                .map_err(zip_err)?;
        } else {
            zip.start_file(name, options).map_err(zip_err)?;
            let mut source = fs::File::open(&full).map_err(io_err("read", &full))?;
            io::copy(&mut source, &mut zip).map_err(io_err("archive", &full))?;
        }
    }
    let mut spool = zip.finish().map_err(zip_err)?;
    spool.rewind().map_err(spool_err)?;
    zip::ZipArchive::new(spool).map_err(zip_err)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    use super::write_zip;
    use crate::settings::CompressionLevel;

    #[test]
    fn many_batches_join_into_one_archive_in_order_with_modes_and_links() {
        let src = tempfile::tempdir().expect("temporary directory");
        let mut entries = BTreeSet::new();
        fs::create_dir(src.path().join("venv")).expect("mkdir");
        entries.insert(PathBuf::from("venv"));
        // More entries than one batch holds, and one file larger than a batch.
        for i in 0..600 {
            let rel = PathBuf::from(format!("venv/f{i:04}.py"));
            fs::write(src.path().join(&rel), format!("value = {i}\n")).expect("write");
            entries.insert(rel);
        }
        let big: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
        fs::write(src.path().join("venv/big.so"), &big).expect("write");
        fs::set_permissions(
            src.path().join("venv/big.so"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        entries.insert(PathBuf::from("venv/big.so"));
        symlink("/usr/bin/python3", src.path().join("venv/python3")).expect("symlink");
        entries.insert(PathBuf::from("venv/python3"));
        entries.insert(PathBuf::from("venv/gone.txt"));

        let out = tempfile::tempdir().expect("temporary directory");
        let archive = out.path().join("cache.zip");
        for level in [CompressionLevel::Default, CompressionLevel::Fastest] {
            let written =
                write_zip(src.path(), &entries, &archive, level).expect("archive written");
            assert_eq!(written, 603, "the vanished file is skipped");
            let mut zip =
                zip::ZipArchive::new(fs::File::open(&archive).expect("open")).expect("a zip");
            let names: Vec<String> = zip
                .file_names()
                .map(|n| n.expect("a name").into_owned())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names.len(), 603);
            assert_eq!(names[0], "venv/");
            assert_eq!(names, sorted, "in the order of the entries");
            let mut file = zip.by_name("venv/big.so").expect("big.so");
            assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o755));
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut data).expect("read");
            assert!(data == big, "big.so round-trips");
            drop(file);
            assert!(zip.by_name("venv/python3").expect("link").is_symlink());
            let dest = out.path().join("dest");
            crate::extract::extract_zip(&archive, &dest).expect("extracted");
            assert_eq!(
                fs::read_to_string(dest.join("venv/f0599.py")).expect("read"),
                "value = 599\n"
            );
            assert_eq!(
                fs::read_link(dest.join("venv/python3")).expect("link"),
                PathBuf::from("/usr/bin/python3")
            );
            fs::remove_dir_all(&dest).expect("clean");
        }
    }
}
