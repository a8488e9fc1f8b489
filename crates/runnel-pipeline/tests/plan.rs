//! Planning fixtures: each `tests/fixtures/plan/<case>.gitlab-ci.yml` opens with
//! `# gitlab: <GitLab source>` and optionally `# context: var=K=V project=K=V project_file=K=V
//! dotenv=job:K=V`, and snapshots, for every job of the pipeline for a push to `main`, the
//! variables GitLab sends the runner (in the order it sends them, predefined `CI_*` ones left out
//! except `CI_ENVIRONMENT_*`) and what the job sees after the runner's own expansion pass.

use std::path::Path;

use runnel_api::JobVariable;
use runnel_pipeline::context::PipelineContext;
use runnel_pipeline::diag::render_plain;
use runnel_pipeline::expand::{ExpandVariable, expand_runner_variables};
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::plan::{RunContext, plan};
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;

fn contexts(text: &str) -> (PipelineContext, RunContext) {
    let mut pipeline = PipelineContext::push("main");
    let mut run = RunContext::default();
    run.git.ref_name = "main".to_owned();
    run.git.default_branch = "main".to_owned();
    let header = text
        .lines()
        .take(3)
        .find_map(|l| l.strip_prefix("# context: "));
    for word in header.unwrap_or_default().split_whitespace() {
        let (kind, rest) = word.split_once('=').expect("context words are kind=...");
        let (key, value) = rest.split_once('=').expect("context words are kind=K=V");
        match kind {
            "var" => {
                pipeline.variables.push((key.to_owned(), value.to_owned()));
                run.pipeline_variables.push(JobVariable::new(key, value));
            }
            "project" => run.project_variables.push(JobVariable::new(key, value)),
            "project_file" => run.project_variables.push(JobVariable {
                file: true,
                ..JobVariable::new(key, value)
            }),
            "dotenv" => {
                let (job, name) = key.split_once(':').expect("dotenv=job:K=V");
                run.dotenv
                    .entry(job.to_owned())
                    .or_default()
                    .push((name.to_owned(), value.to_owned()));
            }
            other => panic!("unknown context kind `{other}`"),
        }
    }
    (pipeline, run)
}

fn shown(key: &str) -> bool {
    !(key.starts_with("CI_") || key.starts_with("GITLAB_")) || key.starts_with("CI_ENVIRONMENT_")
}

fn flags(v: &JobVariable) -> String {
    let mut flags = Vec::new();
    if v.raw {
        flags.push("raw");
    }
    if v.file {
        flags.push("file");
    }
    if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(", "))
    }
}

fn run_case(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    assert!(
        text.starts_with("# gitlab: "),
        "{} must start with `# gitlab: <source>`",
        path.display()
    );
    let (context, run) = contexts(&text);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut map = SourceMap::new();
    let mut opts = LoadOptions::new(&fixtures);
    opts.variables = context.rules_variables();
    let pipeline = match load(&mut map, path, &opts).and_then(|c| Pipeline::new(&c, &context)) {
        Ok(pipeline) => pipeline,
        Err(diags) => return render_plain(&diags.0, &map),
    };
    let mut out = String::new();
    for (index, job) in pipeline.jobs.iter().enumerate() {
        let payload = plan(&pipeline, runnel_pipeline::job::JobIndex(index), &run);
        let sent: Vec<ExpandVariable> = payload
            .variables
            .iter()
            .map(|v| ExpandVariable {
                key: v.key.clone(),
                // gitlab-runner: a file variable holds the path of the file it writes
                // (common/spec/variables.go `tmpFile`).
                value: if v.file {
                    format!("/builds/project.tmp/{}", v.key)
                } else {
                    v.value.clone()
                },
                raw: v.raw,
                file: v.file,
            })
            .collect();
        let seen = expand_runner_variables(&sent);
        out.push_str(&format!("job `{}`\n", job.name));
        for (variable, runner) in payload.variables.iter().zip(&seen) {
            if !shown(&variable.key) {
                continue;
            }
            out.push_str(&format!(
                "  {}{} sent {:?}, job sees {:?}\n",
                variable.key,
                flags(variable),
                variable.value,
                runner.value
            ));
        }
    }
    out
}

#[test]
fn fixtures() {
    insta::glob!("fixtures/plan/*.gitlab-ci.yml", |path| {
        insta::assert_snapshot!(run_case(path));
    });
}
