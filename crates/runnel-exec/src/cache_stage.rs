//! The `restore_cache` and `archive_cache` build stages. Cache failures are warnings, never job
//! failures (GitLab: gitlab-runner `shells/abstract.go` `writeCacheExtractorScript`,
//! `writeCacheArchiverScript`; "Failed to extract cache").
//!
//! Fallbacks: the key, then `fallback_keys` in order, then `CACHE_FALLBACK_KEY` (refused when it
//! ends in `-protected`). GitLab appends `-protected`/`-non_protected` to keys on the server; the
//! planner of a local run decides whether to do that, this stage uses the keys as given.

use std::path::PathBuf;

use runnel_api::{CachePolicy, CacheSpec};

use crate::archive;
use crate::build::error_chain;
use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::PreparedJob;
use crate::settings::{ArchiveFormat, BuildSettings, level_or_warning};
use crate::sources::untracked_files;
use crate::tarzstd;
use crate::trace::Trace;
use crate::zip_write;

fn has_content(cache: &CacheSpec) -> bool {
    !cache.paths.is_empty() || cache.untracked
}

/// The caches `restore` restores (an unknown policy too, to warn about it).
fn pulled(job: &PreparedJob) -> impl Iterator<Item = &CacheSpec> {
    job.payload.cache.iter().filter(|c| {
        has_content(c) && (c.policy.pulls() || matches!(c.policy, CachePolicy::Other(_)))
    })
}

/// The caches `archive` saves.
fn pushed(job: &PreparedJob, succeeded: bool) -> impl Iterator<Item = &CacheSpec> {
    job.payload
        .cache
        .iter()
        .filter(move |c| has_content(c) && c.policy.pushes() && c.when.applies(succeeded))
}

/// Whether `restore` has a cache to restore.
pub(crate) fn restores(job: &PreparedJob) -> bool {
    pulled(job).next().is_some()
}

/// Whether `archive` has a cache to archive.
pub(crate) fn archives(job: &PreparedJob, succeeded: bool) -> bool {
    pushed(job, succeeded).next().is_some()
}

/// The keys `restore` tries for `cache`, in order: the key, `fallback_keys`, then
/// `CACHE_FALLBACK_KEY`; and the warning when that one is refused.
fn restore_keys(job: &PreparedJob, cache: &CacheSpec) -> (Vec<String>, Option<String>) {
    let mut keys: Vec<String> = vec![job.variables.expand(&cache.key)];
    keys.extend(cache.fallback_keys.iter().map(|k| job.variables.expand(k)));
    let mut warning = None;
    if let Some(fallback) = job
        .variables
        .get("CACHE_FALLBACK_KEY")
        .filter(|k| !k.is_empty())
    {
        if fallback.ends_with("-protected") {
            warning = Some(format!(
                "CACHE_FALLBACK_KEY \"{fallback}\" not allowed to end in \"-protected\""
            ));
        } else {
            keys.push(fallback.to_owned());
        }
    }
    keys.retain(|k| !k.is_empty());
    (keys, warning)
}

/// Every key `restore` may try (`restoring`), or every key `archive` saves after a job that
/// `succeeded` or not.
pub(crate) fn stage_keys(job: &PreparedJob, restoring: bool, succeeded: bool) -> Vec<String> {
    let mut keys: Vec<String> = if restoring {
        pulled(job)
            .filter(|c| !matches!(c.policy, CachePolicy::Other(_)))
            .flat_map(|c| restore_keys(job, c).0)
            .collect()
    } else {
        pushed(job, succeeded)
            .map(|c| job.variables.expand(&c.key))
            .filter(|k| !k.is_empty())
            .collect()
    };
    keys.dedup();
    keys
}

/// Restores every cache whose policy pulls.
pub(crate) async fn restore(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
) -> Result<(), ExecError> {
    let caches: Vec<&CacheSpec> = pulled(job).collect();
    if caches.is_empty() {
        return Ok(());
    }
    trace.section_start("restore_cache", "Restoring cache");
    for cache in caches {
        if let CachePolicy::Other(policy) = &cache.policy {
            trace.warning(&format!("unknown cache policy {policy}"));
            continue;
        }
        let (keys, warning) = restore_keys(job, cache);
        if let Some(warning) = warning {
            trace.warning(&warning);
        }
        restore_one(job, ctx, trace, &keys).await?;
    }
    trace.section_end();
    Ok(())
}

async fn restore_one(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    keys: &[String],
) -> Result<(), ExecError> {
    for key in keys {
        trace.println(&format!("Checking cache for {key}..."));
        let archive = match ctx.cache.restore(key, &job.tmp_dir, trace).await {
            Ok(Some(archive)) => archive,
            Ok(None) => continue,
            Err(err) => {
                trace.warning(&error_chain(&err));
                continue;
            }
        };
        let dest = job.project_dir.clone();
        let result = tokio::task::spawn_blocking(move || tarzstd::extract(&archive, &dest))
            .await
            .map_err(ExecError::Join)?;
        match result {
            Ok(_) => trace.info("Successfully extracted cache"),
            Err(err) => {
                trace.warning(&err.to_string());
                trace.warning("Failed to extract cache");
            }
        }
        return Ok(());
    }
    trace.warning("file does not exist");
    trace.warning("Failed to extract cache");
    Ok(())
}

/// Saves every cache whose policy pushes and whose `when` matches the job's result.
pub(crate) async fn archive(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    succeeded: bool,
) -> Result<(), ExecError> {
    let caches: Vec<&CacheSpec> = pushed(job, succeeded).collect();
    if caches.is_empty() {
        return Ok(());
    }
    let (section, header) = if succeeded {
        ("archive_cache", "Saving cache for successful job")
    } else {
        ("archive_cache_on_failure", "Saving cache for failed job")
    };
    trace.section_start(section, header);
    for (index, cache) in caches.into_iter().enumerate() {
        let key = job.variables.expand(&cache.key);
        if key.is_empty() {
            continue;
        }
        trace.println(&format!("Creating cache {key}..."));
        match save_one(job, ctx, trace, cache, &key, index).await {
            Ok(true) => trace.println("Created cache"),
            Ok(false) => {}
            Err(err) => {
                trace.warning(&error_chain(&err));
                trace.warning("Failed to create cache");
            }
        }
    }
    trace.section_end();
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum SaveError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

async fn save_one(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    cache: &CacheSpec,
    key: &str,
    index: usize,
) -> Result<bool, SaveError> {
    let untracked = if cache.untracked {
        Some(untracked_files(&job.project_dir, &ctx.sources).await?)
    } else {
        None
    };
    let paths: Vec<String> = cache
        .paths
        .iter()
        .map(|p| job.expand_host_path(p))
        .collect();
    let root = job.project_dir.clone();
    let entries =
        archive::select_traced::<SaveError>(root, paths, Vec::new(), untracked, trace).await?;
    if entries.is_empty() {
        trace.warning("No files to archive");
        return Ok(false);
    }
    // GitLab keeps the name `cache.zip` whatever `CACHE_COMPRESSION_FORMAT` says; the
    // extractor tells the formats apart by their first bytes.
    let zip: PathBuf = job.tmp_dir.join(format!("cache-{index}.zip"));
    let settings = BuildSettings::from_variables(&job.variables);
    let (level, warning) = level_or_warning(&settings.cache_level);
    if let Some(warning) = warning {
        trace.warning(&warning);
    }
    let (root, target) = (job.project_dir.clone(), zip.clone());
    tokio::task::spawn_blocking(move || match settings.cache_format {
        ArchiveFormat::Zip => zip_write::write_zip(&root, &entries, &target, level),
        ArchiveFormat::TarZstd => tarzstd::write_tar_zstd(&root, &entries, &target, level),
    })
    .await
    .map_err(ExecError::Join)??;
    ctx.cache.save(key, &zip, trace).await?;
    Ok(true)
}
