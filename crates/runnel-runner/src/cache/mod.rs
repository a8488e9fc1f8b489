//! The distributed cache's manager side: `[runners.cache]` (`Type` s3, gcs or azure) becomes a
//! signer that makes pre-signed GET and PUT URLs per cache key, as gitlab-runner's `cache/`
//! package does. The credentials stay here; runnel-exec's `RemoteCacheStore` gets the URLs.
//! Signing is object_store's (`Signer`), not hand-written.

mod azure;
mod gcs;
mod object;
mod s3;
mod signer;
#[cfg(test)]
mod tests;

pub use object::{ObjectNameError, object_name};
pub use signer::{CacheSetup, CacheSetupError, ObjectStoreSigner, cache_setup};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runnel_api::JobPayload;
use runnel_exec::{CacheStore, LocalCacheStore, RemoteCacheStore};

use crate::config::RunnerConfig;

/// The cache store of one job of `runner`: the local cache under `cache_dir`, or, with a
/// `[runners.cache]` `Type`, the remote cache with local copies there. A configuration that
/// cannot be used is logged and the job gets the local cache, as gitlab-runner does ("Could not
/// create cache adapter").
pub fn job_cache_store(
    runner: &RunnerConfig,
    cache_dir: PathBuf,
    payload: &JobPayload,
) -> Arc<dyn CacheStore> {
    let Some(config) = runner.cache.as_ref() else {
        return Arc::new(LocalCacheStore::new(cache_dir));
    };
    // gitlab-runner signs with the build timeout as the URLs' lifetime.
    let expires = Duration::from_secs(payload.runner_info.timeout.max(3600));
    match cache_setup(
        config,
        &runner.short_token(),
        payload.job_info.project_id,
        expires,
    ) {
        Ok(Some(setup)) => {
            for warning in &setup.warnings {
                tracing::warn!(name = %runner.name, "{warning}");
            }
            Arc::new(RemoteCacheStore::new(
                cache_dir,
                setup.signer,
                setup.max_uploaded_archive_size,
            ))
        }
        Ok(None) => Arc::new(LocalCacheStore::new(cache_dir)),
        Err(err) => {
            tracing::error!(name = %runner.name, error = %crate::trace_patch::error_chain(&err), "could not create the cache adapter: the job uses the local cache");
            Arc::new(LocalCacheStore::new(cache_dir))
        }
    }
}
