//! `runnel exec`: runs the repository's pipeline on this machine, with GitLab's semantics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use clap::ValueEnum as _;
use runnel_local::{ExecutorKind, KubeTarget, PipelineOptions, Selection};

use crate::exec::{self, Options};
use crate::user_error::ResultExt as _;

/// Arguments of `runnel exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Run only these jobs (a parallel group's name selects every instance). Named manual jobs
    /// run too.
    #[arg(value_name = "JOB")]
    jobs: Vec<String>,
    /// Also run the needs of the named jobs, transitively.
    #[arg(long)]
    needs: bool,
    /// Run the needs of the named jobs, transitively, but not the jobs themselves.
    #[arg(long, conflicts_with = "needs")]
    only_needs: bool,
    /// Run only the jobs of this stage.
    #[arg(long, value_name = "STAGE")]
    stage: Option<String>,
    /// Run the named jobs even when `workflow:rules`, their `rules` or `only`/`except` leave
    /// them out of the pipeline (as gitlab-ci-local runs named jobs). Without it, runnel says
    /// which rule left such a job out.
    #[arg(long, requires = "jobs")]
    ignore_rules: bool,
    /// Start this manual job (or run this delayed job now). Repeatable.
    #[arg(long, value_name = "JOB")]
    manual: Vec<String>,
    /// A pipeline variable, as in GitLab's "Run pipeline" form: highest precedence. Repeatable.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
    /// A YAML mapping of project CI/CD variables: `NAME: value` or `NAME: {value, masked, file}`.
    #[arg(long, value_name = "FILE")]
    variables_file: Option<PathBuf>,
    /// The pipeline file, relative to the project directory.
    #[arg(long, value_name = "FILE", default_value = ".gitlab-ci.yml")]
    file: PathBuf,
    /// How many jobs run at once (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    concurrency: Option<usize>,
    /// Where the jobs run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Shell)]
    executor: ExecutorKind,
    #[command(flatten)]
    remote: Box<super::exec_remote::RemoteArgs>,
    /// With `--executor kubernetes`: the kubeconfig context (default: the current one).
    #[arg(long, value_name = "CONTEXT")]
    kube_context: Option<String>,
    /// With `--executor kubernetes`: the namespace of the job pods (default: the context's).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// With `--executor kubernetes`: the helper image (default: `runnel/helper:latest`, built by
    /// `scripts/kube-helper-image.sh`).
    #[arg(long, value_name = "IMAGE")]
    kube_helper_image: Option<String>,
    /// List the jobs of the pipeline and exit.
    #[arg(long)]
    list: bool,
    /// Print one JSON document with every job's status and output instead of live output.
    #[arg(long)]
    json: bool,
    /// Keep caches where this gitlab-runner `config.toml` says: the `[runners.cache]` (S3, GCS
    /// or Azure) of its first `[[runners]]` entry that sets `Type`, signed with its credentials.
    /// Without it, caches stay under `.runnel/cache`.
    #[arg(long, value_name = "CONFIG_TOML")]
    cache_config: Option<PathBuf>,
    /// Run as if started in DIR.
    #[arg(short = 'C', value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Checked-out projects for `include:project`, `include:component` and `include:template`
    /// (`DIR/<group>/<project>/<file>`).
    #[arg(long, value_name = "DIR")]
    projects_dir: Option<PathBuf>,
}

pub(crate) fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let project_dir = match &args.dir {
        Some(dir) => absolute(&cwd, dir),
        None => cwd,
    };
    let project_dir = project_dir
        .canonicalize()
        .with_context(|| {
            format!(
                "`-C {}`: failed to open the project directory",
                project_dir.display()
            )
        })
        .user_error()?;
    let state_dir = project_dir.join(".runnel");
    // Paths on the command line are relative to the project, as if runnel started there.
    let projects_dir = args
        .projects_dir
        .as_deref()
        .map(|dir| absolute(&project_dir, dir));
    let variables_file = args
        .variables_file
        .as_deref()
        .map(|f| absolute(&project_dir, f));
    let rerun_prefix = rerun_prefix(&args);
    let mut pipeline = PipelineOptions {
        project_dir,
        state_dir,
        projects_dir,
        file: args.file,
        run_excluded: if args.ignore_rules {
            args.jobs.clone()
        } else {
            Vec::new()
        },
        kubernetes: KubeTarget {
            context: args.kube_context.clone(),
            namespace: args.namespace.clone(),
            helper_image: args.kube_helper_image.clone(),
        },
        ..PipelineOptions::default()
    };
    exec::read_variables(&mut pipeline, variables_file.as_ref(), &args.vars)?;
    let executor = args.remote.executor(args.executor, &pipeline.project_dir)?;
    if let Some(file) = args.cache_config.as_deref() {
        let runner = cache_runner(&absolute(&pipeline.project_dir, file)).user_error()?;
        pipeline.cache_stores = Some(runnel_local::CacheStores(std::sync::Arc::new(
            move |payload, cache_dir| {
                runnel_runner::cache::job_cache_store(&runner, cache_dir, payload)
            },
        )));
    }
    let options = Options {
        pipeline,
        selection: Selection {
            jobs: args.jobs,
            stage: args.stage,
            needs: args.needs,
            only_needs: args.only_needs,
            manual: args.manual,
        },
        concurrency: args
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1),
        executor,
        list: args.list,
        json: args.json,
        rerun_prefix,
    };
    exec::run(options)
}

/// The `[[runners]]` entry of `file` whose `[runners.cache]` sets `Type`, checked so that a
/// mistake stops `runnel exec` before any job runs.
fn cache_runner(file: &Path) -> anyhow::Result<runnel_runner::config::RunnerConfig> {
    if !file.is_file() {
        anyhow::bail!("cache config `{}` does not exist", file.display());
    }
    let loaded = runnel_runner::config::load(file)
        .with_context(|| format!("failed to read cache config `{}`", file.display()))?;
    for unknown in &loaded.unknown_keys {
        eprintln!("warning: {unknown}");
    }
    let runner = loaded
        .config
        .runners
        .into_iter()
        .find(|r| {
            r.cache
                .as_ref()
                .and_then(|c| c.kind.as_deref())
                .is_some_and(|k| !k.trim().is_empty())
        })
        .with_context(|| {
            format!(
                "cache config `{}` has no `[runners.cache]` with a `Type`",
                file.display()
            )
        })?;
    if let Some(cache) = &runner.cache {
        let setup = runnel_runner::cache::cache_setup(
            cache,
            &runner.short_token(),
            0,
            std::time::Duration::from_secs(3600),
        )
        .with_context(|| format!("invalid cache config `{}`", file.display()))?;
        for warning in setup.iter().flat_map(|s| &s.warnings) {
            eprintln!("warning: {warning}");
        }
    }
    Ok(runner)
}

/// The start of a command line that re-runs one job with the same configuration and variables.
fn rerun_prefix(args: &ExecArgs) -> String {
    use crate::report::shell_quote;
    let mut words = vec!["runnel".to_owned(), "exec".to_owned()];
    if args.executor != ExecutorKind::default()
        && let Some(value) = args.executor.to_possible_value()
    {
        words.extend(["--executor".to_owned(), value.get_name().to_owned()]);
    }
    for (flag, value) in [
        ("--kube-context", &args.kube_context),
        ("--namespace", &args.namespace),
        ("--kube-helper-image", &args.kube_helper_image),
    ] {
        if let Some(value) = value {
            words.extend([flag.to_owned(), shell_quote(value)]);
        }
    }
    if let Some(dir) = &args.dir {
        words.extend(["-C".to_owned(), shell_quote(&dir.display().to_string())]);
    }
    if args.file != Path::new(".gitlab-ci.yml") {
        words.extend([
            "--file".to_owned(),
            shell_quote(&args.file.display().to_string()),
        ]);
    }
    if let Some(file) = &args.cache_config {
        words.extend([
            "--cache-config".to_owned(),
            shell_quote(&file.display().to_string()),
        ]);
    }
    if let Some(file) = &args.variables_file {
        words.extend([
            "--variables-file".to_owned(),
            shell_quote(&file.display().to_string()),
        ]);
    }
    if args.ignore_rules {
        words.push("--ignore-rules".to_owned());
    }
    for var in &args.vars {
        words.extend(["--var".to_owned(), shell_quote(var)]);
    }
    words.join(" ")
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}
