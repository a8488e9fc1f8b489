//! Loads `.gitlab-ci.yml` and creates the pipeline for this run's context (and, for trigger
//! jobs, their child pipelines). Mistakes in the configuration come back rendered, as `runnel
//! lint` prints them.

use runnel_pipeline::diag::{Diagnostics, render_plain};
use runnel_pipeline::pipeline::{Creation, Pipeline, PipelineContext, RefType};
use runnel_pipeline::plan::RunContext;
use runnel_pipeline::resolve::{self, LoadOptions};
use runnel_pipeline::source::SourceMap;

use crate::options::PipelineOptions;
use crate::select::SelectError;

/// Why there is no pipeline to run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// Mistakes in the configuration, rendered as `runnel lint` prints them.
    #[error("{0}")]
    Config(String),
    /// GitLab would create no pipeline (workflow rules, or no job left): nothing to do.
    #[error("no pipeline: {reason}")]
    NoPipeline {
        /// GitLab's message.
        reason: &'static str,
        /// The warnings GitLab would show, rendered.
        warnings: String,
        /// The jobs of the configuration, and why each is not in the pipeline.
        excluded: Vec<Excluded>,
    },
}

impl LoadError {
    /// For a pipeline GitLab would not create: why the first of `jobs` that the configuration
    /// defines is not in it.
    pub fn explain(&self, jobs: &[String]) -> Option<SelectError> {
        let LoadError::NoPipeline { excluded, .. } = self else {
            return None;
        };
        jobs.iter()
            .find_map(|name| crate::select::excluded_error(excluded, name))
    }
}

/// A job of the configuration that is not in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// Its name (a parallel instance's full name).
    pub name: String,
    /// Its name as written (a parallel job's group).
    pub base_name: String,
    /// Why it is not in the pipeline (`rule 2 of its `rules` matched with `when: never``).
    pub reason: String,
    /// Where the job is defined (`file:line:column`).
    pub location: String,
}

/// A pipeline as GitLab creates it, the warnings GitLab would show (rendered), and the jobs that
/// are not in it.
pub(crate) struct Created {
    pub(crate) pipeline: Pipeline,
    pub(crate) warnings: String,
    pub(crate) excluded: Vec<Excluded>,
}

/// The pipeline for this run.
pub(crate) fn load(
    opts: &PipelineOptions,
    ctx: &RunContext,
    changed_files: Option<Vec<String>>,
) -> Result<Created, LoadError> {
    let mut sources = SourceMap::new();
    let path = opts.project_dir.join(&opts.file);
    let config = resolve::load(&mut sources, &path, &load_options(opts, ctx))
        .map_err(|diags| config_error(&diags, &sources))?;
    let pipeline_context = pipeline_context(opts, ctx, changed_files);
    let pipeline =
        Pipeline::from_root_including(&config.root, &pipeline_context, &opts.run_excluded)
            .map_err(|diags| config_error(&diags, &sources))?;
    let warnings = if pipeline.warnings.is_empty() {
        String::new()
    } else {
        render_plain(&pipeline.warnings.0, &sources)
    };
    let excluded: Vec<Excluded> = pipeline
        .excluded
        .iter()
        .map(|job| Excluded {
            name: job.name.clone(),
            base_name: job.base_name.clone(),
            reason: job.reason.to_string(),
            location: sources.location(job.span),
        })
        .collect();
    match pipeline.creation {
        Creation::Created => Ok(Created {
            pipeline,
            warnings,
            excluded,
        }),
        // GitLab's messages: lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb, seed.rb.
        Creation::FilteredOutByWorkflow => Err(LoadError::NoPipeline {
            reason: "pipeline filtered out by workflow rules",
            warnings,
            excluded,
        }),
        Creation::NoJobs => Err(LoadError::NoPipeline {
            reason: "the rules configuration prevented any jobs from being added to the pipeline",
            warnings,
            excluded,
        }),
    }
}

/// A child pipeline (`trigger:include`), created when its trigger job runs.
pub(crate) struct Child {
    /// The child's jobs.
    pub(crate) pipeline: Pipeline,
    /// Its context: its own pipeline id, source `parent_pipeline`, and the trigger job's
    /// variables as pipeline variables.
    pub(crate) ctx: RunContext,
    /// `strategy: depend`: the trigger job's status is the child pipeline's.
    pub(crate) depend: bool,
}

/// Loads the child pipeline of trigger job `bridge`. GitLab: the trigger job's YAML variables
/// (global ones included) become the child's pipeline variables, and the parent's pipeline
/// variables only with `forward: pipeline_variables: true`
/// (app/models/ci/bridge.rb `downstream_variables`).
pub(crate) fn load_child(
    opts: &PipelineOptions,
    parent: &RunContext,
    bridge: &runnel_pipeline::job::Job,
    number: u64,
) -> Result<Option<Child>, LoadError> {
    let Some(trigger) = &bridge.trigger else {
        return Ok(None);
    };
    let Some(include) = &trigger.include else {
        return Ok(None);
    };
    let forward = |key: &str, default: bool| {
        trigger
            .forward
            .as_ref()
            .and_then(|f| f.get(key))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(default)
    };
    let mut ctx = parent.clone();
    ctx.pipeline_id = parent.pipeline_id * 100 + number;
    ctx.pipeline_iid = ctx.pipeline_id;
    ctx.pipeline_source = "parent_pipeline".to_owned();
    ctx.dotenv.clear();
    ctx.finished.clear();
    ctx.played.clear();
    if !forward("pipeline_variables", false) {
        ctx.pipeline_variables.clear();
    }
    if forward("yaml_variables", true) {
        ctx.pipeline_variables.extend(
            bridge
                .variables
                .iter()
                .map(|v| runnel_api::JobVariable::new(&v.name, &v.value)),
        );
    }
    let mut sources = SourceMap::new();
    let text = format!("include: {include}\n");
    let display = format!(
        "{} (trigger:include of `{}`)",
        opts.file.display(),
        bridge.name
    );
    let config = resolve::load_str(&mut sources, &display, text, &load_options(opts, &ctx))
        .map_err(|diags| config_error(&diags, &sources))?;
    let pipeline_context = pipeline_context(opts, &ctx, None);
    let pipeline = Pipeline::from_root(&config.root, &pipeline_context)
        .map_err(|diags| config_error(&diags, &sources))?;
    let depend = trigger.strategy.as_deref() == Some("depend");
    Ok((pipeline.creation == Creation::Created).then_some(Child {
        pipeline,
        ctx,
        depend,
    }))
}

fn config_error(diags: &Diagnostics, sources: &SourceMap) -> LoadError {
    LoadError::Config(render_plain(&diags.0, sources))
}

/// The variables the planner knows before any job (predefined, project and pipeline ones), for
/// `include` paths and `rules:if`.
fn load_options<'a>(opts: &'a PipelineOptions, ctx: &RunContext) -> LoadOptions<'a> {
    let mut load_options = LoadOptions::new(&opts.project_dir);
    load_options.projects_dir = opts.projects_dir.clone();
    load_options.variables = runnel_pipeline::plan::pipeline_variables(ctx)
        .into_iter()
        .map(|v| (v.key, v.value))
        .chain(user_variables(ctx))
        .collect();
    load_options
}

/// The project's and the pipeline's variables, in that order.
fn user_variables(ctx: &RunContext) -> Vec<(String, String)> {
    ctx.project_variables
        .iter()
        .chain(&ctx.pipeline_variables)
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

fn pipeline_context(
    opts: &PipelineOptions,
    ctx: &RunContext,
    changed_files: Option<Vec<String>>,
) -> PipelineContext {
    PipelineContext {
        ref_name: ctx.git.ref_name.clone(),
        ref_type: if ctx.git.is_tag {
            RefType::Tag
        } else {
            RefType::Branch
        },
        source: ctx.pipeline_source.clone(),
        default_branch: ctx.git.default_branch.clone(),
        variables: user_variables(ctx),
        changed_files,
        project_dir: Some(opts.project_dir.clone()),
        merge_request: None,
        commit_sha: Some(ctx.git.sha.clone()).filter(|s| !s.is_empty()),
        project_path: Some(ctx.project.path.clone()),
    }
}
