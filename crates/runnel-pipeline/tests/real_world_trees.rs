//! Public projects' CI trees stored in the repository (`tests/real-world/<name>/`: the root file
//! and every local include it reaches, byte for byte; `tests/real-world/SOURCES.tsv` records the
//! repository, commit and root file of each). Each must lint clean for a push to `main` and for
//! a tag, or fail only on the includes that cannot be resolved offline (`include:project`,
//! `include:remote`, `include:template`, `include:component`), with exactly one error per such
//! include and as many as the table says. Projects that the trees include and that are public
//! (`_projects/<group>/<project>/`, recorded in `_projects/SOURCES.tsv`) are read from there, as
//! `runnel lint --projects-dir` would.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use runnel_pipeline::context::{PipelineContext, RefType};
use runnel_pipeline::diag::render_plain;
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::plan::{RunContext, pipeline_variables};
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;

/// Codes of the errors an include that needs the network or another project gives offline.
const OFFLINE: [&str; 4] = [
    "include-not-found",
    "include-project",
    "include-template",
    "include-component",
];

struct Tree {
    name: String,
    repository: String,
    commit: String,
    root: String,
    unresolvable: usize,
}

fn trees_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real-world")
}

fn trees() -> Vec<Tree> {
    let table = std::fs::read_to_string(trees_dir().join("SOURCES.tsv"))
        .expect("tests/real-world/SOURCES.tsv is readable");
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "SOURCES.tsv: five columns expected: {line}");
            Tree {
                name: cols[0].to_owned(),
                repository: cols[1].to_owned(),
                commit: cols[2].to_owned(),
                root: cols[3].to_owned(),
                unresolvable: cols[4].parse().expect("the last column is a count"),
            }
        })
        .collect()
}

/// A push to `main` and a tag, in the tree's own project (its repository's path) at its commit.
fn contexts(tree: &Tree) -> [(PipelineContext, RunContext); 2] {
    let main = PipelineContext::push("main");
    let mut tag = PipelineContext::push("v1.0.0");
    tag.ref_type = RefType::Tag;
    [main.clone(), tag].map(|mut context| {
        context.project_path = Some(tree.repository.clone());
        context.commit_sha = Some(tree.commit.clone());
        let mut run = RunContext::default();
        run.project.path = tree.repository.clone();
        run.git.sha = tree.commit.clone();
        run.git.ref_name = context.ref_name.clone();
        run.git.is_tag = context.ref_type == RefType::Tag;
        run.git.default_branch = "main".to_owned();
        (context, run)
    })
}

#[test]
fn sources_table_names_every_stored_tree() {
    let listed: HashSet<String> = trees().into_iter().map(|t| t.name).collect();
    let stored: HashSet<String> = std::fs::read_dir(trees_dir())
        .expect("tests/real-world is readable")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('_'))
        .collect();
    assert_eq!(listed, stored);
    assert!(listed.len() >= 25, "only {} trees", listed.len());
}

#[test]
fn real_world_trees_lint_clean_or_name_each_offline_include() {
    let mut failures = Vec::new();
    for tree in trees() {
        let dir = trees_dir().join(&tree.name);
        for (context, run) in contexts(&tree) {
            let mut map = SourceMap::new();
            let mut opts = LoadOptions::new(&dir);
            opts.projects_dir = Some(trees_dir().join("_projects"));
            // The variables `runnel exec` gives includes: the pipeline's predefined ones.
            opts.variables = pipeline_variables(&run)
                .into_iter()
                .map(|v| (v.key, v.value))
                .collect();
            let result = load(&mut map, &dir.join(&tree.root), &opts)
                .and_then(|config| Pipeline::new(&config, &context));
            let name = format!("{} ({})", tree.name, context.ref_name);
            let diags = match result {
                Ok(_) if tree.unresolvable == 0 => continue,
                Ok(_) => {
                    failures.push(format!(
                        "{name}: loaded, but {} unresolvable includes were expected",
                        tree.unresolvable
                    ));
                    continue;
                }
                Err(diags) => diags,
            };
            let text = render_plain(&diags.0, &map);
            let mut spans = HashSet::new();
            let only_includes = diags.iter().all(|d| OFFLINE.contains(&d.code))
                && diags
                    .iter()
                    .all(|d| spans.insert((d.span.file, d.span.start)));
            if !only_includes || diags.len() != tree.unresolvable {
                failures.push(format!(
                    "{name}: expected {} offline include errors, got {}:\n{text}",
                    tree.unresolvable,
                    diags.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
