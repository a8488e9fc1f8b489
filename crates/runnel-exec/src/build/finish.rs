//! The end of a job: `after_script`, the cache archive, the artifacts upload and the clean-up of
//! file variables, in gitlab-runner's order.
//!
//! GitLab: gitlab-runner `common/build.go` `executeScript` (`after_script` after failures, cache
//! and artifacts `on_success`/`on_failure`) and `shells/abstract.go`.

use runnel_api::FailureReason;
use tokio::time::Instant;

use super::{Run, out_of_time};
use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob};
use crate::helper_stage::{HelperStage, RemoteHelper, run_through};
use crate::outcome::{JobOutcome, JobStatus};
use crate::process::ScriptEnd;
use crate::script::Exports;
use crate::steps::{run_after_script, run_own_stage};
use crate::trace::Trace;
use crate::{artifact_stage, cache_stage};

/// Runs the stages after the job's steps: `after_script`, the cache and the artifacts unless the
/// job was aborted or ran out of time, then the file-variable clean-up.
pub(super) async fn finish(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    (exports, helper): (&Exports, Option<&RemoteHelper>),
) -> Result<(), ExecError> {
    if !ctx.abort.is_cancelled() && !out_of_time(run) {
        run_after_script(executor, job, ctx, trace, run, exports).await?;
        let succeeded = run.succeeded();
        archive_cache(executor, job, ctx, trace, run, helper).await?;
        upload_artifacts(executor, job, ctx, trace, run, helper, succeeded).await?;
    }
    cleanup_file_variables(executor, job, ctx, trace, run).await;
    Ok(())
}

async fn archive_cache(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &Run,
    helper: Option<&RemoteHelper>,
) -> Result<(), ExecError> {
    let succeeded = run.succeeded();
    match helper {
        Some(helper) if cache_stage::archives(job, succeeded) => {
            let stage = (HelperStage::ArchiveCache, succeeded);
            let end = run_through(executor, helper, job, ctx, trace, run.deadline, stage).await?;
            if end != ScriptEnd::Exited(0) {
                trace.warning("Failed to archive the cache");
            }
        }
        Some(_) => {}
        None => cache_stage::archive(job, ctx, trace, succeeded).await?,
    }
    Ok(())
}

/// Uploads the artifacts that apply to the job's result (`succeeded` before the uploads);
/// a failed upload fails the job.
async fn upload_artifacts(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    helper: Option<&RemoteHelper>,
    succeeded: bool,
) -> Result<(), ExecError> {
    if !job
        .payload
        .artifacts
        .iter()
        .any(|a| a.when.applies(succeeded))
    {
        return Ok(());
    }
    let (section, header) = if succeeded {
        (
            "upload_artifacts_on_success",
            "Uploading artifacts for successful job",
        )
    } else {
        (
            "upload_artifacts_on_failure",
            "Uploading artifacts for failed job",
        )
    };
    trace.section_start(section, header);
    let ok = match helper {
        Some(helper) => {
            let stage = (HelperStage::UploadArtifacts, succeeded);
            let end = run_through(executor, helper, job, ctx, trace, run.deadline, stage).await?;
            end == ScriptEnd::Exited(0)
        }
        None => artifact_stage::upload(job, ctx, trace, &mut run.outcome, succeeded).await?,
    };
    trace.section_end();
    if !ok {
        run.fail(JobStatus::Failed, Some(FailureReason::ScriptFailure), None);
    }
    Ok(())
}

/// The `cleanup_file_variables` stage: the executor's own (with its own timeout) where it runs
/// every stage, then this host's temporary directory.
async fn cleanup_file_variables(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
) {
    trace.section_start(
        "cleanup_file_variables",
        "Cleaning up project directory and file based variables",
    );
    if executor.runs_every_stage() && !ctx.abort.is_cancelled() && !out_of_time(run) {
        let mut cleanup = Run {
            outcome: JobOutcome::new(JobStatus::Success),
            deadline: Instant::now() + crate::steps::CLEANUP_STAGE_TIMEOUT,
        };
        let _ = run_own_stage(
            executor,
            job,
            ctx,
            trace,
            &mut cleanup,
            ("cleanup_file_variables", None),
        )
        .await;
    }
    let _ = std::fs::remove_dir_all(&job.tmp_dir);
    trace.section_end();
}
