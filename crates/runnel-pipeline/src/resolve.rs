//! `load`: `.gitlab-ci.yml` → [`Config`], the fully merged root mapping, in GitLab's order:
//! YAML (anchors, merge keys) → includes (with inputs) → `extends` → `!reference` (GitLab:
//! lib/gitlab/ci/config.rb `build_config`). Then nested `script` lists are flattened.
//!
//! It does not apply `default:` or `inherit:`, and does not check keywords: that is the typed
//! model's job (`job.rs`, `keywords.rs`). Hidden jobs (`.name`) stay in the root.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::extends::resolve_extends;
use crate::include::{Fetcher, Loader, MAX_INCLUDES, Origin};
use crate::reference::{flatten_commands, resolve_references};
use crate::source::{FileId, Pos, SourceMap, Span};
use crate::yaml::{Key, Node};

/// What `load` needs besides the file itself.
pub struct LoadOptions<'a> {
    /// The project (repository) root: `include:local` paths are relative to it.
    pub project_dir: PathBuf,
    /// Checked-out projects for `include:project` (`<dir>/<group>/<project>/<file>`),
    /// `include:component` (`<dir>/<project path>/templates/...`) and `include:template`
    /// (`<dir>/templates/<name>`).
    pub projects_dir: Option<PathBuf>,
    /// Fetches `include:remote` files; without one they are reported as unavailable.
    pub fetcher: Option<&'a dyn Fetcher>,
    /// Variables for include locations and `include:rules` (GitLab's restricted set:
    /// project/CI variables and pre-pipeline predefined ones; not the YAML's `variables:`).
    pub variables: Vec<(String, String)>,
    /// Pipeline inputs for the root file's `spec:inputs`.
    pub inputs: Vec<(String, Node)>,
    /// The files this push changed, for `include:rules:changes`; `None` when unknown, and then
    /// every `changes:` rule matches (GitLab does the same without a diff base).
    pub changed_files: Option<Vec<String>>,
    /// GitLab's include limit (150 by default), counting nested and repeated includes.
    pub max_includes: usize,
}

impl<'a> LoadOptions<'a> {
    pub fn new(project_dir: impl Into<PathBuf>) -> Self {
        LoadOptions {
            project_dir: project_dir.into(),
            projects_dir: None,
            fetcher: None,
            variables: Vec::new(),
            inputs: Vec::new(),
            changed_files: None,
            max_includes: MAX_INCLUDES,
        }
    }
}

/// The merged configuration: a mapping of global keywords and jobs (hidden jobs included),
/// with includes, inputs, `extends` and `!reference` resolved. Spans point into the
/// [`SourceMap`] that `load` filled.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: Node,
    /// The file `load` started from.
    pub file: FileId,
}

impl Config {
    /// The merged root as JSON (for `runnel lint --json` and snapshots).
    pub fn to_json(&self) -> serde_json::Value {
        self.root.to_json()
    }
}

/// Loads the file at `path` (its display path is relative to `opts.project_dir` when inside it).
pub fn load(
    map: &mut SourceMap,
    path: &Path,
    opts: &LoadOptions<'_>,
) -> Result<Config, Diagnostics> {
    let display = path
        .strip_prefix(&opts.project_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(
                Span::synthetic(),
                format!("failed to read `{}`: {e}", path.display()),
            )
            .with_code("io"),
        )
    })?;
    load_str(map, &display, text, opts)
}

/// Loads a configuration given as text; `display_path` is how messages name it.
pub fn load_str(
    map: &mut SourceMap,
    display_path: &str,
    text: String,
    opts: &LoadOptions<'_>,
) -> Result<Config, Diagnostics> {
    let file = map.add(display_path, text);
    let start = Span::new(file, Pos::new(1, 1), Pos::new(1, 1));
    let args: Vec<(Key, Node)> = opts
        .inputs
        .iter()
        .map(|(k, v)| (Key::new(k.clone(), v.span), v.clone()))
        .collect();
    let origin = Origin {
        project_root: Some(opts.project_dir.clone()),
        display_prefix: String::new(),
        anonymous: false,
    };
    let mut loader = Loader::new(map, opts);
    let root = loader.expand_file(file, &origin, &args, start, Vec::new());
    let mut diagnostics = loader.diagnostics;
    let Some(mut root) = root else {
        return Err(diagnostics);
    };
    // Later steps only make sense on a complete tree.
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    resolve_extends(&mut root, &mut diagnostics);
    resolve_references(&mut root, &mut diagnostics);
    flatten_commands(&mut root, &mut diagnostics);
    diagnostics.into_result()?;
    Ok(Config { root, file })
}
