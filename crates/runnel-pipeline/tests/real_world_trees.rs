//! Public projects' CI trees stored in the repository (`tests/real-world/<name>/`: the root file
//! and every local include it reaches, byte for byte; `tests/real-world/SOURCES.tsv` records the
//! repository, commit and root file of each). Each must lint clean for a push to `main` and for
//! a tag, or fail only on the includes that cannot be resolved offline (`include:project`,
//! `include:remote`, `include:template`, `include:component`), with exactly one error per such
//! include and as many as the table says.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use runnel_pipeline::context::{PipelineContext, RefType};
use runnel_pipeline::diag::render_plain;
use runnel_pipeline::pipeline::Pipeline;
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
                root: cols[3].to_owned(),
                unresolvable: cols[4].parse().expect("the last column is a count"),
            }
        })
        .collect()
}

fn contexts() -> [PipelineContext; 2] {
    let mut tag = PipelineContext::push("v1.0.0");
    tag.ref_type = RefType::Tag;
    [PipelineContext::push("main"), tag]
}

#[test]
fn sources_table_names_every_stored_tree() {
    let listed: HashSet<String> = trees().into_iter().map(|t| t.name).collect();
    let stored: HashSet<String> = std::fs::read_dir(trees_dir())
        .expect("tests/real-world is readable")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, stored);
    assert!(listed.len() >= 25, "only {} trees", listed.len());
}

#[test]
fn real_world_trees_lint_clean_or_name_each_offline_include() {
    let mut failures = Vec::new();
    for tree in trees() {
        let dir = trees_dir().join(&tree.name);
        for context in contexts() {
            let mut map = SourceMap::new();
            let mut opts = LoadOptions::new(&dir);
            opts.variables = context.rules_variables();
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
