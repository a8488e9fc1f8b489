//! YAML → spanned [`Node`] tree, read as Ruby's Psych reads it (YAML 1.1), which is what GitLab
//! uses. serde-saphyr parses (anchors, aliases, merge keys, tags, several documents); the typing of
//! plain scalars is ours, because Psych differs from YAML 1.2 and from serde-saphyr (`y` and `n` are
//! strings, `1:30` is sexagesimal, `1,000` is an integer, `1e3` is a string, a date is refused).
//!
//! This module knows nothing of GitLab keywords: it only builds the tree and reports YAML errors.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned, Tagged};

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Pos, SourceFile, SourceMap, Span};

mod psych;

use psych::{PsychScalar, psych_scalar};

type RawNode = Spanned<Tagged<Raw>>;

enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<RawNode>),
    Map(Vec<(Spanned<String>, RawNode)>),
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<RawNode>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<Spanned<String>, RawNode>()? {
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// GitLab's `max_yaml_depth` (lib/gitlab/config/loader/yaml.rb, `MAX_YAML_DEPTH`).
const MAX_YAML_DEPTH: usize = 100;

/// One YAML node with the place it was written (for an alias: the anchored definition).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    /// An application tag such as `!reference`; YAML core tags (`!!str`) are applied and dropped.
    pub tag: Option<String>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in source order, unique (the last of duplicate keys wins, as in Psych).
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// What a node is, for messages: its Display is "a string", "a mapping", ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Seq,
    Map,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Null => "null",
            NodeKind::Bool => "a boolean",
            NodeKind::Int => "an integer",
            NodeKind::Float => "a float",
            NodeKind::Str => "a string",
            NodeKind::Seq => "a sequence",
            NodeKind::Map => "a mapping",
        })
    }
}

impl Key {
    pub fn new(name: impl Into<String>, span: Span) -> Self {
        Key {
            name: name.into(),
            span,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Node {
    pub fn new(span: Span, value: Value) -> Self {
        Node {
            span,
            tag: None,
            value,
        }
    }

    pub fn kind(&self) -> NodeKind {
        match &self.value {
            Value::Null => NodeKind::Null,
            Value::Bool(_) => NodeKind::Bool,
            Value::Int(_) => NodeKind::Int,
            Value::Float(_) => NodeKind::Float,
            Value::Str(_) => NodeKind::Str,
            Value::Seq(_) => NodeKind::Seq,
            Value::Map(_) => NodeKind::Map,
        }
    }

    /// The value of `key` when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The key entry (with its span) of `key` when this node is a mapping that has it.
    pub fn get_entry(&self, key: &str) -> Option<&(Key, Node)> {
        self.as_map()?.iter().find(|(k, _)| k.name == key)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Key, Node)>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a sequence with nested sequences flattened, as Ruby's `Array#flatten`, and
    /// how many arrays deep the deepest item sits (the sequence itself counts as one). GitLab
    /// flattens `rules`, `needs`, `services`, `cache` and `include:rules` this way
    /// (lib/gitlab/config/entry/composable_array.rb, entry/rules.rb, entry/needs.rb); `!reference`
    /// and anchors are what nest them.
    pub fn flattened(&self) -> Option<(Vec<&Node>, usize)> {
        fn walk<'n>(items: &'n [Node], depth: usize, out: &mut Vec<&'n Node>, deepest: &mut usize) {
            *deepest = (*deepest).max(depth);
            for item in items {
                match &item.value {
                    Value::Seq(inner) => walk(inner, depth + 1, out, deepest),
                    _ => out.push(item),
                }
            }
        }
        let items = self.as_seq()?;
        let mut out = Vec::with_capacity(items.len());
        let mut deepest = 1;
        walk(items, 1, &mut out, &mut deepest);
        Some((out, deepest))
    }

    pub fn as_seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        match &mut self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A scalar as GitLab's Ruby `to_s` prints it (`true`, `42`, `1.5`, `` for null), or `None`
    /// for a sequence or mapping.
    pub fn scalar_to_string(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(ruby_float_to_s(*f)),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The node as JSON (tags become `{"!reference": [...]}`), for snapshots and `runnel lint`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let value = match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        };
        match &self.tag {
            Some(tag) => serde_json::json!({ tag.clone(): value }),
            None => value,
        }
    }
}

/// Ruby's `Float#to_s`: `1.0`, `1.5`, `1.0e+20`.
fn ruby_float_to_s(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Parses every YAML document of `file` (a `spec:` header and the pipeline are two documents).
/// An empty file gives no documents.
pub fn parse_documents(map: &SourceMap, file: FileId) -> Result<Vec<Node>, Diagnostics> {
    let Some(source) = map.file(file) else {
        return Ok(Vec::new());
    };
    let raw: Vec<RawNode> = serde_saphyr::from_multiple_with_options(source.text(), options())
        .map_err(|error| Diagnostics::from(syntax_error(file, source, &error)))?;
    let mut converter = Converter {
        file,
        source,
        diagnostics: Diagnostics::new(),
    };
    let nodes = raw.into_iter().map(|node| converter.node(node)).collect();
    converter.diagnostics.into_result()?;
    Ok(nodes)
}

/// Parses a file that must hold one document (or none: an empty file is `null`).
pub fn parse_document(map: &SourceMap, file: FileId) -> Result<Node, Diagnostics> {
    let mut docs = parse_documents(map, file)?;
    let start = Span::new(file, Pos::new(1, 1), Pos::new(1, 1));
    if docs.len() > 1 {
        let second = docs.swap_remove(1);
        return Err(
            Diagnostic::error(second.span, "expected one YAML document, found several")
                .with_code("yaml-documents")
                .into(),
        );
    }
    Ok(docs.pop().unwrap_or_else(|| Node::new(start, Value::Null)))
}

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // Psych keeps a duplicate key's first position and last value, silently; `map_entries` does
    // that with every pair forwarded (repeated `<<` entries included).
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.legacy_octal_numbers = true;
    options.null_as_string = true;
    options.with_snippet = false;
    // Psych's merge semantics differ from the YAML spec's (see `map_entries`); we merge ourselves.
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    // `.inf` and `.nan` reach our Psych typing as text.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    if let Some(budget) = options.budget.as_mut() {
        // Real pipelines merge one anchor into thousands of jobs.
        budget.enforce_alias_anchor_ratio = false;
        budget.max_depth = MAX_YAML_DEPTH;
    }
    options
}

fn syntax_error(file: FileId, source: &SourceFile, error: &serde_saphyr::Error) -> Diagnostic {
    let text = error.without_snippet().to_string();
    let message = strip_location_prefix(&text);
    let span = match error.location() {
        Some(loc) if loc.line() > 0 => {
            let start = Pos::new(clamp(loc.line()), clamp(loc.column().max(1)));
            Span::new(file, start, Pos::new(start.line, start.column + 1))
        }
        _ => {
            let end = source.pos_of_byte(source.text().len());
            Span::new(file, end, end)
        }
    };
    Diagnostic::error(span, format!("invalid YAML: {message}")).with_code("yaml-syntax")
}

/// serde-saphyr prints `error: line 2 column 2: illegal placement of ':' indicator`; the position
/// goes into our span instead.
fn strip_location_prefix(text: &str) -> String {
    let mut rest = text.trim();
    rest = rest.strip_prefix("error: ").unwrap_or(rest);
    if let Some(after) = rest.strip_prefix("line ")
        && let Some(colon) = after.find(": ")
        && after[..colon]
            .split(' ')
            .all(|w| w == "column" || w.chars().all(|c| c.is_ascii_digit()))
    {
        rest = &after[colon + 2..];
    }
    let mut first = rest.lines().next().unwrap_or(rest);
    if let Some(at) = first.rfind(" at line ")
        && first[at + 9..]
            .split([',', ' '])
            .filter(|w| !w.is_empty())
            .all(|w| w == "column" || w.chars().all(|c| c.is_ascii_digit()))
    {
        first = &first[..at];
    }
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Converter<'a> {
    file: FileId,
    source: &'a SourceFile,
    diagnostics: Diagnostics,
}

impl Converter<'_> {
    fn span(&self, loc: &Location) -> Span {
        let s = loc.span();
        match (s.byte_offset(), s.byte_len()) {
            (Some(offset), Some(len)) => {
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                let end = offset.saturating_add(usize::try_from(len).unwrap_or(0));
                Span::new(
                    self.file,
                    self.source.pos_of_byte(offset),
                    self.source.pos_of_byte(end),
                )
            }
            _ => {
                let start = Pos::new(clamp(loc.line()), clamp(loc.column()));
                Span::new(self.file, start, start)
            }
        }
    }

    /// The source text of a scalar, when serde-saphyr reports its byte range.
    fn text_of(&self, loc: &Location) -> Option<(&str, usize)> {
        let s = loc.span();
        let offset = usize::try_from(s.byte_offset()?).ok()?;
        let len = usize::try_from(s.byte_len()?).ok()?;
        Some((
            self.source.text().get(offset..offset.checked_add(len)?)?,
            offset,
        ))
    }

    fn node(&mut self, raw: RawNode) -> Node {
        let span = self.span(&raw.defined);
        let Tagged(value, tag) = raw.value;
        let (tag, core_tag) = match tag {
            Some(t) if is_core_tag(&t) => (None, true),
            other => (other, false),
        };
        if let Some(t) = &tag
            && t != "!reference"
        {
            self.diagnostics.push(
                Diagnostic::error(span, format!("unknown tag `{t}`"))
                    .with_code("yaml-unknown-tag")
                    .with_help("GitLab CI only knows the `!reference` tag"),
            );
        }
        let value = match value {
            Raw::Seq(items) => Value::Seq(items.into_iter().map(|n| self.node(n)).collect()),
            Raw::Map(entries) => Value::Map(self.map_entries(entries)),
            scalar if core_tag => scalar_value(scalar),
            scalar => self.plain_scalar(scalar, &raw.defined, span),
        };
        // A collection's span reaches to the end of its last item.
        let last_end = match &value {
            Value::Seq(items) => items.last().map(|n| n.span),
            Value::Map(entries) => entries.last().map(|(_, n)| n.span),
            _ => None,
        };
        let mut span = span;
        if let Some(last) = last_end
            && last.file == span.file
            && last.end > span.end
        {
            span.end = last.end;
        }
        Node { span, tag, value }
    }

    /// A mapping's entries as Psych's `revive_hash` builds them: pairs in document order, the
    /// last write of a key wins (keeping the key's first position), and `<<` merges a mapping
    /// (or a sequence of mappings, earlier ones winning) at the place it stands. A `<<` whose
    /// value is neither stays an ordinary key.
    fn map_entries(&mut self, entries: Vec<(Spanned<String>, RawNode)>) -> Vec<(Key, Node)> {
        let mut out = Entries::default();
        for (k, v) in entries {
            let key = Key {
                span: self.span(&k.referenced),
                name: k.value,
            };
            let node = self.node(v);
            if key.name == "<<" && node.tag.is_none() {
                match node.value {
                    Value::Map(merged) => {
                        merged.into_iter().for_each(|(k, v)| out.set(k, v));
                        continue;
                    }
                    Value::Seq(items)
                        if items
                            .iter()
                            .all(|i| i.tag.is_none() && i.as_map().is_some()) =>
                    {
                        let mut merged = Entries::default();
                        for item in items.into_iter().rev() {
                            if let Value::Map(entries) = item.value {
                                entries.into_iter().for_each(|(k, v)| merged.set(k, v));
                            }
                        }
                        merged.entries.into_iter().for_each(|(k, v)| out.set(k, v));
                        continue;
                    }
                    value => out.set(key, Node { value, ..node }),
                }
                continue;
            }
            out.set(key, node);
        }
        out.entries
    }

    /// Re-types a scalar as Psych would when it was written plain (unquoted, not a block scalar).
    fn plain_scalar(&mut self, raw: Raw, loc: &Location, span: Span) -> Value {
        let Some((text, offset)) = self.text_of(loc) else {
            return scalar_value(raw);
        };
        if text.starts_with(['"', '\'']) || self.is_block_scalar(offset) {
            return scalar_value(raw);
        }
        let plain = match &raw {
            Raw::Str(s) => s.as_str(),
            _ => text,
        };
        match psych_scalar(plain) {
            PsychScalar::Value(value) => value,
            PsychScalar::Date => {
                let plain = plain.to_owned();
                self.diagnostics.push(
                    Diagnostic::error(
                        span,
                        format!("unquoted date or time `{plain}` is not allowed"),
                    )
                    .with_code("yaml-date")
                    .with_help(format!(
                        "quote it: `\"{plain}\"`; GitLab refuses to load dates"
                    )),
                );
                Value::Str(plain)
            }
        }
    }

    /// Whether the scalar at `offset` is the content of a `|` or `>` block scalar: the last token
    /// before it (ignoring a comment) is the block indicator.
    fn is_block_scalar(&self, offset: usize) -> bool {
        let before = self.source.text().get(..offset).unwrap_or("");
        let trimmed = before.trim_end();
        if !before[trimmed.len()..].contains('\n') {
            return false;
        }
        let line = trimmed.rsplit('\n').next().unwrap_or(trimmed);
        let line = match line.find(" #") {
            Some(i) => line[..i].trim_end(),
            None => line,
        };
        let token = line.rsplit([' ', '\t']).next().unwrap_or(line);
        token.starts_with(['|', '>'])
            && token[1..]
                .chars()
                .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
    }
}

/// Mapping entries with Ruby `Hash#[]=` semantics.
#[derive(Default)]
struct Entries {
    entries: Vec<(Key, Node)>,
    index: HashMap<String, usize>,
}

impl Entries {
    fn set(&mut self, key: Key, value: Node) {
        // Most mappings are small: search them; index the big ones (a pipeline's root).
        if self.entries.len() < 16 {
            match self.entries.iter_mut().find(|(k, _)| k.name == key.name) {
                Some((_, existing)) => *existing = value,
                None => self.entries.push((key, value)),
            }
            if self.entries.len() == 16 {
                self.index = self
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.name.clone(), i))
                    .collect();
            }
            return;
        }
        match self.index.get(&key.name) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.name.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }
}

fn is_core_tag(tag: &str) -> bool {
    tag.starts_with("!!") || tag.starts_with("tag:yaml.org,2002:")
}

fn scalar_value(raw: Raw) -> Value {
    match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(_) | Raw::Map(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_document;
    use crate::source::SourceMap;

    #[test]
    fn anchored_and_core_tagged_scalars_keep_their_types() {
        let mut map = SourceMap::new();
        let text = "a: &n 5\nb: *n\nc: &t yes\nd: *t\ne: !!str 5\nf: &y y\ng: *y\n";
        let file = map.add("a.yml", text);
        let doc = parse_document(&map, file).expect("valid");
        assert_eq!(doc.get("a").and_then(|n| n.as_i64()), Some(5));
        assert_eq!(doc.get("b").and_then(|n| n.as_i64()), Some(5));
        assert_eq!(doc.get("c").and_then(|n| n.as_bool()), Some(true));
        assert_eq!(doc.get("d").and_then(|n| n.as_bool()), Some(true));
        assert_eq!(doc.get("e").and_then(|n| n.as_str()), Some("5"));
        assert_eq!(doc.get("f").and_then(|n| n.as_str()), Some("y"));
        assert_eq!(doc.get("g").and_then(|n| n.as_str()), Some("y"));
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        let mut map = SourceMap::new();
        let file = map.add("a.yml", "a: 1\nb: 2\na: 3\n");
        let doc = parse_document(&map, file).expect("valid");
        let keys: Vec<&str> = doc
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(doc.get("a").and_then(|n| n.as_i64()), Some(3));
    }

    #[test]
    fn quoted_and_block_scalars_stay_strings() {
        let mut map = SourceMap::new();
        let file = map.add("a.yml", "a: \"yes\"\nb: 'on'\nc: >-\n  yes\nd: yes\ne: y\n");
        let doc = parse_document(&map, file).expect("valid");
        assert_eq!(doc.get("a").and_then(|n| n.as_str()), Some("yes"));
        assert_eq!(doc.get("b").and_then(|n| n.as_str()), Some("on"));
        assert_eq!(doc.get("c").and_then(|n| n.as_str()), Some("yes"));
        assert_eq!(doc.get("d").and_then(|n| n.as_bool()), Some(true));
        assert_eq!(doc.get("e").and_then(|n| n.as_str()), Some("y"));
    }
}
