//! `include:` — every form GitLab accepts (`local` with wildcards, `remote`, `project`/`file`/
//! `ref`, `template`, `component`), `include:rules`, `include:inputs`, nested includes and
//! GitLab's merge order: included files first, later includes over earlier ones, the including
//! file's own keys over all of them.
//!
//! Files come from the project directory and from a local directory of checked-out projects;
//! remote files come from a [`Fetcher`] that the caller provides (this crate does no HTTP).
//! GitLab: lib/gitlab/ci/config/external/{processor,mapper,context}.rb and file/*.rb.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use sha2::Digest as _;

use crate::diag::{Diagnostic, Diagnostics};
use crate::extends::deep_merge;
use crate::inputs::{self, Context};
use crate::resolve::LoadOptions;
use crate::source::{FileId, SourceMap, Span};
use crate::yaml::{self, Key, Node, Value};

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
    /// The project directory that `local:` paths in this file are relative to.
    pub(crate) project_root: PathBuf,
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
    stack: Vec<String>,
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
        let Some(mut content) = content.filter(|c| !c.is_null()) else {
            let path = self.map.path(file).to_owned();
            let message = if self.stack.is_empty() {
                format!("`{path}` is empty: a pipeline configuration needs at least one job")
            } else {
                format!("included file `{path}` is empty")
            };
            let span = self.include_spans.last().copied().unwrap_or(args_span);
            self.error(Diagnostic::error(span, message).with_code("include-empty"));
            return None;
        };
        let before = self.diagnostics.len();
        let mut diags = Diagnostics::new();
        let values = inputs::evaluate_inputs(header.as_ref(), args, args_span, &mut diags);
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
                let location = inputs::expand(s, self.variables(origin), false);
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
        if self.stack.contains(&target.identity) {
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
        self.stack.push(target.identity);
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
        let text = |node: &Node| node.as_str().map(|s| inputs::expand(s, vars, false));
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

    fn not_a_string(&mut self, value: &Node, what: &str) -> Option<Vec<Target>> {
        self.error(
            Diagnostic::error(
                value.span,
                format!("`{what}` should be a string, found {}", value.kind()),
            )
            .with_code("include-invalid"),
        );
        None
    }

    fn local_targets(&mut self, location: &str, span: Span, origin: &Origin) -> Vec<Target> {
        let path = location.trim_start_matches('/');
        if !has_yaml_extension(path) {
            self.error(
                Diagnostic::error(
                    span,
                    format!("included file `{location}` does not have YAML extension"),
                )
                .with_code("include-extension")
                .with_help("included files must end in `.yml` or `.yaml`"),
            );
            return Vec::new();
        }
        let local = |rel: &str| Target {
            kind: "local file",
            identity: format!("local:{}", origin.project_root.join(rel).display()),
            display: rel.to_owned(),
            source: TargetSource::Path(origin.project_root.join(rel)),
            origin: Origin {
                project_root: origin.project_root.clone(),
                anonymous: origin.anonymous,
            },
            component: Vec::new(),
            integrity: None,
        };
        if !path.contains('*') {
            return vec![local(path)];
        }
        // GitLab matches wildcards against the paths of the commit, in path order.
        let files = list_files(&origin.project_root);
        let pattern = wildcard_regex(path);
        files
            .iter()
            .filter(|f| pattern.is_match(f))
            .map(|f| local(f))
            .collect()
    }

    fn remote_target(&mut self, url: &str, span: Span) -> Vec<Target> {
        let valid = (url.starts_with("http://") || url.starts_with("https://")) && url.len() > 8;
        if !valid {
            self.error(
                Diagnostic::error(
                    span,
                    format!("remote file `{url}` does not have a valid address"),
                )
                .with_code("include-invalid"),
            );
            return Vec::new();
        }
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if !has_yaml_extension(path) {
            self.error(
                Diagnostic::error(
                    span,
                    format!("included file `{url}` does not have YAML extension"),
                )
                .with_code("include-extension"),
            );
            return Vec::new();
        }
        vec![Target {
            kind: "remote file",
            identity: format!("remote:{url}"),
            display: url.to_owned(),
            source: TargetSource::Remote(url.to_owned()),
            origin: Origin {
                project_root: self.opts.project_dir.clone(),
                anonymous: true,
            },
            component: Vec::new(),
            integrity: None,
        }]
    }

    fn template_target(&mut self, name: &str, span: Span) -> Vec<Target> {
        if !has_yaml_extension(name) {
            self.error(
                Diagnostic::error(
                    span,
                    format!("template file `{name}` is not a valid location"),
                )
                .with_code("include-invalid"),
            );
            return Vec::new();
        }
        let found = self.opts.projects_dir.as_ref().and_then(|dir| {
            [
                dir.join("templates").join(name),
                dir.join("gitlab-org/gitlab/lib/gitlab/ci/templates")
                    .join(name),
            ]
            .into_iter()
            .find(|p| p.is_file())
        });
        let Some(path) = found else {
            self.error(
                Diagnostic::error(span, format!("template `{name}` is not available offline"))
                    .with_code("include-template")
                    .with_help("GitLab's templates ship with GitLab; put a copy in `<projects dir>/templates/` to use it"),
            );
            return Vec::new();
        };
        vec![Target {
            kind: "template",
            identity: format!("template:{name}"),
            display: format!("templates/{name}"),
            source: TargetSource::Path(path),
            origin: Origin {
                project_root: self.opts.project_dir.clone(),
                anonymous: true,
            },
            component: Vec::new(),
            integrity: None,
        }]
    }

    fn project_targets(
        &mut self,
        project: &str,
        entry: &Node,
        span: Span,
        origin: &Origin,
    ) -> Vec<Target> {
        let files: Vec<(String, Span)> = match entry.get("file") {
            Some(node) => match &node.value {
                Value::Str(s) => vec![(s.clone(), node.span)],
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|n| n.as_str().map(|s| (s.to_owned(), n.span)))
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        if files.is_empty() {
            self.error(
                Diagnostic::error(
                    span,
                    format!(
                        "`include:project` `{project}` needs `file:` (a path or a list of paths)"
                    ),
                )
                .with_code("include-invalid"),
            );
            return Vec::new();
        }
        let project = project.trim_matches('/');
        let root = self
            .opts
            .projects_dir
            .as_ref()
            .map(|d| d.join(project))
            .filter(|d| d.is_dir());
        let Some(root) = root else {
            self.error(
                Diagnostic::error(span, format!("project `{project}` not found or access denied"))
                    .with_code("include-project")
                    .with_help(format!("runnel reads `project:` includes from a checkout at `<projects dir>/{project}/`")),
            );
            return Vec::new();
        };
        let vars = self.variables(origin);
        let mut targets = Vec::new();
        for (file, file_span) in files {
            let file = inputs::expand(&file, vars, false);
            let rel = file.trim_start_matches('/').to_owned();
            if !has_yaml_extension(&rel) {
                self.error(
                    Diagnostic::error(
                        file_span,
                        format!("included file `{file}` does not have YAML extension"),
                    )
                    .with_code("include-extension"),
                );
                continue;
            }
            if !root.join(&rel).is_file() {
                self.error(
                    Diagnostic::error(
                        file_span,
                        format!("project `{project}` file `{rel}` does not exist"),
                    )
                    .with_code("include-not-found"),
                );
                continue;
            }
            targets.push(Target {
                kind: "project file",
                identity: format!("project:{project}:{rel}"),
                display: format!("{project}/{rel}"),
                source: TargetSource::Path(root.join(&rel)),
                origin: Origin {
                    project_root: root.clone(),
                    anonymous: origin.anonymous,
                },
                component: Vec::new(),
                integrity: None,
            });
        }
        targets
    }

    /// `<fqdn>/<project path>/<name>@<version>` → `<projects dir>/<project path>/templates/
    /// <name>.yml` or `templates/<name>/template.yml`.
    fn component_target(&mut self, address: &str, written: &str, span: Span) -> Vec<Target> {
        let (path, version) = address.rsplit_once('@').unwrap_or((address, ""));
        let mut parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 3 || version.is_empty() {
            self.error(
                Diagnostic::error(
                    span,
                    format!("component `{written}` is not a valid address"),
                )
                .with_code("include-component")
                .with_help("write `<fqdn>/<project path>/<component name>@<version>`"),
            );
            return Vec::new();
        }
        let name = parts.pop().unwrap_or_default();
        let project = parts[1..].join("/");
        let candidates = self.opts.projects_dir.as_ref().map(|dir| {
            let base = dir.join(&project).join("templates");
            [
                base.join(format!("{name}.yml")),
                base.join(name).join("template.yml"),
            ]
        });
        let found = candidates.into_iter().flatten().find(|p| p.is_file());
        let Some(file) = found else {
            self.error(
                Diagnostic::error(span, format!("component `{written}` not found"))
                    .with_code("include-component")
                    .with_help(format!(
                        "runnel reads components from `<projects dir>/{project}/templates/{name}.yml` or `templates/{name}/template.yml`"
                    )),
            );
            return Vec::new();
        };
        let root = self
            .opts
            .projects_dir
            .as_ref()
            .map(|d| d.join(&project))
            .unwrap_or_default();
        vec![Target {
            kind: "component file",
            identity: format!("component:{address}"),
            display: format!(
                "{project}/{}",
                file.strip_prefix(&root).unwrap_or(&file).display()
            ),
            source: TargetSource::Path(file),
            origin: Origin {
                project_root: root,
                anonymous: false,
            },
            integrity: None,
            component: vec![
                ("name".to_owned(), name.to_owned()),
                ("version".to_owned(), version.to_owned()),
                ("reference".to_owned(), version.to_owned()),
            ],
        }]
    }

    /// `include:rules`: the first rule whose clauses all match decides (`when: never` excludes);
    /// no match excludes the include. GitLab: lib/gitlab/ci/config/external/rules.rb.
    fn rules_match(&mut self, rules: &Node, origin: &Origin) -> bool {
        let Some(items) = rules.as_seq() else {
            self.error(
                Diagnostic::error(rules.span, "`include:rules` should be an array of mappings")
                    .with_code("include-rules"),
            );
            return false;
        };
        for rule in items {
            if rule.as_map().is_none() {
                self.error(
                    Diagnostic::error(rule.span, "an `include:rules` rule should be a mapping")
                        .with_code("include-rules"),
                );
                return false;
            }
            if !self.rule_clauses_match(rule, origin) {
                continue;
            }
            return rule.get("when").and_then(Node::as_str) != Some("never");
        }
        false
    }

    fn rule_clauses_match(&mut self, rule: &Node, origin: &Origin) -> bool {
        if let Some(condition) = rule.get("if") {
            let Some(text) = condition.as_str() else {
                self.error(
                    Diagnostic::error(condition.span, "`rules:if` should be a string")
                        .with_code("include-rules"),
                );
                return false;
            };
            match crate::rules::Expr::parse(text) {
                Ok(expr) => {
                    if !expr.evaluate(&self.variables(origin)) {
                        return false;
                    }
                }
                Err(e) => {
                    self.error(
                        Diagnostic::error(condition.span, e.to_string()).with_code("include-rules"),
                    );
                    return false;
                }
            }
        }
        if let Some(exists) = rule.get("exists") {
            let paths: Vec<&str> = match &exists.value {
                Value::Str(s) => vec![s.as_str()],
                Value::Seq(items) => items.iter().filter_map(Node::as_str).collect(),
                Value::Map(_) => match exists.get("paths") {
                    Some(p) => match &p.value {
                        Value::Str(s) => vec![s.as_str()],
                        Value::Seq(items) => items.iter().filter_map(Node::as_str).collect(),
                        _ => Vec::new(),
                    },
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            let files = list_files(&origin.project_root);
            let any = paths.iter().any(|p| {
                let p = inputs::expand(p, self.variables(origin), false);
                let pattern = glob_regex(p.trim_start_matches('/'));
                files.iter().any(|f| pattern.is_match(f))
            });
            if !any {
                return false;
            }
        }
        // `changes:` needs the pushed diff; locally every file counts as changed, as GitLab does
        // for pipelines without a diff base.
        true
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

/// Standard base64 with padding (for `integrity: sha256-...`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn has_yaml_extension(path: &str) -> bool {
    path.ends_with(".yml") || path.ends_with(".yaml")
}

/// Files below `root` as `/`-separated relative paths, sorted; `.git` is skipped.
fn list_files(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).ok()?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            Some(parts.join("/"))
        })
        .collect();
    files.sort();
    files
}

/// GitLab's wildcard for `include:local`: regex-escape, then `**` → `.*?`, `*` → `[^/]*?`,
/// anchored (lib/gitlab/ci/config/external/file/local.rb via `Gitlab::Git::Repository`'s
/// `search_files_by_wildcard_path`).
fn wildcard_regex(path: &str) -> Regex {
    let escaped = regex::escape(path);
    let pattern = escaped
        .replace(r"\*\*", "\u{0}")
        .replace(r"\*", "[^/]*?")
        .replace('\u{0}', ".*?");
    Regex::new(&format!("^{pattern}$")).unwrap_or_else(|_| never_matching())
}

/// `exists:` globs use Ruby's `File.fnmatch?` with `FNM_PATHNAME | FNM_EXTGLOB`; `**/` spans
/// directories.
fn glob_regex(glob: &str) -> Regex {
    let mut out = String::from("^");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') && chars.get(i + 2) == Some(&'/') => {
                out.push_str("(?:.*/)?");
                i += 3;
                continue;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                out.push_str(".*");
                i += 2;
                continue;
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '{' => out.push_str("(?:"),
            '}' => out.push(')'),
            ',' => out.push('|'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    out.push('$');
    Regex::new(&out).unwrap_or_else(|_| never_matching())
}

fn never_matching() -> Regex {
    static NEVER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[^\s\S]").expect("valid regex"));
    NEVER.clone()
}

#[cfg(test)]
mod tests {
    use super::{base64, glob_regex, wildcard_regex};

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn wildcards_follow_gitlab_semantics() {
        let one = wildcard_regex("configs/*.yml");
        assert!(one.is_match("configs/a.yml"));
        assert!(!one.is_match("configs/sub/a.yml"));
        let any = wildcard_regex("configs/**.yml");
        assert!(any.is_match("configs/a.yml"));
        assert!(any.is_match("configs/sub/a.yml"));
        let sub = wildcard_regex("configs/**/*.yml");
        assert!(!sub.is_match("configs/a.yml"));
        assert!(sub.is_match("configs/sub/a.yml"));
    }

    #[test]
    fn exists_globs_cross_directories_only_with_double_star() {
        assert!(glob_regex("**/*.py").is_match("a.py"));
        assert!(glob_regex("**/*.py").is_match("src/a.py"));
        assert!(!glob_regex("*.py").is_match("src/a.py"));
        assert!(glob_regex("Dockerfile").is_match("Dockerfile"));
    }
}
