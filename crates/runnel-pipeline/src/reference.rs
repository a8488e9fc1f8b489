//! `!reference [key, subkey, ...]` tags, resolved against the merged, post-`extends` config, and
//! the flattening of nested command lists (`script`, `before_script`, `after_script`).
//!
//! GitLab: lib/gitlab/ci/config/yaml/tags/{resolver,reference,base}.rb. A reference is replaced in
//! place by a copy of the value it names; references inside that value are followed first.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::Span;
use crate::yaml::{Node, Value};

/// GitLab: lib/gitlab/ci/config/entry/commands.rb — nested command arrays up to 10 levels deep.
const MAX_COMMAND_NESTING: usize = 10;

const REFERENCE_TAG: &str = "!reference";

/// Replaces every `!reference` node in `root`. Errors are collected; a failed reference becomes
/// null so loading can go on.
pub fn resolve_references(root: &mut Node, diagnostics: &mut Diagnostics) {
    if !contains_reference(root) {
        return;
    }
    let snapshot = root.clone();
    let mut resolver = Resolver {
        root: &snapshot,
        done: HashMap::new(),
        stack: Vec::new(),
    };
    resolver.replace_in(root, diagnostics);
}

fn contains_reference(node: &Node) -> bool {
    if node.tag.as_deref() == Some(REFERENCE_TAG) {
        return true;
    }
    match &node.value {
        Value::Seq(items) => items.iter().any(contains_reference),
        Value::Map(entries) => entries.iter().any(|(_, v)| contains_reference(v)),
        _ => false,
    }
}

struct Resolver<'a> {
    root: &'a Node,
    /// Resolved values by path (each reference is resolved once, as GitLab memoizes it).
    done: HashMap<Vec<String>, Result<Node, ()>>,
    stack: Vec<Vec<String>>,
}

impl Resolver<'_> {
    fn replace_in(&mut self, node: &mut Node, diagnostics: &mut Diagnostics) {
        if node.tag.as_deref() == Some(REFERENCE_TAG) {
            *node = match self.resolve(node, diagnostics) {
                Ok(value) => value,
                Err(()) => Node::new(node.span, Value::Null),
            };
            return;
        }
        match &mut node.value {
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|n| self.replace_in(n, diagnostics)),
            Value::Map(entries) => {
                entries
                    .iter_mut()
                    .for_each(|(_, n)| self.replace_in(n, diagnostics));
            }
            _ => {}
        }
    }

    fn resolve(&mut self, tag: &Node, diagnostics: &mut Diagnostics) -> Result<Node, ()> {
        let Some(path) = reference_path(tag) else {
            diagnostics.push(
                Diagnostic::error(
                    tag.span,
                    format!("!reference {} is not valid", inspect_node(tag)),
                )
                .with_code("reference-invalid")
                .with_help("write `!reference [job, key, ...]` with one or more names"),
            );
            return Err(());
        };
        if let Some(result) = self.done.get(&path) {
            return result.clone();
        }
        if self.stack.contains(&path) {
            diagnostics.push(
                Diagnostic::error(
                    tag.span,
                    format!("!reference {} is part of a circular chain", inspect(&path)),
                )
                .with_code("reference-circular"),
            );
            return Err(());
        }
        let Some(target) = lookup(self.root, &path) else {
            let mut d = Diagnostic::error(
                tag.span,
                format!("!reference {} could not be found", inspect(&path)),
            )
            .with_code("reference-not-found");
            if let Some(first) = path.first()
                && self.root.get(first).is_none()
                && let Some(entries) = self.root.as_map()
            {
                d = d.with_suggestion(first, entries.iter().map(|(k, _)| k.name.as_str()));
            }
            diagnostics.push(d);
            return Err(());
        };
        let mut value = target.clone();
        self.stack.push(path.clone());
        self.replace_in(&mut value, diagnostics);
        self.stack.pop();
        self.done.insert(path, Ok(value.clone()));
        Ok(value)
    }
}

/// The names of a `!reference` sequence, if it is a non-empty sequence of strings.
fn reference_path(tag: &Node) -> Option<Vec<String>> {
    let items = tag.as_seq()?;
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// `config.dig(*path)`: a missing key, a non-mapping on the way, `null` or `false` is not found.
fn lookup<'a>(root: &'a Node, path: &[String]) -> Option<&'a Node> {
    let mut node = root;
    for key in path {
        if node.tag.is_some() {
            return None;
        }
        node = node.get(key)?;
    }
    match node.value {
        Value::Null | Value::Bool(false) => None,
        _ => Some(node),
    }
}

/// Ruby's `Array#inspect` of strings: `["a", "b"]`.
fn inspect(path: &[String]) -> String {
    let items: Vec<String> = path.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn inspect_node(node: &Node) -> String {
    match &node.value {
        Value::Seq(items) => {
            let parts: Vec<String> = items.iter().map(inspect_node).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Map(_) => "{...}".to_owned(),
        _ => node.scalar_to_string().unwrap_or_default(),
    }
}

/// Flattens nested lists in `script`, `before_script` and `after_script` of every top-level
/// mapping (jobs, hidden jobs, `default`), as GitLab's `Entry::Commands` does after `!reference`.
pub fn flatten_commands(root: &mut Node, diagnostics: &mut Diagnostics) {
    let Some(entries) = root.as_map_mut() else {
        return;
    };
    for (name, job) in entries.iter_mut() {
        // GitLab validates `default:` and jobs; a hidden job is never composed, so it has no error.
        // (GitLab's location of the mapping, how runnel names it)
        let place = match name.name.as_str() {
            "default" => Some(("default".to_owned(), "`default`".to_owned())),
            n if n.starts_with('.') || crate::keywords::TOP_LEVEL.contains(&n) => None,
            n => Some((format!("jobs:{n}"), format!("job `{n}`"))),
        };
        let Some(job_entries) = job.as_map_mut() else {
            continue;
        };
        for (key, value) in job_entries.iter_mut() {
            if matches!(
                key.name.as_str(),
                "script" | "before_script" | "after_script"
            ) && value
                .as_seq()
                .is_some_and(|items| items.iter().any(|n| n.as_seq().is_some()))
            {
                let at = place.as_ref().map(|(p, o)| (p.clone(), o.as_str()));
                flatten(value, key.span, &key.name, at, diagnostics);
            }
        }
        if let Some(hooks) = job.get_mut("hooks")
            && let Some(pre) = hooks.get_mut("pre_get_sources_script")
            && pre
                .as_seq()
                .is_some_and(|items| items.iter().any(|n| n.as_seq().is_some()))
        {
            let span = pre.span;
            let at = place
                .as_ref()
                .map(|(p, o)| (format!("{p}:hooks"), o.as_str()));
            flatten(pre, span, "pre_get_sources_script", at, diagnostics);
        }
    }
}

/// `at`: GitLab's location of the mapping (`jobs:build`, `default`) and how runnel names its
/// owner; `None` (hidden jobs) reports nothing.
fn flatten(
    list: &mut Node,
    span: Span,
    key: &str,
    at: Option<(String, &str)>,
    diagnostics: &mut Diagnostics,
) {
    let Value::Seq(items) = std::mem::replace(&mut list.value, Value::Null) else {
        return;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut too_deep = false;
    push_flat(items, 1, &mut out, &mut too_deep);
    if too_deep && let Some((place, owner)) = at {
        diagnostics.push(
            Diagnostic::error(
                span,
                format!(
                    "`{key}` of {owner} should be a string or a nested array of strings up to 10 levels deep"
                ),
            )
            .with_code("commands-too-deep")
            .with_note(
                Span::synthetic(),
                format!("GitLab reports: {place}:{key} config should be a string or a nested array of strings up to 10 levels deep"),
            ),
        );
    }
    list.value = Value::Seq(out);
}

fn push_flat(items: Vec<Node>, depth: usize, out: &mut Vec<Node>, too_deep: &mut bool) {
    for item in items {
        match item.value {
            Value::Seq(inner) if item.tag.is_none() => {
                if depth >= MAX_COMMAND_NESTING {
                    *too_deep = true;
                    continue;
                }
                push_flat(inner, depth + 1, out, too_deep);
            }
            _ => out.push(item),
        }
    }
}
