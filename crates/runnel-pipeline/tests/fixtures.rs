//! Pipeline-model fixtures: each `tests/fixtures/<area>/<case>.gitlab-ci.yml` of the model areas
//! (model, keywords, matrix, needs, rules, variables, workflow, errors, default, realistic)
//! opens with `# gitlab: <GitLab source>` and optionally `# context: ref=main source=push
//! var=A=1 changed=src/x.py project=group/app checkout=<dir under tests/fixtures>`, and snapshots the resolved pipeline as JSON, or the errors as
//! `runnel lint` prints them. The loader areas (yaml, include, extends, reference, inputs) have
//! their own test file.

use std::path::Path;

use runnel_pipeline::context::{MergeRequest, PipelineContext, RefType};
use runnel_pipeline::diag::render_plain;
use runnel_pipeline::pipeline::{Creation, Pipeline};
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;

/// One fixture: its context, read from the `# context:` header.
struct Case {
    context: PipelineContext,
}

impl Case {
    fn read(path: &Path) -> Case {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.starts_with("# gitlab: ")),
            "{} must start with `# gitlab: <GitLab source file>`",
            path.display()
        );
        let mut context = PipelineContext::push("main");
        let header = text
            .lines()
            .take(3)
            .find_map(|l| l.strip_prefix("# context: "));
        for word in header.unwrap_or_default().split_whitespace() {
            let (key, value) = word.split_once('=').expect("context words are key=value");
            match key {
                "ref" => context.ref_name = value.to_owned(),
                "tag" => {
                    context.ref_name = value.to_owned();
                    context.ref_type = RefType::Tag;
                }
                "source" => context.source = value.to_owned(),
                "default_branch" => context.default_branch = value.to_owned(),
                "var" => {
                    let (k, v) = value.split_once('=').expect("var=K=V");
                    context.variables.push((k.to_owned(), v.to_owned()));
                }
                "changed" => context
                    .changed_files
                    .get_or_insert_with(Vec::new)
                    .push(value.to_owned()),
                "mr" => {
                    let (source, target) = value.split_once("->").expect("mr=source->target");
                    context.source = "merge_request_event".to_owned();
                    context.ref_name = source.to_owned();
                    context.merge_request = Some(MergeRequest {
                        iid: 1,
                        source_branch: source.to_owned(),
                        target_branch: target.to_owned(),
                        ..MergeRequest::default()
                    });
                }
                "project" => context.project_path = Some(value.to_owned()),
                "checkout" => {
                    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
                    context.project_dir = Some(fixtures.join(value));
                }
                other => panic!("unknown context key `{other}` in {}", path.display()),
            }
        }
        Case { context }
    }
}

/// What `runnel lint` shows for a fixture: the pipeline JSON, or the rendered errors.
fn lint(path: &Path, case: &Case) -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut map = SourceMap::new();
    let mut opts = LoadOptions::new(&fixtures);
    opts.variables = case.context.rules_variables();
    opts.variables
        .extend(case.context.variables.iter().cloned());
    let result =
        load(&mut map, path, &opts).and_then(|config| Pipeline::new(&config, &case.context));
    match result {
        Ok(pipeline) => {
            let mut out = render_plain(&pipeline.warnings.0, &map);
            if pipeline.creation != Creation::Created {
                out.push_str(&format!("pipeline not created: {:?}\n", pipeline.creation));
            }
            out.push_str(&pipeline.to_pretty_json());
            out
        }
        Err(diags) => render_plain(&diags.0, &map),
    }
}

#[test]
fn fixtures() {
    insta::glob!(
        "fixtures/{model,keywords,nested,matrix,needs,rules,variables,workflow,errors,default,realistic}/*.gitlab-ci.yml",
        |path| {
            let case = Case::read(path);
            insta::assert_snapshot!(lint(path, &case));
        }
    );
}
