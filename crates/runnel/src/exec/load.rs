//! Loads `.gitlab-ci.yml` and creates the pipeline for this run's context. Mistakes in the
//! configuration come back rendered, as `runnel lint` prints them.

use runnel_pipeline::diag::{Diagnostics, render_plain};
use runnel_pipeline::pipeline::{Creation, Pipeline, PipelineContext, RefType};
use runnel_pipeline::plan::RunContext;
use runnel_pipeline::resolve::{self, LoadOptions};
use runnel_pipeline::source::SourceMap;

use crate::exec::run::Options;

/// Why there is no pipeline to run.
pub(crate) enum LoadError {
    /// Mistakes in the configuration, rendered.
    Config(String),
    /// GitLab would create no pipeline (workflow rules, or no job left): nothing to do.
    NoPipeline(&'static str),
}

/// The pipeline for this run.
pub(crate) fn load(
    opts: &Options,
    ctx: &RunContext,
    changed_files: Option<Vec<String>>,
) -> Result<Pipeline, LoadError> {
    let mut sources = SourceMap::new();
    let render = |diags: &Diagnostics, sources: &SourceMap| {
        LoadError::Config(render_plain(&diags.0, sources))
    };
    let user_variables: Vec<(String, String)> = ctx
        .project_variables
        .iter()
        .chain(&ctx.pipeline_variables)
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    let mut load_options = LoadOptions::new(&opts.project_dir);
    let mut include_variables: Vec<(String, String)> =
        runnel_pipeline::plan::pipeline_variables(ctx)
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect();
    include_variables.extend(user_variables.iter().cloned());
    load_options.variables = include_variables;
    let path = opts.project_dir.join(&opts.file);
    let config = resolve::load(&mut sources, &path, &load_options)
        .map_err(|diags| render(&diags, &sources))?;
    let pipeline_context = PipelineContext {
        ref_name: ctx.git.ref_name.clone(),
        ref_type: if ctx.git.is_tag {
            RefType::Tag
        } else {
            RefType::Branch
        },
        source: ctx.pipeline_source.clone(),
        default_branch: ctx.git.default_branch.clone(),
        variables: user_variables,
        changed_files,
        project_dir: Some(opts.project_dir.clone()),
        merge_request: None,
        commit_sha: Some(ctx.git.sha.clone()).filter(|s| !s.is_empty()),
        project_path: Some(ctx.project.path.clone()),
    };
    let pipeline = Pipeline::from_root(&config.root, &pipeline_context)
        .map_err(|diags| render(&diags, &sources))?;
    match pipeline.creation {
        Creation::Created => Ok(pipeline),
        // GitLab's messages: lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb, seed.rb.
        Creation::FilteredOutByWorkflow => Err(LoadError::NoPipeline(
            "pipeline filtered out by workflow rules",
        )),
        Creation::NoJobs => Err(LoadError::NoPipeline(
            "the rules configuration prevented any jobs from being added to the pipeline",
        )),
    }
}
