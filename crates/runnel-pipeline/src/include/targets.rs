//! Resolving one include entry to the files it names: `local` (with wildcards), `remote`,
//! `template`, `project` and `component`.

use crate::diag::Diagnostic;
use crate::expand::expand_server;
use crate::include::paths::{self, has_yaml_extension, wildcard_regex};
use crate::include::{Loader, Origin, Target, TargetSource};
use crate::source::Span;
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    pub(super) fn not_a_string(&mut self, value: &Node, what: &str) -> Option<Vec<Target>> {
        self.error(
            Diagnostic::error(
                value.span,
                format!("`{what}` should be a string, found {}", value.kind()),
            )
            .with_code("include-invalid"),
        );
        None
    }

    pub(super) fn local_targets(
        &mut self,
        location: &str,
        span: Span,
        origin: &Origin,
    ) -> Vec<Target> {
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
        // GitLab: file/local.rb "Local file `x` does not have project!" in remote and template files.
        let Some(project_root) = origin.project_root.as_deref() else {
            self.error(
                Diagnostic::error(span, format!("local file `{location}` does not have project"))
                    .with_code("include-no-project")
                    .with_help("a file included with `remote:` or `template:` has no project, so it cannot include local files"),
            );
            return Vec::new();
        };
        let local = |rel: &str| Target {
            kind: "local file",
            identity: format!("local:{}", project_root.join(rel).display()),
            display: format!("{}{rel}", origin.display_prefix),
            source: TargetSource::Path(project_root.join(rel)),
            origin: Origin {
                project_root: Some(project_root.to_path_buf()),
                display_prefix: origin.display_prefix.clone(),
                anonymous: origin.anonymous,
            },
            component: Vec::new(),
            integrity: None,
        };
        if !path.contains('*') {
            return vec![local(path)];
        }
        // GitLab matches wildcards against the paths of the commit, in path order.
        let files = self.files_of(project_root);
        let pattern = wildcard_regex(path);
        files
            .iter()
            .filter(|f| pattern.is_match(f))
            .map(|f| local(f))
            .collect()
    }

    pub(super) fn remote_target(&mut self, url: &str, span: Span) -> Vec<Target> {
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
                project_root: None,
                display_prefix: String::new(),
                anonymous: true,
            },
            component: Vec::new(),
            integrity: None,
        }]
    }

    pub(super) fn template_target(&mut self, name: &str, span: Span) -> Vec<Target> {
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
                project_root: None,
                display_prefix: String::new(),
                anonymous: true,
            },
            component: Vec::new(),
            integrity: None,
        }]
    }

    pub(super) fn project_targets(
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
        // A checkout of that ref (`<project>@<ref>`) wins over the plain checkout; GitLab matches
        // project paths case-insensitively (file/project.rb downcases them).
        let vars = self.variables(origin);
        let reference = entry
            .get("ref")
            .and_then(Node::as_str)
            .map(|r| expand_server(r, &vars));
        let root = self.opts.projects_dir.as_ref().and_then(|dir| {
            let mut candidates = Vec::new();
            if let Some(reference) = &reference {
                candidates.push(dir.join(format!("{project}@{reference}")));
            }
            candidates
                .into_iter()
                .find(|d| d.is_dir())
                .or_else(|| paths::project_dir(dir, project))
        });
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
            let file = expand_server(&file, &vars);
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
                    project_root: Some(root.clone()),
                    display_prefix: format!("{project}/"),
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
    pub(super) fn component_target(
        &mut self,
        address: &str,
        written: &str,
        span: Span,
    ) -> Vec<Target> {
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
        let project_root = self
            .opts
            .projects_dir
            .as_ref()
            .map(|dir| paths::project_dir(dir, &project).unwrap_or_else(|| dir.join(&project)));
        let candidates = project_root.as_ref().map(|root| {
            let base = root.join("templates");
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
        let root = project_root.unwrap_or_default();
        vec![Target {
            kind: "component file",
            identity: format!("component:{address}"),
            display: format!(
                "{project}/{}",
                file.strip_prefix(&root).unwrap_or(&file).display()
            ),
            source: TargetSource::Path(file),
            origin: Origin {
                project_root: Some(root),
                display_prefix: format!("{project}/"),
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
}
