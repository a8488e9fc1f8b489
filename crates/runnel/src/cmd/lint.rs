//! `runnel lint`: loads a `.gitlab-ci.yml` (includes, `extends`, `!reference`, rules) for one
//! pipeline context and prints the resolved pipeline as a table or JSON, or the errors.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use runnel_pipeline::context::{PipelineContext, RefType};
use runnel_pipeline::diag::{Diagnostics, render_json, render_plain};
use runnel_pipeline::include::Fetcher;
use runnel_pipeline::job::{Job, Need};
use runnel_pipeline::pipeline::{Creation, Pipeline};
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;
use runnel_pipeline::when::{AllowFailure, When};

use crate::exit_code;
use crate::user_error::ResultExt as _;
use runnel_local::git_line;

/// Arguments of `runnel lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct LintArgs {
    /// The configuration to check.
    #[arg(default_value = ".gitlab-ci.yml")]
    file: PathBuf,
    /// The branch or tag the pipeline runs for (default: the current git branch).
    #[arg(long = "ref", value_name = "REF")]
    ref_name: Option<String>,
    /// The ref is a tag, not a branch.
    #[arg(long)]
    tag: bool,
    /// `CI_PIPELINE_SOURCE`: push, web, schedule, merge_request_event, api, trigger, ...
    #[arg(long, default_value = "push")]
    source: String,
    /// The project's default branch (`CI_DEFAULT_BRANCH`; default: origin's HEAD, else `main`).
    #[arg(long, value_name = "BRANCH")]
    default_branch: Option<String>,
    /// A pipeline variable, `KEY=VALUE` (highest precedence; repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
    /// A file changed by the push, for `rules:changes` (repeatable; none given: changes are
    /// unknown and `changes` clauses are true, as in GitLab).
    #[arg(long = "changed", value_name = "PATH")]
    changed: Vec<String>,
    /// Print the resolved jobs (or the errors) as JSON.
    #[arg(long)]
    json: bool,
    /// Where checked-out projects live for `include:project`, `include:component` and
    /// `include:template` (`<dir>/<group>/<project>/<file>`).
    #[arg(long, value_name = "DIR")]
    projects_dir: Option<PathBuf>,
}

pub(crate) fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.clone();
    let project_dir = project_dir(&file)?;
    let context = context(&args, &project_dir)?;

    let fetcher = HttpFetcher;
    let mut opts = LoadOptions::new(&project_dir);
    opts.projects_dir = args.projects_dir.clone();
    opts.fetcher = Some(&fetcher);
    opts.variables = include_variables(&context, &project_dir);

    let mut sources = SourceMap::new();
    let path = if file.is_absolute() {
        file.clone()
    } else {
        std::env::current_dir()?.join(&file)
    };
    let result =
        load(&mut sources, &path, &opts).and_then(|config| Pipeline::new(&config, &context));
    let mut stdout = std::io::stdout().lock();
    match result {
        Ok(pipeline) => {
            print_warnings(&pipeline.warnings, &sources)?;
            if args.json {
                writeln!(stdout, "{}", pipeline.to_pretty_json())?;
            } else {
                write!(stdout, "{}", table(&pipeline, &context))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            report_errors(&diags, &sources, args.json)?;
            Ok(ExitCode::from(exit_code::FAILURE))
        }
    }
}

/// How many warnings are printed in full; GitLab itself keeps 25 per pipeline
/// (lib/gitlab/ci/warnings.rb, `MAX_LIMIT`), which is still too many for a terminal.
const SHOWN_WARNINGS: usize = 5;

fn print_warnings(warnings: &Diagnostics, sources: &SourceMap) -> anyhow::Result<()> {
    if warnings.is_empty() {
        return Ok(());
    }
    let shown = &warnings.0[..warnings.len().min(SHOWN_WARNINGS)];
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{}", render_plain(shown, sources))?;
    let hidden = warnings.len() - shown.len();
    if hidden > 0 {
        writeln!(
            stderr,
            "\n... and {hidden} more warning{}",
            if hidden == 1 { "" } else { "s" }
        )?;
    }
    writeln!(stderr)?;
    Ok(())
}

fn report_errors(diags: &Diagnostics, sources: &SourceMap, json: bool) -> anyhow::Result<()> {
    if json {
        let value = render_json(&diags.0, sources);
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&value)?
        )?;
    } else {
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{}", render_plain(&diags.0, sources))?;
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let noun = if errors == 1 { "error" } else { "errors" };
        writeln!(stderr, "\n{errors} {noun} in the configuration")?;
    }
    Ok(())
}

/// The directory `include:local` paths are relative to: the git top level that holds the file,
/// else the file's directory.
fn project_dir(file: &Path) -> anyhow::Result<PathBuf> {
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("failed to find the directory of `{}`", file.display()))
        .user_error()?;
    Ok(git_line(&dir, &["rev-parse", "--show-toplevel"]).map_or(dir, PathBuf::from))
}

/// The variables include locations and `include:rules` see, as `runnel exec` gives them: the
/// pipeline's predefined variables (`CI_SERVER_FQDN`, `CI_PROJECT_PATH`, … of the project that
/// `origin` names), then the `--var` ones. GitLab: lib/gitlab/ci/config/external/context.rb
/// (`variables_hash`) and mapper/variables_expander.rb (every string of an include is expanded,
/// so `component: $CI_SERVER_FQDN/...` works).
fn include_variables(context: &PipelineContext, project_dir: &Path) -> Vec<(String, String)> {
    let mut run = runnel_pipeline::plan::RunContext::default();
    if let Some(project) = git_line(project_dir, &["config", "--get", "remote.origin.url"])
        .as_deref()
        .and_then(runnel_local::project_from_remote)
    {
        run.project = project;
    }
    run.git.ref_name = context.ref_name.clone();
    run.git.is_tag = context.ref_type == RefType::Tag;
    run.git.default_branch = context.default_branch.clone();
    run.git.sha = context.commit_sha.clone().unwrap_or_default();
    run.pipeline_source = context.source.clone();
    let mut variables: Vec<(String, String)> = runnel_pipeline::plan::pipeline_variables(&run)
        .into_iter()
        .map(|v| (v.key, v.value))
        .collect();
    variables.extend(context.variables.iter().cloned());
    variables
}

fn context(args: &LintArgs, project_dir: &Path) -> anyhow::Result<PipelineContext> {
    let ref_name = match &args.ref_name {
        Some(r) => r.clone(),
        None => git_line(project_dir, &["rev-parse", "--abbrev-ref", "HEAD"])
            .filter(|b| b != "HEAD")
            .unwrap_or_else(|| "main".to_owned()),
    };
    let mut context = PipelineContext::push(ref_name);
    context.ref_type = if args.tag {
        RefType::Tag
    } else {
        RefType::Branch
    };
    context.source = args.source.clone();
    context.default_branch = match &args.default_branch {
        Some(b) => b.clone(),
        None => git_line(
            project_dir,
            &["symbolic-ref", "--short", "refs/remotes/origin/HEAD"],
        )
        .map(|b| b.trim_start_matches("origin/").to_owned())
        .unwrap_or_else(|| "main".to_owned()),
    };
    for var in &args.vars {
        let (key, value) = var
            .split_once('=')
            .with_context(|| format!("`--var {var}` is not of the form KEY=VALUE"))
            .user_error()?;
        context.variables.push((key.to_owned(), value.to_owned()));
    }
    if !args.changed.is_empty() {
        context.changed_files = Some(args.changed.clone());
    }
    context.project_dir = Some(project_dir.to_path_buf());
    context.commit_sha = git_line(project_dir, &["rev-parse", "HEAD"]);
    Ok(context)
}

/// The readable listing: one line per job with its stage, `when`, `allow_failure` and needs.
fn table(pipeline: &Pipeline, context: &PipelineContext) -> String {
    let kind = if context.ref_type == RefType::Tag {
        "tag"
    } else {
        "branch"
    };
    let mut out = String::new();
    match pipeline.creation {
        Creation::FilteredOutByWorkflow => {
            return format!(
                "no pipeline: `workflow:rules` exclude a {} pipeline for {kind} `{}`\n",
                context.source, context.ref_name
            );
        }
        Creation::NoJobs => out.push_str(&format!(
            "no pipeline: rules leave no job outside `.pre` and `.post` for {kind} `{}` ({})\n",
            context.ref_name, context.source
        )),
        Creation::Created => {}
    }
    if pipeline.jobs.is_empty() {
        return out;
    }
    if let Some(name) = &pipeline.workflow.name {
        out.push_str(&format!("pipeline: {name}\n"));
    }
    let rows: Vec<[String; 5]> = pipeline
        .jobs
        .iter()
        .map(|job| {
            [
                job.stage.clone(),
                job_name(job),
                when(&job.when),
                allow_failure(&job.allow_failure),
                needs(job),
            ]
        })
        .collect();
    let header = ["STAGE", "JOB", "WHEN", "ALLOW_FAILURE", "NEEDS"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let jobs = pipeline.jobs.len();
    let stages = pipeline.stages.len();
    out.push_str(&format!(
        "\n{jobs} job{} in {stages} stage{} for {kind} `{}` ({})\n",
        if jobs == 1 { "" } else { "s" },
        if stages == 1 { "" } else { "s" },
        context.ref_name,
        context.source
    ));
    out
}

fn job_name(job: &Job) -> String {
    if job.is_runnable_locally() {
        job.name.clone()
    } else {
        format!("{} (trigger)", job.name)
    }
}

fn when(when: &When) -> String {
    match when {
        When::Delayed { start_in, .. } => format!("delayed ({start_in})"),
        other => other.as_str().to_owned(),
    }
}

fn allow_failure(allow: &AllowFailure) -> String {
    match allow {
        AllowFailure::Bool(b) => b.to_string(),
        AllowFailure::ExitCodes { exit_codes } => {
            let codes: Vec<String> = exit_codes.iter().map(ToString::to_string).collect();
            format!("exit codes {}", codes.join(", "))
        }
    }
}

fn needs(job: &Job) -> String {
    match &job.needs {
        None => "-".to_owned(),
        Some(needs) if needs.is_empty() => "[]".to_owned(),
        Some(needs) => needs
            .iter()
            .map(|n| match n {
                Need::Job {
                    job,
                    optional: true,
                    ..
                } => format!("{job}?"),
                Need::Job { job, .. } => job.clone(),
                Need::Pipeline { pipeline, job, .. } => format!("{job}@pipeline {pipeline}"),
                Need::Project { project, job, .. } => format!("{job}@{project}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Fetches `include:remote` files over HTTPS (blocking; lint has no async runtime).
struct HttpFetcher;

impl Fetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<String, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(url).send().map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status.to_string());
        }
        response.text().map_err(|e| error_chain(&e))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
