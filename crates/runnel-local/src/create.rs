//! Creating a local pipeline: [`load`] reads the repository and `.gitlab-ci.yml` and creates the
//! pipeline as GitLab would for this commit; [`Loaded::create`] selects its jobs, loads the child
//! pipelines of its trigger jobs and builds one schedule of them all, with the manual jobs that
//! were asked for played.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use runnel_pipeline::job::{Job, JobKind};
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::plan::RunContext;
use runnel_pipeline::schedule::{RetryPolicy, Schedule, ScheduleJob};

use crate::git;
use crate::load::{self, Excluded, LoadError};
use crate::local_pipeline::{Bridge, LocalPipeline, Unit};
use crate::options::{PipelineOptions, Selection};
use crate::select::{Candidate, SelectError, select};

/// A pipeline GitLab would create for this commit, before any job is selected or run. Reading it
/// writes nothing.
#[derive(Debug)]
pub struct Loaded {
    options: PipelineOptions,
    ctx: RunContext,
    pipeline: Pipeline,
    /// The warnings GitLab would show, rendered (empty when there are none).
    pub warnings: String,
    /// The jobs of the configuration that are not in the pipeline, and why.
    pub excluded: Vec<Excluded>,
}

/// Why a loaded pipeline cannot be created as asked.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Mistakes in a child pipeline's configuration, rendered as `runnel lint` prints them.
    #[error("{0}")]
    Config(String),
    /// The selection names what the pipeline does not have.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The state directory could not be written.
    #[error("failed to create `{}`", path.display())]
    StateDir {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the repository at `options.project_dir` (commit, branch, remote, changed files) and
/// creates its pipeline as GitLab would. Runs `git`; writes nothing.
pub fn load(options: PipelineOptions) -> Result<Loaded, LoadError> {
    let meta = git::read(&options.project_dir);
    let ctx = RunContext {
        pipeline_source: "push".into(),
        config_path: options.file.display().to_string(),
        git: meta.git,
        project: meta.project,
        user: meta.user,
        repo_url: options.project_dir.display().to_string(),
        project_variables: options.project_variables.clone(),
        pipeline_variables: options.pipeline_variables.clone(),
        ..RunContext::default()
    };
    let changed = git::changed_files(&options.project_dir);
    let created = load::load(&options, &ctx, changed)?;
    Ok(Loaded {
        options,
        ctx,
        pipeline: created.pipeline,
        warnings: created.warnings,
        excluded: created.excluded,
    })
}

impl Loaded {
    /// The pipeline's jobs, in stage order.
    pub fn jobs(&self) -> &[Job] {
        &self.pipeline.jobs
    }

    /// The jobs that run although GitLab would leave them out (`PipelineOptions::run_excluded`),
    /// with the reason, one line each. The jobs they need are kept too, but run only with
    /// `--needs` / `--only-needs`.
    pub fn run_anyway(&self, selection: &Selection) -> Vec<String> {
        let runs = |e: &Excluded| {
            selection.needs
                || selection.only_needs
                || selection
                    .jobs
                    .iter()
                    .any(|n| *n == e.name || *n == e.base_name)
        };
        self.excluded
            .iter()
            .filter(|e| self.pipeline.jobs.iter().any(|j| j.name == e.name) && runs(e))
            .map(|e| {
                format!(
                    "{}: runs although GitLab would leave it out of the pipeline: {} ({})",
                    e.name, e.reason, e.location
                )
            })
            .collect()
    }

    /// Selects the jobs to run, loads the child pipelines of the selected trigger jobs, and
    /// builds one schedule. Takes the next pipeline number from the state directory (creating
    /// it, with its `logs/`).
    pub fn create(self, selection: &Selection) -> Result<LocalPipeline, CreateError> {
        let Loaded {
            options,
            mut ctx,
            pipeline,
            excluded,
            ..
        } = self;
        prepare_state_dir(&options.state_dir)?;
        ctx.pipeline_iid = next_pipeline_iid(&options.state_dir);
        ctx.pipeline_id = ctx.pipeline_iid;

        let jobs = &pipeline.jobs;
        let index_of = index_by_name(jobs);
        let needs_of = |job: &Job| job_needs(job, &index_of, 0);
        let candidates: Vec<Candidate<'_>> = jobs
            .iter()
            .map(|j| Candidate {
                name: &j.name,
                stage: &j.stage,
                stage_index: j.stage_index,
                needs: needs_of(j),
            })
            .collect();
        let (selected, named) = select(&candidates, &excluded, selection)?;
        let position: HashMap<usize, usize> =
            selected.iter().enumerate().map(|(s, &p)| (p, s)).collect();
        let mut schedule_jobs: Vec<ScheduleJob> = selected
            .iter()
            .map(|&p| {
                let needs = needs_of(&jobs[p])
                    .map(|n| n.iter().filter_map(|i| position.get(i).copied()).collect());
                schedule_job(&jobs[p], needs, 0, None)
            })
            .collect();
        let mut units: Vec<Unit> = selected
            .iter()
            .map(|&p| Unit {
                pipeline: 0,
                job: p,
            })
            .collect();
        let mut names: Vec<String> = selected.iter().map(|&p| jobs[p].name.clone()).collect();
        let mut children: Vec<load::Child> = Vec::new();
        let mut bridges: HashMap<usize, Bridge> = HashMap::new();
        for (s, &p) in selected.iter().enumerate() {
            let job = &jobs[p];
            if job.kind != JobKind::Trigger {
                continue;
            }
            let number = children.len() as u64 + 1;
            let child = match load::load_child(&options, &ctx, job, number) {
                Ok(child) => child,
                Err(LoadError::Config(rendered)) => return Err(CreateError::Config(rendered)),
                Err(LoadError::NoPipeline { .. }) => None,
            };
            let Some(child) = child else {
                bridges.insert(
                    s,
                    Bridge {
                        child: None,
                        depend: false,
                        upstream: job.upstream.clone(),
                    },
                );
                continue;
            };
            let pipeline_no = children.len() + 1;
            let offset = schedule_jobs.len();
            let child_jobs = &child.pipeline.jobs;
            let child_index = index_by_name(child_jobs);
            for (j, child_job) in child_jobs.iter().enumerate() {
                let needs = job_needs(child_job, &child_index, offset);
                schedule_jobs.push(schedule_job(child_job, needs, pipeline_no, Some(s)));
                units.push(Unit {
                    pipeline: pipeline_no,
                    job: j,
                });
                names.push(format!("[{}] -> {}", job.name, child_job.name));
            }
            bridges.insert(
                s,
                Bridge {
                    child: Some(pipeline_no),
                    depend: child.depend,
                    upstream: None,
                },
            );
            children.push(child);
        }
        let mut schedule = Schedule::new(schedule_jobs);
        for &p in &named {
            if let Some(&s) = position.get(&p) {
                schedule.play(s);
                ctx.played.push(jobs[p].name.clone());
            }
        }
        for name in &selection.manual {
            let found: Vec<usize> = selected
                .iter()
                .enumerate()
                .filter(|(_, p)| jobs[**p].name == *name)
                .map(|(s, _)| s)
                .collect();
            if found.is_empty() && !index_of.contains_key(name.as_str()) {
                if let Some(err) = crate::select::excluded_error(&excluded, name) {
                    return Err(err.into());
                }
                return Err(SelectError::UnknownManual { name: name.clone() }.into());
            }
            for s in found {
                schedule.play(s);
                ctx.played.push(name.clone());
            }
        }

        ctx.files_keys = files_keys(&options.project_dir, jobs);
        let log_dir = options.state_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|source| CreateError::StateDir {
            path: log_dir.clone(),
            source,
        })?;

        let mut ctxs = vec![ctx];
        let mut pipelines = vec![pipeline];
        for mut child in children {
            child.ctx.files_keys = ctxs[0].files_keys.clone();
            ctxs.push(child.ctx);
            pipelines.push(child.pipeline);
        }
        Ok(LocalPipeline {
            options,
            schedule,
            pipelines,
            ctxs,
            units,
            names,
            bridges,
        })
    }
}

/// Creates `.runnel/` with a `.gitignore` that ignores everything in it.
fn prepare_state_dir(dir: &Path) -> Result<(), CreateError> {
    std::fs::create_dir_all(dir).map_err(|source| CreateError::StateDir {
        path: dir.to_owned(),
        source,
    })?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").map_err(|source| CreateError::StateDir {
            path: ignore.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The next pipeline number of this project (`CI_PIPELINE_IID`), kept in `.runnel/pipeline-iid`.
fn next_pipeline_iid(dir: &Path) -> u64 {
    let path = dir.join("pipeline-iid");
    let last: u64 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let next = last + 1;
    let _ = std::fs::write(&path, next.to_string());
    next
}

/// Each job's index in `jobs`, by name.
fn index_by_name(jobs: &[Job]) -> HashMap<&str, usize> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect()
}

/// The indices (plus `offset`) of the jobs `job` needs; `None` when it has no `needs:`.
fn job_needs(job: &Job, index: &HashMap<&str, usize>, offset: usize) -> Option<Vec<usize>> {
    job.needs.as_ref().map(|needs| {
        needs
            .iter()
            .filter_map(|need| match need {
                runnel_pipeline::job::Need::Job { job, .. } => {
                    index.get(job.as_str()).map(|i| i + offset)
                }
                _ => None,
            })
            .collect()
    })
}

/// A job's entry in the schedule.
fn schedule_job(
    job: &Job,
    needs: Option<Vec<usize>>,
    pipeline: usize,
    trigger: Option<usize>,
) -> ScheduleJob {
    ScheduleJob {
        name: job.name.clone(),
        stage_index: job.stage_index,
        needs,
        when: job.when.clone(),
        allow_failure: job.allow_failure.clone(),
        retry: job
            .retry
            .as_ref()
            .map_or_else(RetryPolicy::default, |r| RetryPolicy {
                max: u32::from(r.max),
                when: r.when.clone(),
                exit_codes: (!r.exit_codes.is_empty()).then(|| {
                    r.exit_codes
                        .iter()
                        .filter_map(|c| i32::try_from(*c).ok())
                        .collect()
                }),
            }),
        pipeline,
        trigger,
    }
}

/// `cache:key:files` digests. GitLab hashes the ids of the files' last commits; runnel hashes
/// their content, so an edit that is not committed yet also changes the key; a local run has
/// no server-side history of the files to ask.
fn files_keys(project_dir: &Path, jobs: &[runnel_pipeline::job::Job]) -> HashMap<String, String> {
    use sha2::{Digest as _, Sha256};
    let mut keys = HashMap::new();
    for job in jobs {
        for cache in &job.cache {
            let runnel_pipeline::job::CacheKey::Files { files, .. } = &cache.key else {
                continue;
            };
            let joined = files.join("\n");
            if keys.contains_key(&joined) {
                continue;
            }
            let mut ids: Vec<String> = files
                .iter()
                .filter_map(|f| std::fs::read(project_dir.join(f)).ok())
                .map(|content| hex::encode(Sha256::digest(&content)))
                .collect();
            if ids.is_empty() {
                continue;
            }
            ids.sort();
            ids.dedup();
            let digest = hex::encode(Sha256::digest(ids.join("-").as_bytes()));
            keys.insert(joined, digest[..40].to_owned());
        }
    }
    keys
}
