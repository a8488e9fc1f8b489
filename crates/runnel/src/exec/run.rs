//! One `runnel exec` run: load the pipeline, select and schedule its jobs, run them through the
//! shell executor, report.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use runnel_pipeline::job::{Job, JobKind};
use runnel_pipeline::plan::{self, RunContext};
use runnel_pipeline::schedule::{RetryPolicy, Schedule, ScheduleJob};

use crate::exec::driver::{Bridge, Driver};
use crate::exec::load::{self, LoadError};
use crate::exec::select::{Candidate, Selection, select};
use crate::exec::{git, shell, varfile};
use crate::exit_code;
use crate::report::{Console, JobRecord, Json, Reporter};

/// What the command line asked for, resolved to absolute paths.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) project_dir: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) projects_dir: Option<PathBuf>,
    pub(crate) file: PathBuf,
    pub(crate) jobs: Vec<String>,
    pub(crate) stage: Option<String>,
    pub(crate) needs: bool,
    pub(crate) only_needs: bool,
    pub(crate) manual: Vec<String>,
    pub(crate) vars: Vec<String>,
    pub(crate) variables_file: Option<PathBuf>,
    pub(crate) concurrency: usize,
    pub(crate) list: bool,
    pub(crate) json: bool,
    pub(crate) rerun_prefix: String,
    /// `--executor docker`: the Docker executor's settings; `None` runs jobs in the shell.
    pub(crate) docker: Option<runnel_exec::docker::DockerConfig>,
}

/// The Docker settings of `runnel exec --executor docker`: images are pulled only when missing
/// (a job's `pull_policy` may ask for any policy); a job without `image:` fails with a
/// configuration error; files the containers write go back to the project's owner.
pub(crate) fn local_docker_config(project_dir: &Path) -> runnel_exec::docker::DockerConfig {
    use runnel_exec::docker::{DockerConfig, PullPolicy};
    DockerConfig {
        builds_owner: DockerConfig::owner_unless_root(project_dir),
        pull_policy: vec![PullPolicy::IfNotPresent],
        allowed_pull_policies: vec![
            PullPolicy::Always,
            PullPolicy::IfNotPresent,
            PullPolicy::Never,
        ],
        ..DockerConfig::default()
    }
}

pub(crate) fn run(opts: Options) -> anyhow::Result<ExitCode> {
    let project_variables = match &opts.variables_file {
        Some(path) => varfile::read(path)?,
        None => Vec::new(),
    };
    let pipeline_variables = opts
        .vars
        .iter()
        .map(|v| varfile::parse_cli(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = git::read(&opts.project_dir);
    let mut ctx = RunContext {
        pipeline_source: "push".into(),
        config_path: opts.file.display().to_string(),
        git: meta.git,
        project: meta.project,
        user: meta.user,
        repo_url: opts.project_dir.display().to_string(),
        project_variables,
        pipeline_variables,
        ..RunContext::default()
    };

    let changed = git::changed_files(&opts.project_dir);
    let pipeline = match load::load(&opts, &ctx, changed) {
        Ok(pipeline) => pipeline,
        Err(LoadError::Config(rendered)) => return Ok(config_error(&opts, &rendered)),
        Err(LoadError::NoPipeline(why)) => {
            eprintln!("no pipeline: {why}");
            if opts.json {
                println!("{}", serde_json::json!({"status": "skipped", "jobs": []}));
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if opts.list {
        print_list(&pipeline.jobs);
        return Ok(ExitCode::SUCCESS);
    }

    prepare_state_dir(&opts.state_dir)?;
    ctx.pipeline_iid = next_pipeline_iid(&opts.state_dir);
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
    let selection = Selection {
        jobs: &opts.jobs,
        stage: opts.stage.as_deref(),
        needs: opts.needs,
        only_needs: opts.only_needs,
    };
    let (selected, named) = match select(&candidates, &selection) {
        Ok(selection) => selection,
        Err(err) => return Ok(user_error(&opts, &err.to_string())),
    };
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
    // Units: (pipeline, job index in that pipeline) for every scheduled job.
    let mut units: Vec<(usize, usize)> = selected.iter().map(|&p| (0, p)).collect();
    let mut names: Vec<String> = selected.iter().map(|&p| jobs[p].name.clone()).collect();
    let mut children: Vec<load::Child> = Vec::new();
    let mut bridges: HashMap<usize, Bridge> = HashMap::new();
    for (s, &p) in selected.iter().enumerate() {
        let job = &jobs[p];
        if job.kind != JobKind::Trigger {
            continue;
        }
        let number = children.len() as u64 + 1;
        let child = match load::load_child(&opts, &ctx, job, number) {
            Ok(child) => child,
            Err(LoadError::Config(rendered)) => return Ok(config_error(&opts, &rendered)),
            Err(LoadError::NoPipeline(_)) => None,
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
            units.push((pipeline_no, j));
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
    for name in &opts.manual {
        let found: Vec<usize> = selected
            .iter()
            .enumerate()
            .filter(|(_, p)| jobs[**p].name == *name)
            .map(|(s, _)| s)
            .collect();
        if found.is_empty() && !index_of.contains_key(name.as_str()) {
            let message = format!("`--manual {name}`: no job of the pipeline has this name");
            return Ok(user_error(&opts, &message));
        }
        for s in found {
            schedule.play(s);
            ctx.played.push(name.clone());
        }
    }

    ctx.files_keys = files_keys(&opts.project_dir, jobs);
    let log_dir = opts.state_dir.join("logs");
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("failed to create `{}`", log_dir.display()))?;

    let mut ctxs = vec![ctx];
    for child in &mut children {
        child.ctx.files_keys = ctxs[0].files_keys.clone();
        ctxs.push(child.ctx.clone());
    }
    let job_of = |(pipeline, j): (usize, usize)| {
        if pipeline == 0 {
            &jobs[j]
        } else {
            &children[pipeline - 1].pipeline.jobs[j]
        }
    };
    let records: Vec<JobRecord> = units
        .iter()
        .zip(&names)
        .map(|(&(pipeline, j), name)| JobRecord {
            name: name.clone(),
            stage: job_of((pipeline, j)).stage.clone(),
            status: "created",
            id: ctxs[pipeline].job_id(j),
            ..JobRecord::default()
        })
        .collect();
    let mut reporter: Box<dyn Reporter> = if opts.json {
        Box::new(Json)
    } else {
        Box::new(Console::new(&records))
    };
    if !opts.json && opts.docker.is_none() {
        for (i, job) in jobs.iter().enumerate() {
            if !position.contains_key(&i) {
                continue;
            }
            if let Some(image) = &job.image {
                println!(
                    "{}: `image: {}` is ignored by the shell executor",
                    job.name, image.name
                );
            }
            if !job.services.is_empty() {
                println!(
                    "{}: `services:` are ignored by the shell executor",
                    job.name
                );
            }
        }
    }
    let coverage_patterns: Vec<Option<&str>> = units
        .iter()
        .map(|&u| job_of(u).coverage.as_deref())
        .collect();
    let coverage = |i: usize, output: &[String]| -> Option<String> {
        let pattern = coverage_patterns.get(i).copied().flatten()?;
        runnel_exec::extract_coverage(pattern, &output.join("\n"))
    };
    let planner = |i: usize, ctx: &RunContext| {
        let (pipeline, j) = units[i];
        let jobs = if pipeline == 0 {
            jobs
        } else {
            &children[pipeline - 1].pipeline.jobs
        };
        plan::plan_job(jobs, j, ctx)
    };
    let runner = Arc::new(
        shell::ShellRunner::new(&opts.project_dir, &opts.state_dir)
            .with_docker(opts.docker.clone()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.concurrency.clamp(1, 4))
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let driver = Driver {
        runner,
        schedule,
        records,
        ctxs,
        unit_pipeline: units.iter().map(|&(pipeline, _)| pipeline).collect(),
        bridges,
        resource_groups: units
            .iter()
            .map(|&u| job_of(u).resource_group.clone())
            .collect(),
        planner: &planner,
        coverage: &coverage,
        concurrency: opts.concurrency,
        log_dir: Some(log_dir),
        reporter: reporter.as_mut(),
    };
    let mut summary = runtime.block_on(driver.run());
    summary.rerun_prefix = opts.rerun_prefix.clone();
    reporter.finish(&summary);
    if !summary.blocking_manual.is_empty() && opts.json {
        let names: Vec<String> = summary
            .blocking_manual
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        eprintln!(
            "pipeline blocked by manual jobs {}; start them with --manual",
            names.join(", ")
        );
    }
    let code = if summary.interrupted {
        exit_code::INTERRUPTED
    } else if summary.passed {
        exit_code::SUCCESS
    } else {
        exit_code::FAILURE
    };
    let _ = std::io::stdout().flush();
    Ok(ExitCode::from(code))
}

fn print_list(jobs: &[runnel_pipeline::job::Job]) {
    let name_w = jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let stage_w = jobs
        .iter()
        .map(|j| j.stage.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<name_w$}  {:<stage_w$}  {:<10}  {:<13}  needs",
        "name", "stage", "when", "allow_failure"
    );
    for job in jobs {
        let needs = match &job.needs {
            None => String::new(),
            Some(needs) => {
                let names: Vec<&str> = needs
                    .iter()
                    .filter_map(|n| match n {
                        runnel_pipeline::job::Need::Job { job, .. } => Some(job.as_str()),
                        _ => None,
                    })
                    .collect();
                format!("[{}]", names.join(", "))
            }
        };
        let allow = match &job.allow_failure {
            runnel_pipeline::when::AllowFailure::Bool(b) => b.to_string(),
            runnel_pipeline::when::AllowFailure::ExitCodes { exit_codes } => {
                format!("{exit_codes:?}")
            }
        };
        println!(
            "{:<name_w$}  {:<stage_w$}  {:<10}  {:<13}  {needs}",
            job.name,
            job.stage,
            job.when.as_str(),
            allow
        );
    }
}

/// Creates `.runnel/` with a `.gitignore` that ignores everything in it.
fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n")
            .with_context(|| format!("failed to write `{}`", ignore.display()))?;
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

/// Mistakes in the configuration: the rendered diagnostics (and, with `--json`, a document
/// that carries them), exit 1.
fn config_error(opts: &Options, rendered: &str) -> ExitCode {
    eprint!("{rendered}");
    if opts.json {
        let doc = serde_json::json!({"status": "error", "error": rendered, "jobs": []});
        println!("{doc}");
    }
    ExitCode::from(exit_code::FAILURE)
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

/// A mistake on the command line: printed (and, with `--json`, given as the document), exit 1.
fn user_error(opts: &Options, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    if opts.json {
        println!(
            "{}",
            serde_json::json!({"status": "error", "error": message, "jobs": []})
        );
    }
    ExitCode::from(exit_code::FAILURE)
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
