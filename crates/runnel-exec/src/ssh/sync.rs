//! Keeps the remote copy of a job's project and temporary directories in step with this
//! host's: gzip'd tar streams over SSH channels (`tar` on the remote end, the `tar` crate
//! here), so the remote host needs nothing but `sh`, `tar` and `gzip`.
//!
//! Before a stage the local directories are sent when they changed since the remote copy was
//! last made from them (a fingerprint of names, sizes, modes and modification times); after a
//! stage the remote directories are brought back. An upload replaces the remote directories
//! and a download replaces the local ones, so each side ends an exact copy of the other.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::client::Session;
use super::error::SshError;
use crate::executor::PreparedJob;
use crate::script::shell_quote;

/// Chunks in flight between the archive thread and the channel.
const CHUNKS: usize = 16;
/// Bytes per chunk.
const CHUNK_SIZE: usize = 64 * 1024;

/// The remote copy of one job's directories.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// The fingerprint of this host's directories when the two sides were last equal.
    synced: Option<Vec<u8>>,
    /// The remote project directory is the original until the next download (the remote host
    /// fetches the sources into it): uploads send the temporary directory only.
    project_remote: bool,
}

/// The two directories of a job on one side: the project directory and `<project>.tmp`, which
/// share a parent.
struct Pair {
    parent: PathBuf,
    project: String,
    tmp: String,
}

impl Pair {
    fn of(project_dir: &Path, tmp_dir: &Path) -> Result<Self, SshError> {
        let name = |dir: &Path| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| SshError::Local {
                    action: "name the directory",
                    path: dir.to_path_buf(),
                    source: std::io::Error::other("the path has no last component"),
                })
        };
        let parent = project_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(Self {
            parent,
            project: name(project_dir)?,
            tmp: name(tmp_dir)?,
        })
    }
}

impl Mirror {
    /// Takes the remote project directory as it is (the sources are fetched there) until the
    /// next download brings it here.
    pub(crate) fn keep_remote_project(&mut self) {
        self.project_remote = true;
    }

    /// Sends this host's directories to the remote host unless the remote copy is current.
    pub(crate) async fn upload(
        &mut self,
        session: &Session,
        job: &PreparedJob,
    ) -> Result<(), SshError> {
        let local = Pair::of(&job.project_dir, &job.tmp_dir)?;
        let remote = Pair::of(&job.script_dirs.project_dir, &job.script_dirs.tmp_dir)?;
        let fingerprint = fingerprint_blocking(&job.project_dir, &job.tmp_dir).await?;
        if self.synced.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        check_removable(job)?;
        let parent = shell_quote(&remote.parent.to_string_lossy());
        let p = shell_quote(&format!("{}/{}", remote.parent.display(), remote.project));
        let t = shell_quote(&format!("{}/{}", remote.parent.display(), remote.tmp));
        let mut entries = vec![(job.tmp_dir.clone(), remote.tmp.clone())];
        let replace = if self.project_remote {
            format!("rm -rf -- {t} && mkdir -p -- {p}")
        } else {
            entries.insert(0, (job.project_dir.clone(), remote.project.clone()));
            format!("rm -rf -- {p} {t} && mkdir -p -- {parent}")
        };
        let command = sh(&format!("{replace} && cd -- {parent} && tar -x -z -o -f -"));
        let (tx, rx) = mpsc::channel(CHUNKS);
        let packer = tokio::task::spawn_blocking(move || pack(&entries, tx));
        let sent = session.feed(&command, rx).await;
        let packed = packer.await.map_err(|err| SshError::Local {
            action: "pack",
            path: local.parent.clone(),
            source: std::io::Error::other(err.to_string()),
        })?;
        let captured = sent?;
        packed?;
        if captured.code != Some(0) {
            return Err(SshError::Remote {
                target: session.target().to_owned(),
                action: "unpack the project directory",
                message: exit_message(captured.code, &captured.stderr_text()),
            });
        }
        self.synced = Some(fingerprint);
        Ok(())
    }

    /// Brings the remote directories back, replacing this host's.
    pub(crate) async fn download(
        &mut self,
        session: &Session,
        job: &PreparedJob,
    ) -> Result<(), SshError> {
        let local = Pair::of(&job.project_dir, &job.tmp_dir)?;
        let remote = Pair::of(&job.script_dirs.project_dir, &job.script_dirs.tmp_dir)?;
        let command = sh(&format!(
            "cd -- {parent} && set -- && for d in {p} {t}; do if [ -e \"$d\" ]; then set -- \"$@\" \"$d\"; fi; done && tar -c -z -f - -- \"$@\"",
            parent = shell_quote(&remote.parent.to_string_lossy()),
            p = shell_quote(&remote.project),
            t = shell_quote(&remote.tmp),
        ));
        if (&remote.project, &remote.tmp) != (&local.project, &local.tmp) {
            return Err(SshError::Local {
                action: "match the remote project directory with",
                path: job.project_dir.clone(),
                source: std::io::Error::other("the two directories are named differently"),
            });
        }
        let (tx, rx) = mpsc::channel(CHUNKS);
        let names = [local.project.clone(), local.tmp.clone()];
        let dirs = [job.project_dir.clone(), job.tmp_dir.clone()];
        let parent = local.parent.clone();
        let unpacker = tokio::task::spawn_blocking(move || unpack(rx, &parent, &names, &dirs));
        let received = session.drain(&command, tx).await;
        let unpacked = unpacker.await.map_err(|err| SshError::Local {
            action: "unpack",
            path: local.parent.clone(),
            source: std::io::Error::other(err.to_string()),
        })?;
        let captured = received?;
        if captured.code != Some(0) {
            return Err(SshError::Remote {
                target: session.target().to_owned(),
                action: "pack the project directory",
                message: exit_message(captured.code, &captured.stderr_text()),
            });
        }
        unpacked?;
        self.synced = Some(fingerprint_blocking(&job.project_dir, &job.tmp_dir).await?);
        self.project_remote = false;
        Ok(())
    }
}

/// A command for the remote user's login shell that runs `script` in `/bin/sh`.
pub(crate) fn sh(script: &str) -> String {
    format!("exec /bin/sh -c {}", shell_quote(script))
}

fn exit_message(code: Option<u32>, stderr: &str) -> String {
    let status = match code {
        Some(code) => format!("exit status {code}"),
        None => "no exit status".to_owned(),
    };
    if stderr.is_empty() {
        status
    } else {
        format!("{status}: {stderr}")
    }
}

/// The remote project directory is replaced on upload: it must lie strictly inside the remote
/// builds directory.
fn check_removable(job: &PreparedJob) -> Result<(), SshError> {
    let dirs = &job.script_dirs;
    let inside = dirs
        .project_dir
        .strip_prefix(&dirs.builds_dir)
        .is_ok_and(|rest| {
            !rest.as_os_str().is_empty()
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
        });
    if inside && dirs.builds_dir.is_absolute() {
        Ok(())
    } else {
        Err(SshError::Local {
            action: "use the remote project directory",
            path: dirs.project_dir.clone(),
            source: std::io::Error::other("it is not inside the remote builds directory"),
        })
    }
}

/// Writes a gzip'd tar of each existing `(directory, name in the archive)` into `tx`
/// ([`crate::dir_tar::pack`]).
fn pack(entries: &[(PathBuf, String)], tx: mpsc::Sender<Vec<u8>>) -> Result<(), SshError> {
    let sink = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK_SIZE),
    };
    let failed = |source| SshError::Local {
        action: "pack",
        path: entries
            .first()
            .map(|(dir, _)| dir.clone())
            .unwrap_or_default(),
        source,
    };
    let gz = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
    let refs: Vec<(&Path, &str)> = entries
        .iter()
        .map(|(dir, name)| (dir.as_path(), name.as_str()))
        .collect();
    let gz = crate::dir_tar::pack(&refs, gz).map_err(failed)?;
    let mut sink = gz.finish().map_err(failed)?;
    sink.flush().map_err(failed)?;
    Ok(())
}

/// Unpacks the gzip'd tar arriving on `rx` into `parent`, after removing `dirs`. Only entries
/// under the two expected top-level `names` are taken; paths that leave the destination (`..`,
/// absolute paths, writes through symbolic links) are refused ([`crate::dir_tar::unpack`]).
fn unpack(
    rx: mpsc::Receiver<Vec<u8>>,
    parent: &Path,
    names: &[String; 2],
    dirs: &[PathBuf; 2],
) -> Result<(), SshError> {
    let failed = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| SshError::Local {
            action,
            path,
            source,
        }
    };
    // A directory the remote side no longer has is gone here too.
    for dir in dirs {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(failed("remove", dir))?;
        }
    }
    let reader = ChunkReader {
        rx,
        chunk: Vec::new(),
        at: 0,
    };
    let only = [names[0].as_str(), names[1].as_str()];
    let how = crate::dir_tar::Unpack {
        only: Some(&only),
        owner: None,
    };
    crate::dir_tar::unpack(flate2::read::GzDecoder::new(reader), parent, how)
        .map_err(failed("unpack into", parent))
}

async fn fingerprint_blocking(project: &Path, tmp: &Path) -> Result<Vec<u8>, SshError> {
    let (project, tmp) = (project.to_path_buf(), tmp.to_path_buf());
    tokio::task::spawn_blocking(move || fingerprint(&[project, tmp]))
        .await
        .map_err(|err| SshError::Local {
            action: "read",
            path: PathBuf::new(),
            source: std::io::Error::other(err.to_string()),
        })?
}

/// A hash of every entry's path, type, size, mode, modification time and link target.
fn fingerprint(dirs: &[PathBuf]) -> Result<Vec<u8>, SshError> {
    use std::os::unix::fs::MetadataExt;
    let mut hash = Sha256::new();
    for dir in dirs {
        hash.update(dir.as_os_str().as_encoded_bytes());
        hash.update([0]);
        if !dir.exists() {
            continue;
        }
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(|err| SshError::Local {
                action: "read",
                path: dir.clone(),
                source: err.into(),
            })?;
            let meta = entry.metadata().map_err(|err| SshError::Local {
                action: "read",
                path: entry.path().to_path_buf(),
                source: err.into(),
            })?;
            hash.update(entry.path().as_os_str().as_encoded_bytes());
            hash.update([0]);
            hash.update(meta.mode().to_le_bytes());
            hash.update(meta.size().to_le_bytes());
            hash.update(meta.mtime().to_le_bytes());
            hash.update(meta.mtime_nsec().to_le_bytes());
            if meta.file_type().is_symlink()
                && let Ok(target) = std::fs::read_link(entry.path())
            {
                hash.update(target.as_os_str().as_encoded_bytes());
            }
        }
    }
    Ok(hash.finalize().to_vec())
}

/// A `Write` that hands full chunks to an async channel.
struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_SIZE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the channel closed"))
    }
}

/// A `Read` over chunks arriving on an async channel.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChunkReader, fingerprint, pack};
    use tokio::sync::mpsc;

    #[test]
    fn fingerprint_changes_with_content_and_not_without() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let project = dir.path().join("p");
        std::fs::create_dir_all(&project).expect("mkdir");
        std::fs::write(project.join("a"), "1").expect("write");
        let dirs = [project.clone(), dir.path().join("p.tmp")];
        let first = fingerprint(&dirs).expect("fingerprint");
        assert_eq!(first, fingerprint(&dirs).expect("fingerprint"));
        std::fs::write(project.join("a"), "22").expect("write");
        assert_ne!(first, fingerprint(&dirs).expect("fingerprint"));
    }

    #[test]
    fn pack_streams_a_gzip_tar_of_the_named_directories() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let project = dir.path().join("p");
        std::fs::create_dir_all(project.join("sub")).expect("mkdir");
        std::fs::write(project.join("sub/f"), "data").expect("write");
        let (tx, rx) = mpsc::channel(4);
        let entries = [(project, "remote-p".to_owned())];
        let packer = std::thread::spawn(move || pack(&entries, tx));
        let reader = ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        packer.join().expect("thread").expect("pack");
        assert!(names.iter().any(|n| n == "remote-p/sub/f"), "{names:?}");
    }
}
