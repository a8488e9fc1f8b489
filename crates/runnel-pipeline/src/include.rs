//! `include:` — every form GitLab accepts (`local` with wildcards, `remote`, `project`/`file`/
//! `ref`, `template`, `component`), `include:rules`, `include:inputs`, nested includes and
//! GitLab's merge order: included files first, later includes over earlier ones, the including
//! file's own keys over all of them.
//!
//! Files come from the project directory and from a local directory of checked-out projects;
//! remote files come from a [`Fetcher`] that the caller provides (this crate does no HTTP).
//! GitLab: lib/gitlab/ci/config/external/{processor,mapper,context}.rb and file/*.rb.

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::Digest as _;

use crate::diag::{Diagnostic, Diagnostics};
use crate::expand::expand_server;
use crate::extends::deep_merge;
use crate::inputs::{self, Context};
use crate::resolve::LoadOptions;
use crate::source::{FileId, SourceMap, Span};
use crate::yaml::{self, Key, Node, Value};

mod paths;
mod rules;
mod spec_include;
mod targets;

use paths::base64;

/// Fetches a remote include (`include:remote`, or a string starting with `http(s)://`).
/// The binary implements it over HTTP; tests implement it over a map.
pub trait Fetcher {
    /// The body of `url`, or why it could not be fetched (e.g. `404 Not Found`).
    fn fetch(&self, url: &str) -> Result<String, String>;
}

impl<F: Fn(&str) -> Result<String, String>> Fetcher for F {
    fn fetch(&self, url: &str) -> Result<String, String> {
        self(url)
    }
}

/// GitLab: lib/gitlab/ci/config/external/context.rb, `max_includes` default.
pub const MAX_INCLUDES: usize = 150;

const LOCATION_KEYS: [&str; 6] = [
    "local",
    "project",
    "remote",
    "template",
    "component",
    "artifact",
];
const OTHER_KEYS: [&str; 7] = [
    "file",
    "ref",
    "rules",
    "inputs",
    "integrity",
    "cache",
    "job",
];

/// Where a file came from, which decides how its own includes resolve.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The project directory that `local:` paths in this file are relative to; `None` for remote
    /// and template files, which GitLab expands without a project (context.rb `mutate`).
    pub(crate) project_root: Option<PathBuf>,
    /// How messages name this project's files: empty for the pipeline's project, else
    /// `group/project/`.
    pub(crate) display_prefix: String,
    /// Remote and template files resolve their includes anonymously, without variables.
    pub(crate) anonymous: bool,
}

/// One file to read, resolved from an include entry.
struct Target {
    /// "local file", "project file", ...: how messages name it.
    kind: &'static str,
    identity: String,
    display: String,
    source: TargetSource,
    origin: Origin,
    component: Vec<(String, String)>,
    /// `include:integrity` (`sha256-<base64>`) of a remote file.
    integrity: Option<(String, Span)>,
}

enum TargetSource {
    Path(PathBuf),
    Remote(String),
}

pub(crate) struct Loader<'a, 'o> {
    pub(crate) map: &'a mut SourceMap,
    pub(crate) opts: &'a LoadOptions<'o>,
    pub(crate) diagnostics: Diagnostics,
    include_count: usize,
    limit_reported: bool,
    files: HashMap<String, Result<FileId, String>>,
    /// Identities of the files being expanded, outermost first (for cycles).
    stack: Vec<(String, &'static str)>,
    /// Every file of a project directory, listed once per load (wildcards and `exists:`).
    listings: HashMap<PathBuf, std::rc::Rc<[String]>>,
    /// The include entries that led to the file being expanded (for notes).
    include_spans: Vec<Span>,
}

impl<'a, 'o> Loader<'a, 'o> {
    pub(crate) fn new(map: &'a mut SourceMap, opts: &'a LoadOptions<'o>) -> Self {
        Loader {
            map,
            opts,
            diagnostics: Diagnostics::new(),
            include_count: 0,
            limit_reported: false,
            files: HashMap::new(),
            stack: Vec::new(),
            include_spans: Vec::new(),
            listings: HashMap::new(),
        }
    }

    /// Pushes an error with "included at" notes for the chain of includes that led here.
    fn error(&mut self, mut diagnostic: Diagnostic) {
        // Notes name the includes that led into another file; an error in the including file
        // itself already shows where it is.
        let mut in_file = diagnostic.span.file;
        for span in self.include_spans.iter().rev() {
            if span.file != in_file {
                diagnostic = diagnostic.with_note(*span, "included");
                in_file = span.file;
            }
        }
        self.diagnostics.push(diagnostic);
    }

    /// The files below `root`, sorted (cached for the load).
    fn files_of(&mut self, root: &std::path::Path) -> std::rc::Rc<[String]> {
        self.listings
            .entry(root.to_path_buf())
            .or_insert_with(|| paths::list_files(root).into())
            .clone()
    }

    fn variables(&self, origin: &Origin) -> &'a [(String, String)] {
        if origin.anonymous {
            &[]
        } else {
            &self.opts.variables
        }
    }

    /// Reads, interpolates and include-expands one file; `None` when it could not be used (the
    /// reason is in the diagnostics). `args` are the `include:inputs` (or pipeline inputs).
    pub(crate) fn expand_file(
        &mut self,
        file: FileId,
        origin: &Origin,
        args: &[(Key, Node)],
        args_span: Span,
        component: Vec<(String, String)>,
    ) -> Option<Node> {
        let docs = match yaml::parse_documents(self.map, file) {
            Ok(docs) => docs,
            Err(diags) => {
                diags.into_iter().for_each(|d| self.error(d));
                return None;
            }
        };
        let (header, content) = split_header(docs);
        let header = self.with_spec_includes(header, origin, !component.is_empty())?;
        let Some(mut content) = content.filter(|c| !c.is_null()) else {
            let path = self.map.path(file).to_owned();
            let message = match self.stack.last() {
                None => {
                    format!("`{path}` is empty: a pipeline configuration needs at least one job")
                }
                // GitLab: file/local.rb "Local file `x` is empty!", file/project.rb likewise.
                Some((_, kind)) => format!("{kind} `{path}` is empty"),
            };
            let span = self.include_spans.last().copied().unwrap_or(args_span);
            self.error(Diagnostic::error(span, message).with_code("include-empty"));
            return None;
        };
        let before = self.diagnostics.len();
        let mut diags = Diagnostics::new();
        // The root file's inputs come from outside the YAML (pipeline inputs).
        let passed_at = (!self.stack.is_empty()).then_some(args_span);
        let values = inputs::evaluate_inputs(header.as_ref(), args, passed_at, &mut diags);
        diags.into_iter().for_each(|d| self.error(d));
        let values = values?;
        if header.is_some() {
            let ctx = Context {
                inputs: values,
                component,
                variables: self.variables(origin).to_vec(),
            };
            let mut diags = Diagnostics::new();
            inputs::interpolate(&mut content, &ctx, &mut diags);
            diags.into_iter().for_each(|d| self.error(d));
            if self.diagnostics.len() > before {
                return None;
            }
        }
        if content.as_map().is_none() || content.tag.is_some() {
            let path = self.map.path(file).to_owned();
            self.error(
                Diagnostic::error(
                    content.span,
                    format!(
                        "invalid configuration format: `{path}` should be a mapping, found {}",
                        content.kind()
                    ),
                )
                .with_code("config-not-mapping"),
            );
            return None;
        }
        let include = content.as_map_mut().and_then(|entries| {
            let i = entries.iter().position(|(k, _)| k.name == "include")?;
            Some(entries.remove(i).1)
        });
        let Some(include) = include else {
            return Some(content);
        };
        let mut merged = Node::new(content.span, Value::Map(Vec::new()));
        for included in self.process_include(include, origin) {
            deep_merge(&mut merged, included);
        }
        deep_merge(&mut merged, content);
        Some(merged)
    }

    fn process_include(&mut self, include: Node, origin: &Origin) -> Vec<Node> {
        match include.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items
                .iter()
                .flat_map(|entry| self.process_entry(entry, origin))
                .collect(),
            Value::Str(_) | Value::Map(_) => self.process_entry(&include, origin),
            _ => {
                self.error(
                    Diagnostic::error(
                        include.span,
                        format!(
                            "`include` should be a string, a mapping or an array, found {}",
                            include.kind()
                        ),
                    )
                    .with_code("include-invalid"),
                );
                Vec::new()
            }
        }
    }

    fn process_entry(&mut self, entry: &Node, origin: &Origin) -> Vec<Node> {
        self.include_count += 1;
        if self.include_count > self.opts.max_includes {
            if !self.limit_reported {
                self.limit_reported = true;
                let max = self.opts.max_includes;
                self.error(
                    Diagnostic::error(
                        entry.span,
                        format!("maximum of {max} nested includes are allowed"),
                    )
                    .with_code("include-limit"),
                );
            }
            return Vec::new();
        }
        let targets = match &entry.value {
            Value::Str(s) => {
                let location = expand_server(s, &self.variables(origin));
                if location.starts_with("http://") || location.starts_with("https://") {
                    self.remote_target(&location, entry.span)
                } else {
                    self.local_targets(&location, entry.span, origin)
                }
            }
            Value::Map(_) if entry.tag.is_none() => match self.map_entry_targets(entry, origin) {
                Some(targets) => targets,
                None => return Vec::new(),
            },
            _ => {
                self.error(
                    Diagnostic::error(
                        entry.span,
                        format!(
                            "an `include` entry should be a string or a mapping, found {}",
                            entry.kind()
                        ),
                    )
                    .with_code("include-invalid"),
                );
                return Vec::new();
            }
        };
        let (args, args_span) = match entry.get_entry("inputs") {
            Some((key, value)) => match value.as_map() {
                Some(map) => (map.to_vec(), key.span),
                None => {
                    self.error(
                        Diagnostic::error(value.span, "`include:inputs` should be a mapping")
                            .with_code("include-invalid"),
                    );
                    return Vec::new();
                }
            },
            None => (Vec::new(), entry.span),
        };
        let mut out = Vec::new();
        for target in targets {
            if let Some(node) = self.expand_target(target, entry.span, &args, args_span) {
                out.push(node);
            }
        }
        out
    }

    fn expand_target(
        &mut self,
        target: Target,
        entry_span: Span,
        args: &[(Key, Node)],
        args_span: Span,
    ) -> Option<Node> {
        if self
            .stack
            .iter()
            .any(|(identity, _)| *identity == target.identity)
        {
            let d = Diagnostic::error(
                entry_span,
                format!(
                    "include of `{}` is circular: the file includes itself",
                    target.display
                ),
            )
            .with_code("include-cycle")
            .with_help(format!(
                "GitLab stops at its limit: \"Maximum of {} nested includes are allowed!\"",
                self.opts.max_includes
            ));
            self.error(d);
            return None;
        }
        let file = self.read_target(&target, entry_span)?;
        if let Some((expected, span)) = &target.integrity {
            let actual = format!(
                "sha256-{}",
                base64(&sha2::Sha256::digest(self.map.text(file)))
            );
            if *expected != actual {
                self.error(
                    Diagnostic::error(
                        *span,
                        format!(
                            "remote file `{}` does not match its integrity hash",
                            target.display
                        ),
                    )
                    .with_code("include-integrity")
                    .with_help(format!("the file's hash is `{actual}`")),
                );
                return None;
            }
        }
        self.stack.push((target.identity, target.kind));
        self.include_spans.push(entry_span);
        let node = self.expand_file(file, &target.origin, args, args_span, target.component);
        self.include_spans.pop();
        self.stack.pop();
        node
    }

    /// Reads a target's text into the source map (once per load).
    fn read_target(&mut self, target: &Target, span: Span) -> Option<FileId> {
        let cached = match self.files.get(&target.identity) {
            Some(result) => result.clone(),
            None => {
                let text = match &target.source {
                    TargetSource::Path(path) => std::fs::read_to_string(path).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            "does not exist".to_owned()
                        } else {
                            format!("could not be read: {e}")
                        }
                    }),
                    TargetSource::Remote(url) => match self.opts.fetcher {
                        Some(fetcher) => fetcher.fetch(url).map_err(|e| format!("could not be fetched because of {e}")),
                        None => Err("could not be fetched: remote includes need network access, which this run does not have".to_owned()),
                    },
                };
                let result = text.map(|text| self.map.add(target.display.clone(), text));
                self.files.insert(target.identity.clone(), result.clone());
                result
            }
        };
        match cached {
            Ok(file) => Some(file),
            Err(reason) => {
                let kind = target.kind;
                self.error(
                    Diagnostic::error(span, format!("{kind} `{}` {reason}", target.display))
                        .with_code("include-not-found"),
                );
                None
            }
        }
    }

    fn map_entry_targets(&mut self, entry: &Node, origin: &Origin) -> Option<Vec<Target>> {
        let entries = entry.as_map().unwrap_or_default();
        let mut ok = true;
        for (key, _) in entries {
            if !LOCATION_KEYS.contains(&key.name.as_str())
                && !OTHER_KEYS.contains(&key.name.as_str())
            {
                let d =
                    Diagnostic::error(key.span, format!("unknown key `{}` in `include`", key.name))
                        .with_code("include-unknown-key")
                        .with_suggestion(
                            &key.name,
                            LOCATION_KEYS.iter().chain(OTHER_KEYS.iter()).copied(),
                        );
                self.error(d);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let locations: Vec<&(Key, Node)> = entries
            .iter()
            .filter(|(k, _)| LOCATION_KEYS.contains(&k.name.as_str()))
            .collect();
        if locations.len() > 1 {
            self.error(
                Diagnostic::error(locations[1].0.span, "each include must use only one of: `local`, `project`, `remote`, `template`, `component`, `artifact`")
                    .with_code("include-invalid"),
            );
            return None;
        }
        let Some(&(key, value)) = locations.first() else {
            self.error(
                Diagnostic::error(entry.span, "this include does not have a valid subkey for include; valid subkeys are: `local`, `project`, `remote`, `template`, `component`, `artifact`")
                    .with_code("include-invalid"),
            );
            return None;
        };
        if let Some(rules) = entry.get("rules")
            && !self.rules_match(rules, origin)
        {
            return Some(Vec::new());
        }
        let vars = self.variables(origin);
        let text = |node: &Node| node.as_str().map(|s| expand_server(s, &vars));
        let targets = match key.name.as_str() {
            "local" => match text(value) {
                Some(path) => self.local_targets(&path, value.span, origin),
                None => return self.not_a_string(value, "include:local"),
            },
            "remote" => match text(value) {
                Some(url) => {
                    let mut targets = self.remote_target(&url, value.span);
                    if let Some(integrity) = entry.get("integrity") {
                        let text = integrity.as_str().unwrap_or_default().to_owned();
                        for target in &mut targets {
                            target.integrity = Some((text.clone(), integrity.span));
                        }
                    }
                    targets
                }
                None => return self.not_a_string(value, "include:remote"),
            },
            "template" => match text(value) {
                Some(name) => self.template_target(&name, value.span),
                None => return self.not_a_string(value, "include:template"),
            },
            "component" => match text(value) {
                Some(name) => {
                    let written = value.as_str().unwrap_or_default().to_owned();
                    self.component_target(&name, &written, value.span)
                }
                None => return self.not_a_string(value, "include:component"),
            },
            "project" => match text(value) {
                Some(project) => self.project_targets(&project, entry, value.span, origin),
                None => return self.not_a_string(value, "include:project"),
            },
            _ => {
                self.error(
                    Diagnostic::error(key.span, "`include:artifact` is only allowed in `trigger:include` of a child pipeline")
                        .with_code("include-invalid"),
                );
                Vec::new()
            }
        };
        Some(targets)
    }
}

/// The header (`spec:`) document and the content document of a file.
fn split_header(mut docs: Vec<Node>) -> (Option<Node>, Option<Node>) {
    let has_header = docs.len() > 1
        && docs[0]
            .as_map()
            .is_some_and(|m| m.iter().any(|(k, _)| k.name == "spec"));
    if has_header {
        let content = docs.pop();
        let header = docs.into_iter().next();
        (header, content)
    } else {
        (None, docs.into_iter().next())
    }
}
