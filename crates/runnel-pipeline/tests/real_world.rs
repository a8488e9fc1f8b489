//! Loads the real-world CI trees in `/work/shared/real-world/*/` (copies of public projects' CI
//! files). A tree without external includes must load; a tree with them must give exactly one
//! clear error per unresolvable include (no fetcher and no projects directory here).
//!
//! The trees live outside the repository; in a clone without them this test says so loudly and
//! passes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use runnel_pipeline::diag::render_plain;
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;

/// Codes of the errors an include that needs the network or another project gives offline.
const EXTERNAL: [&str; 4] = [
    "include-not-found",
    "include-project",
    "include-template",
    "include-component",
];

fn real_world_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real-world")
}

#[test]
fn real_world_trees_load_or_name_each_unresolvable_include() {
    let dir = real_world_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: no real-world trees at {} (they exist only in the runnel workspace)",
            dir.display()
        );
        return;
    };
    let mut trees: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    trees.sort();
    let mut loaded = 0;
    for tree in trees {
        let root = tree.join(".gitlab-ci.yml");
        if !root.is_file() {
            continue;
        }
        let mut map = SourceMap::new();
        let opts = LoadOptions::new(&tree);
        let name = tree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load(&mut map, &root, &opts) {
            Ok(config) => {
                assert!(
                    config.root.as_map().is_some_and(|m| !m.is_empty()),
                    "{name}: empty root"
                );
                loaded += 1;
            }
            Err(diags) => {
                let rendered = render_plain(&diags.0, &map);
                eprintln!(
                    "{name}: {} unresolvable include(s)\n{rendered}",
                    diags.len()
                );
                let mut spans = HashSet::new();
                for d in &diags {
                    assert!(
                        EXTERNAL.contains(&d.code),
                        "{name}: unexpected error\n{rendered}"
                    );
                    assert!(
                        spans.insert((d.span.file, d.span.start)),
                        "{name}: two errors for one include\n{rendered}"
                    );
                    let text = map
                        .file(d.span.file)
                        .and_then(|f| f.line(d.span.start.line))
                        .unwrap_or_default();
                    assert!(
                        [
                            "template",
                            "project",
                            "remote",
                            "component",
                            "http",
                            "file",
                            "local"
                        ]
                        .iter()
                        .any(|w| text.contains(w)),
                        "{name}: the error does not point at an include\n{rendered}"
                    );
                }
            }
        }
    }
    assert!(loaded > 0, "no real-world tree loaded");
}
