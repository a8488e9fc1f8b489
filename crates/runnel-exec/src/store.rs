//! Where artifacts and caches are kept: the traits, and the local stores under
//! `<project>/.runnel/` used by `runnel exec`. The daemon implements the traits over HTTP.

use std::fs;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use runnel_api::{ArtifactSpec, Dependency, JobPayload};

use crate::trace::Trace;

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cache key cannot be used as a path.
    #[error("cache key `{key}` could not be sanitized")]
    BadKey {
        /// The key.
        key: String,
    },
    /// Any other failure of a remote store.
    #[error("failed to {action}")]
    Remote {
        /// What was being done ("upload artifacts").
        action: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Keeps the artifact archives of jobs.
///
/// Calls for one job come one after another; different jobs may call concurrently.
pub trait ArtifactStore: Send + Sync + std::fmt::Debug {
    /// Stores `archive`, a zip file runnel made in the job's temporary directory (the store may
    /// move it), as the `spec` artifacts of `job`. Returns where it is kept.
    fn upload<'a>(
        &'a self,
        job: &'a JobPayload,
        spec: &'a ArtifactSpec,
        archive: &'a Path,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>>;

    /// Makes the archive of `dependency` available as a local zip file, downloading it into
    /// `scratch` if needed. Called for every dependency; `None` when it has no archive (a remote
    /// store returns `None` when `artifacts_file` is absent).
    fn download<'a>(
        &'a self,
        job: &'a JobPayload,
        dependency: &'a Dependency,
        scratch: &'a Path,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>>;
}

/// Keeps cache archives by key.
pub trait CacheStore: Send + Sync + std::fmt::Debug {
    /// The local zip file of `key`, downloading it into `scratch` if needed; `None` when absent.
    /// A remote store says in `trace` where it downloads from.
    fn restore<'a>(
        &'a self,
        key: &'a str,
        scratch: &'a Path,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>>;

    /// Stores `archive` (which the store may move) as the cache of `key`. A remote store says
    /// in `trace` where it uploads to, or why it does not.
    fn save<'a>(
        &'a self,
        key: &'a str,
        archive: &'a Path,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>>;

    /// Whether caches are kept in a local directory (gitlab-runner's `cache_dir`), which the
    /// custom executor's `config_exec` may move. Default: no (a distributed cache).
    fn is_local(&self) -> bool {
        false
    }

    /// A pre-signed request for the archive of `key`, for a helper that runs the cache stage
    /// where the credentials are not (the custom executor's driver), as gitlab-runner hands
    /// `cache-extractor` and `cache-archiver` a signed `--url`. Default: `None` (no distributed
    /// cache: the helper uses its local cache directory).
    fn presign<'a>(
        &'a self,
        key: &'a str,
        method: crate::remote_cache::CacheMethod,
    ) -> BoxFuture<'a, Result<Option<crate::remote_cache::SignedKey>, StoreError>> {
        let _ = (key, method);
        Box::pin(std::future::ready(Ok(None)))
    }

    /// `MaxUploadedArchiveSize` of the distributed cache (0: no limit).
    fn max_uploaded_archive_size(&self) -> u64 {
        0
    }
}

/// Moves `from` to `to`, copying when they are on different file systems.
fn move_file(from: &Path, to: &Path) -> Result<(), StoreError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_err("create the directory", parent))?;
    }
    if fs::rename(from, to).is_err() {
        fs::copy(from, to).map_err(io_err("copy the archive to", to))?;
        let _ = fs::remove_file(from);
    }
    Ok(())
}

/// Artifacts under `<root>/<pipeline id>/<job id>/artifacts.zip` with a `metadata.json` beside;
/// reports beside them as `<type>.gz` (or `.zip`, or no extension for `raw`).
/// `runnel exec` uses `<project>/.runnel/artifacts` as the root.
#[derive(Debug, Clone)]
pub struct LocalArtifactStore {
    root: PathBuf,
}

impl LocalArtifactStore {
    /// A store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where the archive of job `job_id` of pipeline `pipeline_id` is kept.
    pub fn archive_path(&self, pipeline_id: u64, job_id: u64) -> PathBuf {
        self.root
            .join(pipeline_id.to_string())
            .join(job_id.to_string())
            .join("artifacts.zip")
    }
}

impl ArtifactStore for LocalArtifactStore {
    fn upload<'a>(
        &'a self,
        job: &'a JobPayload,
        spec: &'a ArtifactSpec,
        archive: &'a Path,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        Box::pin(async move {
            let target = self.archive_path(job.job_info.pipeline_id, job.id.0);
            if !matches!(spec.artifact_type.as_str(), "" | "archive") {
                // Reports sit beside the archive as `<type>.<format extension>`.
                let extension = match spec.artifact_format.as_str() {
                    "gzip" => ".gz",
                    "raw" => "",
                    _ => ".zip",
                };
                let report = target.with_file_name(format!("{}{extension}", spec.artifact_type));
                move_file(archive, &report)?;
                return Ok(report);
            }
            move_file(archive, &target)?;
            let created = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let metadata = serde_json::json!({
                "job_id": job.id.0,
                "job_name": job.job_info.name,
                "name": spec.name,
                "artifact_type": spec.artifact_type,
                "expire_in": spec.expire_in,
                "created_at": created,
            });
            let path = target.with_file_name("metadata.json");
            fs::write(&path, metadata.to_string()).map_err(io_err("write", &path))?;
            Ok(target)
        })
    }

    fn download<'a>(
        &'a self,
        job: &'a JobPayload,
        dependency: &'a Dependency,
        _scratch: &'a Path,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        Box::pin(async move {
            let path = self.archive_path(job.job_info.pipeline_id, dependency.id.0);
            Ok(path.is_file().then_some(path))
        })
    }
}

/// Caches under `<root>/<key>/cache.zip`, kept across runs. `runnel exec` uses
/// `<project>/.runnel/cache` as the root.
#[derive(Debug, Clone)]
pub struct LocalCacheStore {
    root: PathBuf,
}

impl LocalCacheStore {
    /// A store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where the archive of `key` is kept.
    pub(crate) fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let clean = sanitize_cache_key(key).ok_or_else(|| StoreError::BadKey {
            key: key.to_owned(),
        })?;
        Ok(self.root.join(clean).join("cache.zip"))
    }
}

impl CacheStore for LocalCacheStore {
    fn is_local(&self) -> bool {
        true
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        _scratch: &'a Path,
        _trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            Ok(path.is_file().then_some(path))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        archive: &'a Path,
        _trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            move_file(archive, &path)?;
            Ok(path)
        })
    }
}

/// Sanitizes a cache key into a relative path, as gitlab-runner `cache/cachekey`: `%2F` → `/`,
/// `%2E` → `.`, `\` → `/`, then cleaned as an absolute path (so `..` cannot leave the root),
/// trailing whitespace and empty segments dropped. `None` when nothing is left.
pub fn sanitize_cache_key(key: &str) -> Option<String> {
    let replaced = key
        .replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%2E", ".")
        .replace("%2e", ".")
        .replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    for part in replaced.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    while let Some(last) = parts.last() {
        let trimmed = last.trim_end();
        if trimmed.is_empty() {
            parts.pop();
        } else {
            let len = parts.len();
            parts[len - 1] = trimmed;
            break;
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::sanitize_cache_key;

    #[test]
    fn cache_keys_cannot_escape_the_root() {
        assert_eq!(sanitize_cache_key("../../etc").as_deref(), Some("etc"));
        assert_eq!(sanitize_cache_key("a%2Fb%2E.c ").as_deref(), Some("a/b..c"));
        assert_eq!(
            sanitize_cache_key("build/main").as_deref(),
            Some("build/main")
        );
        assert_eq!(sanitize_cache_key("/ /"), None);
    }
}
