//! The `download_artifacts` and `upload_artifacts_on_success|on_failure` build stages, and the
//! reports read locally (`dotenv`, `junit`, Cobertura `coverage_report`).
//!
//! GitLab: gitlab-runner `commands/helpers/artifacts_uploader.go`, `artifacts_downloader.go`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use runnel_api::ArtifactSpec;

use crate::archive::{self, ArchiveError};
use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::PreparedJob;
use crate::outcome::JobOutcome;
use crate::reports::{JunitSummary, cobertura_line_rate, parse_dotenv, summarize_junit};
use crate::settings::{BuildSettings, CompressionLevel, level_or_warning};
use crate::sources::untracked_files;
use crate::tarzstd;
use crate::trace::Trace;
use crate::zip_write;

/// Downloads and extracts the artifacts of every dependency into the project directory.
/// Returns `false` when an archive was refused or could not be read (the job fails).
pub(crate) async fn download(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
) -> Result<bool, ExecError> {
    if job.payload.dependencies.is_empty() {
        return Ok(true);
    }
    trace.section_start("download_artifacts", "Downloading artifacts");
    let mut ok = true;
    for dependency in &job.payload.dependencies {
        let archive = match ctx
            .artifacts
            .download(&job.payload, dependency, &job.tmp_dir)
            .await
        {
            Ok(Some(archive)) => archive,
            Ok(None) => continue,
            Err(err) => {
                trace.error(&format!(
                    "Downloading artifacts for {} ({}): {err}",
                    dependency.name, dependency.id
                ));
                ok = false;
                break;
            }
        };
        trace.info(&format!(
            "Downloading artifacts for {} ({})...",
            dependency.name, dependency.id
        ));
        let dest = job.project_dir.clone();
        let result = tokio::task::spawn_blocking(move || tarzstd::extract(&archive, &dest))
            .await
            .map_err(ExecError::Join)?;
        match result {
            Ok(count) => trace.println(&format!("Extracted {count} files and directories")),
            Err(err) => {
                trace.error(&err.to_string());
                ok = false;
                break;
            }
        }
    }
    trace.section_end();
    Ok(ok)
}

/// Uploads the artifacts whose `when` matches and reads the reports into `outcome`.
/// Returns `false` when an upload failed (the job fails).
pub(crate) async fn upload(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    outcome: &mut JobOutcome,
    succeeded: bool,
) -> Result<bool, ExecError> {
    let mut ok = true;
    for (index, spec) in job
        .payload
        .artifacts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.when.applies(succeeded))
    {
        let kind = if spec.artifact_type.is_empty() {
            "archive"
        } else {
            spec.artifact_type.as_str()
        };
        let result = match kind {
            "archive" => upload_archive(job, ctx, trace, outcome, spec, index).await,
            report => read_report(job, ctx, trace, outcome, spec, report, index).await,
        };
        if let Err(err) = result {
            trace.error(&format!("Uploading artifacts as \"{kind}\": {err}"));
            ok = false;
        }
    }
    Ok(ok)
}

#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Dotenv(#[from] crate::reports::DotenvError),
}

/// `ARTIFACT_COMPRESSION_LEVEL`, warning as gitlab-runner's archiver does about a bad value.
fn artifact_level(job: &PreparedJob, trace: &mut Trace) -> CompressionLevel {
    let settings = BuildSettings::from_variables(&job.variables);
    let (level, warning) = level_or_warning(&settings.artifact_level);
    if let Some(warning) = warning {
        trace.warning(&warning);
    }
    level
}

async fn select(
    job: &PreparedJob,
    trace: &mut Trace,
    paths: Vec<String>,
    exclude: Vec<String>,
    untracked: Option<Vec<PathBuf>>,
) -> Result<BTreeSet<PathBuf>, UploadError> {
    let root = job.project_dir.clone();
    archive::select_traced(root, paths, exclude, untracked, trace).await
}

async fn upload_archive(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    outcome: &mut JobOutcome,
    spec: &ArtifactSpec,
    index: usize,
) -> Result<(), UploadError> {
    trace.info("Uploading artifacts...");
    let untracked = if spec.untracked {
        Some(untracked_files(&job.project_dir, &ctx.sources).await?)
    } else {
        None
    };
    let paths = spec.paths.iter().map(|p| job.expand_host_path(p)).collect();
    let exclude = spec
        .exclude
        .iter()
        .map(|p| job.expand_host_path(p))
        .collect();
    let entries = select(job, trace, paths, exclude, untracked).await?;
    if entries.is_empty() {
        trace.error("No files to upload");
        return Ok(());
    }
    let zip = job.tmp_dir.join(format!("artifacts-{index}.zip"));
    let level = artifact_level(job, trace);
    let (root, target) = (job.project_dir.clone(), zip.clone());
    tokio::task::spawn_blocking(move || zip_write::write_zip(&root, &entries, &target, level))
        .await
        .map_err(ExecError::Join)??;
    let stored = ctx.artifacts.upload(&job.payload, spec, &zip).await?;
    trace.println(&format!(
        "Uploading artifacts as \"archive\"... ok  stored={}",
        stored.display()
    ));
    outcome.artifacts = Some(stored);
    Ok(())
}

async fn read_report(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    outcome: &mut JobOutcome,
    spec: &ArtifactSpec,
    report: &str,
    index: usize,
) -> Result<(), UploadError> {
    trace.info("Uploading artifacts...");
    let paths = spec.paths.iter().map(|p| job.expand_host_path(p)).collect();
    let selected: BTreeSet<PathBuf> = select(job, trace, paths, Vec::new(), None)
        .await?
        .into_iter()
        .filter(|rel| job.project_dir.join(rel).is_file())
        .collect();
    let files: Vec<PathBuf> = selected
        .iter()
        .map(|rel| job.project_dir.join(rel))
        .collect();
    if files.is_empty() {
        trace.error("No files to upload");
        return Ok(());
    }
    let read = |path: &PathBuf| std::fs::read(path).map_err(ExecError::io("read the report", path));
    match report {
        "dotenv" => {
            let mut all = Vec::new();
            for path in &files {
                all.extend_from_slice(&read(path)?);
                if !all.ends_with(b"\n") && !all.is_empty() {
                    all.push(b'\n');
                }
            }
            let variables = parse_dotenv(&all)?;
            trace.println(&format!("dotenv: {} variables", variables.len()));
            outcome.dotenv = variables;
        }
        "junit" => {
            let mut summary = outcome.junit.unwrap_or_default();
            for path in &files {
                match summarize_junit(&read(path)?) {
                    Ok(found) => summary.add(found),
                    Err(err) => trace.warning(&format!("{}: {err}", path.display())),
                }
            }
            outcome.junit = Some(summary);
            let JunitSummary {
                total,
                failed,
                errored,
                skipped,
            } = summary;
            trace.println(&format!(
                "junit: {total} tests, {failed} failed, {errored} errors, {skipped} skipped"
            ));
        }
        "cobertura" => {
            for path in &files {
                match cobertura_line_rate(&read(path)?) {
                    Ok(Some(rate)) => {
                        outcome.coverage_report = Some(rate);
                        trace.println(&format!("coverage_report: {rate}% lines covered"));
                        break;
                    }
                    Ok(None) => {}
                    Err(err) => trace.warning(&format!("{}: {err}", path.display())),
                }
            }
        }
        other => trace.println(&format!("{other}: found {} files", files.len())),
    }
    store_report(job, ctx, trace, spec, selected, index).await
}

/// Archives a report in its `artifact_format` (`gzip`: one member per file; `raw`: the one file;
/// otherwise zip) and hands it to the store, so a coordinator receives it as GitLab expects.
async fn store_report(
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    spec: &ArtifactSpec,
    files: BTreeSet<PathBuf>,
    index: usize,
) -> Result<(), UploadError> {
    let format = spec.artifact_format.clone();
    let archive = job.tmp_dir.join(format!("report-{index}"));
    let level = artifact_level(job, trace);
    let (root, target) = (job.project_dir.clone(), archive.clone());
    let written = tokio::task::spawn_blocking(move || match format.as_str() {
        "gzip" => archive::write_gzip(&root, &files, &target).map(|_| true),
        "raw" => match files.iter().next() {
            Some(file) if files.len() == 1 => std::fs::copy(root.join(file), &target)
                .map(|_| true)
                .map_err(|source| ArchiveError::Io {
                    action: "copy the report",
                    path: root.join(file),
                    source,
                }),
            _ => Ok(false),
        },
        _ => zip_write::write_zip(&root, &files, &target, level).map(|_| true),
    })
    .await
    .map_err(ExecError::Join)??;
    if !written {
        trace.error("Uploading artifacts: the \"raw\" format takes exactly one file");
        return Ok(());
    }
    let kind = &spec.artifact_type;
    ctx.artifacts.upload(&job.payload, spec, &archive).await?;
    trace.println(&format!("Uploading artifacts as \"{kind}\"... ok"));
    Ok(())
}
