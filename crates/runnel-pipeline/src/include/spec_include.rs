//! `spec:include`: input definitions read from other files and merged into the header's
//! `spec:inputs`.
//!
//! GitLab: lib/gitlab/ci/config/header/spec.rb (`entry :include, Header::Includes`),
//! header/include.rb (the common include keys), doc/ci/yaml/_index.md `spec:include` (GitLab
//! 18.6 behind `ci_file_inputs`, generally available in 18.9): `local`, `remote` and `project`
//! only; an included file holds only `inputs`; the files merge in order, then the inline inputs;
//! an inline input cannot have the name of an included one; components cannot use it.

use crate::diag::Diagnostic;
use crate::include::{Loader, Origin};
use crate::source::Span;
use crate::yaml::{self, Key, Node, Value};

/// Include types that `spec:include` accepts.
const SPEC_INCLUDE_TYPES: [&str; 3] = ["local", "remote", "project"];

impl Loader<'_, '_> {
    /// Returns `header` with the inputs of its `spec:include` files merged into `spec:inputs`
    /// (and `spec:include` removed); `None` when an included file cannot be used.
    pub(super) fn with_spec_includes(
        &mut self,
        header: Option<Node>,
        origin: &Origin,
        is_component: bool,
    ) -> Option<Option<Node>> {
        let Some(mut header) = header else {
            return Some(None);
        };
        let Some(spec) = header
            .as_map_mut()
            .and_then(|m| m.iter_mut().find(|(k, _)| k.name == "spec").map(|(_, v)| v))
        else {
            return Some(Some(header));
        };
        let Some(entries) = spec.as_map_mut() else {
            return Some(Some(header));
        };
        let Some(position) = entries.iter().position(|(k, _)| k.name == "include") else {
            return Some(Some(header));
        };
        let (include_key, include) = entries.remove(position);
        if is_component {
            self.error(
                Diagnostic::error(include_key.span, "`spec:include` is not allowed in a component")
                    .with_code("inputs-spec")
                    .with_help("a component must be self-contained: define its inputs in its own `spec:inputs`"),
            );
            return None;
        }
        let items: Vec<Node> = match include.value {
            Value::Seq(items) => items,
            _ => vec![include],
        };
        let mut merged: Vec<(Key, Node)> = Vec::new();
        let before = self.diagnostics.len();
        for item in &items {
            for (name, input) in self.spec_include_inputs(item, origin) {
                // Files merge in order: a later file's definition replaces an earlier one.
                match merged.iter_mut().find(|(k, _)| k.name == name.name) {
                    Some(slot) => *slot = (name, input),
                    None => merged.push((name, input)),
                }
            }
        }
        let inline_at = entries.iter().position(|(k, _)| k.name == "inputs");
        let inline: Vec<(Key, Node)> = inline_at
            .and_then(|i| entries[i].1.as_map())
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        for (name, _) in &inline {
            if merged.iter().any(|(k, _)| k.name == name.name) {
                self.error(
                    Diagnostic::error(
                        name.span,
                        format!("input `{}` is already defined by `spec:include`", name.name),
                    )
                    .with_code("inputs-spec")
                    .with_help("an inline input cannot have the name of an included input"),
                );
            }
        }
        if self.diagnostics.len() > before {
            return None;
        }
        merged.extend(inline);
        let node = Node::new(include_key.span, Value::Map(merged));
        match inline_at {
            Some(i) => entries[i].1 = node,
            None => entries.push((Key::new("inputs", include_key.span), node)),
        }
        Some(Some(header))
    }

    /// The `inputs` of the files one `spec:include` entry names.
    fn spec_include_inputs(&mut self, item: &Node, origin: &Origin) -> Vec<(Key, Node)> {
        let kind = item.as_map().and_then(|m| {
            m.iter()
                .map(|(k, _)| k.name.as_str())
                .find(|k| super::LOCATION_KEYS.contains(k))
        });
        if let Some(kind) = kind
            && !SPEC_INCLUDE_TYPES.contains(&kind)
        {
            self.error(
                Diagnostic::error(item.span, format!("`spec:include` cannot use `{kind}`"))
                    .with_code("inputs-spec")
                    .with_help("`spec:include` reads input definitions with `local`, `remote` or `project` only"),
            );
            return Vec::new();
        }
        let item = match &item.value {
            Value::Str(_) => Node::new(
                item.span,
                Value::Map(vec![(Key::new("local", item.span), item.clone())]),
            ),
            _ => item.clone(),
        };
        let Some(targets) = self.map_entry_targets(&item, origin) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for target in targets {
            let Some(file) = self.read_target(&target, item.span) else {
                continue;
            };
            match yaml::parse_documents(self.map, file) {
                Ok(docs) => out.extend(self.inputs_file(docs, &target.display, item.span)),
                Err(diags) => diags.into_iter().for_each(|d| self.error(d)),
            }
        }
        out
    }

    /// An included input file: a mapping with only `inputs`.
    fn inputs_file(&mut self, docs: Vec<Node>, display: &str, span: Span) -> Vec<(Key, Node)> {
        let Some(doc) = docs.into_iter().next().filter(|d| !d.is_null()) else {
            self.error(
                Diagnostic::error(span, format!("input file `{display}` is empty"))
                    .with_code("inputs-spec"),
            );
            return Vec::new();
        };
        let Some(entries) = doc.as_map() else {
            self.error(
                Diagnostic::error(
                    doc.span,
                    format!("input file `{display}` should be a mapping with `inputs`"),
                )
                .with_code("inputs-spec"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            if key.name != "inputs" {
                self.error(
                    Diagnostic::error(
                        key.span,
                        format!("unknown key `{}` in input file `{display}`", key.name),
                    )
                    .with_code("inputs-spec")
                    .with_help("an input file holds only `inputs`"),
                );
                continue;
            }
            match value.as_map() {
                Some(inputs) => out.extend(inputs.iter().cloned()),
                None => self.error(
                    Diagnostic::error(value.span, "`inputs` should be a mapping")
                        .with_code("inputs-spec"),
                ),
            }
        }
        out
    }
}
