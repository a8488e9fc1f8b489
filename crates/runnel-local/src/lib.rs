//! runnel-local: creates GitLab pipelines from a local repository and runs them on this
//! machine. `runnel exec` is argument parsing and printing around this crate; a coordinator
//! (`runnel serve`) creates and advances the same pipelines through [`LocalPipeline`].
//!
//! # Why a crate of its own
//!
//! runnel-pipeline is synchronous and does no I/O beyond reading included files; creating a
//! local pipeline also runs `git` (commit, branch, changed files), writes the state directory
//! (`.runnel/`: pipeline numbers, logs, builds, cache, artifacts) and runs jobs through
//! runnel-exec's executors. runnel-exec must not know where a payload came from, so it cannot
//! depend on runnel-pipeline. This crate sits between them: `pipeline + exec ← local ← runnel`.
//!
//! # API
//!
//! ```text
//! load(PipelineOptions) -> Result<Loaded, LoadError>         git + .gitlab-ci.yml, writes nothing
//! Loaded::jobs() -> &[Job]                                    the pipeline GitLab would create
//! Loaded::create(&Selection) -> Result<LocalPipeline, CreateError>
//!                                                             selection, child pipelines, bridges,
//!                                                             manual plays: one schedule
//! LocalPipeline::advance() -> Vec<Change>                     sync state machine: ready, delayed,
//! LocalPipeline::start(i) -> (JobPayload, attempt)              skipped/manual, trigger jobs
//! LocalPipeline::finish(i, &JobEnd) -> Finished               (what a coordinator drives)
//! LocalPipeline::play(i) / cancel() / status() / blocking_manual()
//! run(LocalPipeline, ExecutorKind, concurrency, &mut dyn Reporter) -> Summary   (async)
//!                                                             runs it here, reporting Events
//! ```
//!
//! # Executors
//!
//! The executors of `runnel exec --executor` are registered in one place: the [`ExecutorKind`]
//! enum in `src/executors.rs`. Adding one is a variant (its doc comment is the `--help` text)
//! and one arm in `ExecutorKind::executor` that builds a `runnel_exec::Executor` for a job (and
//! one in `ExecutorKind::notices` for the keywords it ignores); nothing else changes.

mod create;
mod driver;
mod executors;
mod git;
mod load;
mod local_pipeline;
mod options;
mod report;
mod select;
mod trace;

pub use create::{CreateError, Loaded, load};
pub use driver::run;
pub use executors::{ExecutorKind, LocalExecutor};
pub use git::{git_line, project_from_remote};
pub use load::{Excluded, LoadError};
pub use local_pipeline::{Change, JobEnd, LocalPipeline};
pub use options::{CacheStoreFn, CacheStores, KubeTarget, PipelineOptions, Selection};
pub use report::{Event, JobRecord, Reporter, Summary};
pub use select::SelectError;
pub use trace::TraceLine;

/// What a coordinator feeds back and reads: the results of jobs and the pipeline's status.
pub use runnel_pipeline::schedule::{Finished, JobResult, PipelineStatus};
