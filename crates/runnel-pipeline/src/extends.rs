//! `extends:` (multi-level, multi-parent) and the deep merge that `include` and `extends` share.
//!
//! Runs after includes are merged and before `!reference` tags are resolved, so a `!reference`
//! node is an opaque leaf here (GitLab: lib/gitlab/ci/config.rb `build_config`).

use std::collections::HashMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{Key, Node, Value};

/// GitLab: lib/gitlab/ci/config/extendable/entry.rb, `MAX_NESTING_LEVELS` (a job plus at most 10
/// ancestors on one chain).
const MAX_NESTING_LEVELS: usize = 10;

/// Merges `over` into `base` as Ruby's `Hash#deep_merge`: two mappings merge key by key
/// (recursively); anything else (sequences, scalars, null, a tagged node) replaces. A key already
/// in `base` keeps its position; new keys are appended.
pub fn deep_merge(base: &mut Node, over: Node) {
    let both_maps = matches!(base.value, Value::Map(_)) && base.tag.is_none();
    if !(both_maps && matches!(over.value, Value::Map(_)) && over.tag.is_none()) {
        *base = over;
        return;
    }
    let Value::Map(over_entries) = over.value else {
        return;
    };
    let Value::Map(entries) = &mut base.value else {
        return;
    };
    merge_entries(entries, over_entries);
}

fn merge_entries(entries: &mut Vec<(Key, Node)>, over: Vec<(Key, Node)>) {
    // Large mappings (the root of a big pipeline) get an index so merging stays linear.
    if entries.len() > 16 {
        let mut index: HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.name.clone(), i))
            .collect();
        for (key, value) in over {
            match index.get(&key.name) {
                Some(&i) => deep_merge(&mut entries[i].1, value),
                None => {
                    index.insert(key.name.clone(), entries.len());
                    entries.push((key, value));
                }
            }
        }
        return;
    }
    for (key, value) in over {
        match entries.iter_mut().find(|(k, _)| k.name == key.name) {
            Some((_, existing)) => deep_merge(existing, value),
            None => entries.push((key, value)),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Pending,
    InProgress,
    Done,
    Failed,
}

struct Extender<'a> {
    names: Vec<String>,
    index: HashMap<String, usize>,
    values: Vec<Node>,
    keys: &'a [Key],
    state: Vec<State>,
    diagnostics: &'a mut Diagnostics,
}

/// Applies `extends:` to every top-level entry of `root` that has it. The `extends` key itself
/// stays in the result, as in GitLab.
pub fn resolve_extends(root: &mut Node, diagnostics: &mut Diagnostics) {
    let Some(entries) = root.as_map_mut() else {
        return;
    };
    if !entries.iter().any(|(_, v)| v.get("extends").is_some()) {
        return;
    }
    let taken = std::mem::take(entries);
    let (keys, values): (Vec<Key>, Vec<Node>) = taken.into_iter().unzip();
    let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    let index = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let state = vec![State::Pending; values.len()];
    let mut extender = Extender {
        names,
        index,
        values,
        keys: &keys,
        state,
        diagnostics,
    };
    for i in 0..extender.values.len() {
        let mut chain = Vec::new();
        extender.resolve(i, &mut chain);
    }
    let values = extender.values;
    *entries = keys.into_iter().zip(values).collect();
}

impl Extender<'_> {
    /// Resolves entry `i`; returns false when it (or an ancestor) could not be resolved.
    fn resolve(&mut self, i: usize, chain: &mut Vec<usize>) -> bool {
        match self.state[i] {
            State::Done => return true,
            State::Failed => return false,
            State::InProgress | State::Pending => {}
        }
        let name = self.names[i].clone();
        if chain.contains(&i) {
            self.fail(
                i,
                format!("`{name}`: circular dependency detected in `extends`"),
            );
            return false;
        }
        let Some(extends) = self.values[i].get_entry("extends").cloned() else {
            self.state[i] = State::Done;
            return true;
        };
        if chain.len() >= MAX_NESTING_LEVELS {
            self.fail(i, format!("`{name}`: nesting too deep in `extends`"));
            return false;
        }
        let Some(parents) = parent_names(&extends.1) else {
            let d = Diagnostic::error(
                extends.1.span,
                format!("`{name}`: `extends` should be a string or an array of strings"),
            )
            .with_code("extends-invalid");
            self.diagnostics.push(d);
            self.state[i] = State::Failed;
            return false;
        };
        let unknown: Vec<&str> = parents
            .iter()
            .map(String::as_str)
            .filter(|p| !self.index.contains_key(*p))
            .collect();
        if !unknown.is_empty() {
            let list = unknown
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut d = Diagnostic::error(
                extends.1.span,
                format!("`{name}`: unknown keys in `extends` ({list})"),
            )
            .with_code("extends-unknown");
            if let [one] = unknown.as_slice() {
                d = d.with_suggestion(one, self.names.iter().map(String::as_str));
            }
            self.diagnostics.push(d);
            self.state[i] = State::Failed;
            return false;
        }
        self.state[i] = State::InProgress;
        chain.push(i);
        let mut ok = true;
        let mut parent_ids = Vec::with_capacity(parents.len());
        for parent in &parents {
            let p = self.index[parent.as_str()];
            if chain.contains(&p) {
                self.fail(
                    p,
                    format!("`{parent}`: circular dependency detected in `extends`"),
                );
                ok = false;
                break;
            }
            if !self.resolve(p, chain) {
                ok = false;
                break;
            }
            parent_ids.push(p);
        }
        chain.pop();
        if !ok {
            self.state[i] = State::Failed;
            return false;
        }
        let invalid: Vec<&str> = parent_ids
            .iter()
            .filter(|&&p| self.values[p].as_map().is_none() || self.values[p].tag.is_some())
            .map(|&p| self.names[p].as_str())
            .collect();
        if !invalid.is_empty() {
            let list = invalid
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let d = Diagnostic::error(
                extends.1.span,
                format!("`{name}`: invalid base hashes in `extends` ({list})"),
            )
            .with_code("extends-invalid-base");
            self.diagnostics.push(d);
            self.state[i] = State::Failed;
            return false;
        }
        let span = self.values[i].span;
        let mut merged = Node::new(span, Value::Map(Vec::new()));
        for p in parent_ids {
            deep_merge(&mut merged, self.values[p].clone());
        }
        let own = std::mem::replace(&mut self.values[i], Node::new(span, Value::Null));
        deep_merge(&mut merged, own);
        merged.span = span;
        self.values[i] = merged;
        self.state[i] = State::Done;
        true
    }

    fn fail(&mut self, i: usize, message: String) {
        if self.state[i] == State::Failed {
            return;
        }
        let span = self.values[i]
            .get_entry("extends")
            .map_or(self.keys[i].span, |(k, _)| k.span);
        self.diagnostics
            .push(Diagnostic::error(span, message).with_code("extends-cycle"));
        self.state[i] = State::Failed;
    }
}

/// `extends: .a` or `extends: [.a, .b]`.
fn parent_names(node: &Node) -> Option<Vec<String>> {
    if node.tag.is_some() {
        return None;
    }
    match &node.value {
        Value::Str(s) => Some(vec![s.clone()]),
        Value::Seq(items) => items
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}
