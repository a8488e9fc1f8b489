//! One `runnel exec` run: hands the options to runnel-local, prints what it reports.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum as _;
use runnel_local::{CreateError, LoadError, LocalExecutor, PipelineOptions, Reporter, Selection};

use crate::exit_code;
use crate::report::{Console, Json};
use crate::user_error::ResultExt as _;

/// What the command line asked for, resolved to absolute paths.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) pipeline: PipelineOptions,
    pub(crate) selection: Selection,
    pub(crate) concurrency: usize,
    pub(crate) executor: LocalExecutor,
    pub(crate) list: bool,
    pub(crate) json: bool,
    pub(crate) rerun_prefix: String,
}

/// Reads `--variables-file` and `--var` into `options`.
pub(crate) fn read_variables(
    pipeline: &mut PipelineOptions,
    variables_file: Option<&PathBuf>,
    vars: &[String],
) -> anyhow::Result<()> {
    if let Some(path) = variables_file {
        pipeline.project_variables = crate::exec::varfile::read(path).user_error()?;
    }
    pipeline.pipeline_variables = vars
        .iter()
        .map(|v| crate::exec::varfile::parse_cli(v))
        .collect::<anyhow::Result<Vec<_>>>()
        .user_error()?;
    Ok(())
}

pub(crate) fn run(opts: Options) -> anyhow::Result<ExitCode> {
    let loaded = match runnel_local::load(opts.pipeline) {
        Ok(loaded) => loaded,
        Err(err) => return Ok(load_error(&err, &opts.selection, opts.json)),
    };
    eprint!("{}", loaded.warnings);
    for line in loaded.run_anyway(&opts.selection) {
        eprintln!("{line}");
    }
    if opts.list {
        print_list(loaded.jobs());
        print_excluded(&loaded.excluded);
        return Ok(ExitCode::SUCCESS);
    }
    let pipeline = match loaded.create(&opts.selection) {
        Ok(pipeline) => pipeline,
        Err(CreateError::Config(rendered)) => return Ok(config_error(opts.json, &rendered)),
        Err(CreateError::Select(err)) => return Ok(user_error(opts.json, &err.to_string())),
        Err(err @ CreateError::StateDir { .. }) => return Err(err.into()),
    };
    let records = pipeline.records();
    let mut reporter: Box<dyn Reporter> = if opts.json {
        Box::new(Json)
    } else {
        let executor = opts
            .executor
            .kind
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned());
        Box::new(Console::new(&records, opts.rerun_prefix.clone(), executor))
    };
    if !opts.json {
        for job in pipeline.root_jobs() {
            for notice in opts.executor.kind.notices(job) {
                println!("{notice}");
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.concurrency.clamp(1, 4))
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let summary = runtime.block_on(runnel_local::run(
        pipeline,
        opts.executor.clone(),
        opts.concurrency,
        reporter.as_mut(),
    ));
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

/// The jobs of the file that the pipeline leaves out, with the reason (after `--list`).
fn print_excluded(excluded: &[runnel_local::Excluded]) {
    if excluded.is_empty() {
        return;
    }
    let name_w = excluded
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    println!("\nnot in this pipeline (`--ignore-rules JOB` runs one anyway):");
    for job in excluded {
        println!("  {:<name_w$}  {}", job.name, job.reason);
    }
}

/// No pipeline to run: a mistake in the configuration, or GitLab would create none (an error
/// when a job was named: it says why that job is left out).
fn load_error(err: &LoadError, selection: &Selection, json: bool) -> ExitCode {
    match err {
        LoadError::Config(rendered) => config_error(json, rendered),
        LoadError::NoPipeline {
            reason, warnings, ..
        } => {
            eprint!("{warnings}");
            if let Some(why) = err.explain(&selection.jobs) {
                return user_error(json, &why.to_string());
            }
            eprintln!("no pipeline: {reason}");
            if json {
                println!("{}", serde_json::json!({"status": "skipped", "jobs": []}));
            }
            ExitCode::SUCCESS
        }
    }
}

/// Mistakes in the configuration: the rendered diagnostics (and, with `--json`, a document
/// that carries them), exit 2.
fn config_error(json: bool, rendered: &str) -> ExitCode {
    eprint!("{rendered}");
    if json {
        let doc = serde_json::json!({"status": "error", "error": rendered, "jobs": []});
        println!("{doc}");
    }
    ExitCode::from(exit_code::USER_ERROR)
}

/// A mistake on the command line: printed (and, with `--json`, given as the document), exit 2.
fn user_error(json: bool, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    if json {
        println!(
            "{}",
            serde_json::json!({"status": "error", "error": message, "jobs": []})
        );
    }
    ExitCode::from(exit_code::USER_ERROR)
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
