//! Real-world configurations (copied into /work/shared/real-world/<project>/, or the directory
//! in `RUNNEL_REAL_WORLD`): the self-contained ones lint clean; the ones with includes runnel
//! cannot resolve offline fail with one include error per such include and nothing else;
//! SARlabpy's removed `type:` keyword is rejected with GitLab's message.

use std::path::{Path, PathBuf};

use runnel_pipeline::context::PipelineContext;
use runnel_pipeline::diag::{Diagnostics, render_plain};
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::resolve::{LoadOptions, load};
use runnel_pipeline::source::SourceMap;

fn real_world() -> Option<PathBuf> {
    let dir = std::env::var_os("RUNNEL_REAL_WORLD")
        .map_or_else(|| PathBuf::from("/work/shared/real-world"), PathBuf::from);
    if dir.is_dir() {
        Some(dir)
    } else {
        let message = format!("SKIPPED: no real-world configurations at {}", dir.display());
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("{message}");
        None
    }
}

fn lint(project: &Path, context: &PipelineContext) -> (Result<Pipeline, Diagnostics>, SourceMap) {
    let mut map = SourceMap::new();
    let mut opts = LoadOptions::new(project);
    opts.variables = context.rules_variables();
    let result = load(&mut map, &project.join(".gitlab-ci.yml"), &opts)
        .and_then(|config| Pipeline::new(&config, context));
    (result, map)
}

fn project(name: &str) -> Option<PathBuf> {
    let dir = real_world()?.join(name);
    if dir.join(".gitlab-ci.yml").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} has no .gitlab-ci.yml", dir.display());
        None
    }
}

#[test]
fn self_contained_configurations_lint_clean() {
    let contexts = [PipelineContext::push("main"), {
        let mut tag = PipelineContext::push("v1.0.0");
        tag.ref_type = runnel_pipeline::context::RefType::Tag;
        tag
    }];
    for name in [
        "cup",
        "cryptsetup",
        "libvirt-python",
        "noderouter",
        "omnibus-gitlab",
        "python-gitlab",
    ] {
        let Some(dir) = project(name) else { continue };
        for context in &contexts {
            let (result, map) = lint(&dir, context);
            if let Err(diags) = result {
                panic!(
                    "{name} ({}) should lint clean:\n{}",
                    context.ref_name,
                    render_plain(&diags.0, &map)
                );
            }
        }
    }
}

#[test]
fn unresolvable_includes_give_one_error_each() {
    // (project, how many includes cannot be resolved offline)
    let cases = [
        ("NetworkManager", 7),
        ("fractal", 1),
        ("gitlab", 2),
        ("gitlab-runner", 4),
        ("gitlab-shell", 6),
        ("libadwaita", 4),
        ("pipewire", 4),
        ("pygobject", 1),
    ];
    for (name, expected) in cases {
        let Some(dir) = project(name) else { continue };
        let (result, map) = lint(&dir, &PipelineContext::push("main"));
        let Err(diags) = result else {
            panic!("{name} has includes runnel cannot resolve offline")
        };
        let text = render_plain(&diags.0, &map);
        assert_eq!(diags.len(), expected, "{name}:\n{text}");
        for d in &diags {
            assert!(
                d.code.starts_with("include"),
                "{name}: not an include error: {}\n{text}",
                d.message
            );
        }
    }
}

#[test]
fn sarlabpy_type_keyword_is_rejected_with_gitlabs_message() {
    let Some(dir) = project("SARlabpy") else {
        return;
    };
    let (result, map) = lint(&dir, &PipelineContext::push("master"));
    let Err(diags) = result else {
        panic!("`type:` must be rejected")
    };
    insta::assert_snapshot!(render_plain(&diags.0, &map));
}
