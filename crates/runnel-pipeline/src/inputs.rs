//! The `spec:` header of a file (`spec:inputs`) and `$[[ inputs.name ]]` interpolation into the
//! file's content, with GitLab's functions (`expand_vars`, `truncate`, `posix_escape`).
//!
//! GitLab: lib/gitlab/ci/config/interpolation/ (interpolator.rb, template.rb, block.rb,
//! access.rb, inputs/*.rb, functions/*.rb). Messages keep GitLab's words.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::diag::{Diagnostic, Diagnostics};
use crate::expand::expand_server_existing;
use crate::input_rules::Resolved;
use crate::source::Span;
use crate::yaml::{Key, Node, Value};

/// GitLab: interpolation/block.rb `MAX_FUNCTIONS`.
const MAX_FUNCTIONS: usize = 3;

/// GitLab: interpolation/template.rb `BLOCK_PATTERN`.
static BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\[\[\s*(\S.*?\S)\s*\]\]").expect("valid regex"));

/// Values that `$[[ ... ]]` can read: `inputs.*` and, for a component, `component.*`.
#[derive(Debug, Default)]
pub(crate) struct Context {
    pub(crate) inputs: Vec<(String, Node)>,
    pub(crate) component: Vec<(String, String)>,
    /// Variables for `expand_vars`.
    pub(crate) variables: Vec<(String, String)>,
}

/// Checks the provided `args` against the header's `spec:inputs` and returns the input values
/// (defaults filled in). `args_span` points at the `inputs:` that passed them; `None` for the
/// pipeline inputs of the root file, which come from outside the YAML.
pub(crate) fn evaluate_inputs(
    header: Option<&Node>,
    args: &[(Key, Node)],
    args_span: Option<Span>,
    diagnostics: &mut Diagnostics,
) -> Option<Vec<(String, Node)>> {
    let Some(header) = header else {
        if !args.is_empty() {
            diagnostics.push(
                Diagnostic::error(
                    args_span.unwrap_or(Span::synthetic()),
                    "unknown input arguments",
                )
                .with_code("inputs-unknown")
                .with_help("the included file has no `spec:inputs` header"),
            );
            return None;
        }
        return Some(Vec::new());
    };
    let before = diagnostics.len();
    check_header_keys(header, diagnostics);
    let spec = header.get("spec");
    // GitLab: header/spec.rb is Configurable (`validates :config, type: Hash`); a `spec:` or
    // `inputs:` left empty (null) is an unspecified entry and declares no inputs.
    if let Some(spec) = spec.filter(|s| !s.is_null() && s.as_map().is_none()) {
        diagnostics.push(
            Diagnostic::error(spec.span, "`spec` should be a mapping")
                .with_code("inputs-spec")
                .with_note(
                    Span::synthetic(),
                    "GitLab reports: spec config should be a hash",
                ),
        );
        return None;
    }
    let empty = Node::new(header.span, Value::Map(Vec::new()));
    let specs = spec
        .and_then(|s| s.get("inputs"))
        .filter(|i| !i.is_null())
        .unwrap_or(&empty);
    let Some(spec_entries) = specs.as_map() else {
        diagnostics.push(
            Diagnostic::error(specs.span, "`spec:inputs` should be a mapping")
                .with_code("inputs-spec"),
        );
        return None;
    };
    let unknown: Vec<&Key> = args
        .iter()
        .map(|(k, _)| k)
        .filter(|k| specs.get(&k.name).is_none())
        .collect();
    if let Some(first) = unknown.first() {
        let names: Vec<&str> = unknown.iter().map(|k| k.name.as_str()).collect();
        diagnostics.push(
            Diagnostic::error(
                first.span,
                format!("unknown input arguments: {}", names.join(", ")),
            )
            .with_code("inputs-unknown")
            .with_suggestion(
                &first.name,
                spec_entries.iter().map(|(k, _)| k.name.as_str()),
            ),
        );
    }
    let provided_of = |name: &str| {
        args.iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    };
    // What a rule's `if` reads as `$[[ inputs.name ]]`: the passed value, else the plain default.
    let current: Vec<(String, String)> = spec_entries
        .iter()
        .filter_map(|(name, spec)| {
            let value = provided_of(&name.name).or_else(|| spec.get("default"))?;
            Some((name.name.clone(), value.scalar_to_string()?))
        })
        .collect();
    let mut values = Vec::with_capacity(spec_entries.len());
    for (name, spec) in spec_entries {
        let provided = provided_of(&name.name);
        let resolved = match spec.get("rules") {
            Some(rules) => {
                match crate::input_rules::resolve(name, spec, rules, &current, diagnostics) {
                    Some(resolved) => Some(resolved),
                    None => continue,
                }
            }
            None => None,
        };
        if let Some(value) = check_input(name, spec, provided, resolved, args_span, diagnostics) {
            values.push((name.name.clone(), value));
        }
    }
    (diagnostics.len() == before).then_some(values)
}

/// GitLab: lib/gitlab/ci/config/header/{root,spec,input}.rb — the keys a header may use.
fn check_header_keys(header: &Node, diagnostics: &mut Diagnostics) {
    const SPEC_KEYS: [&str; 4] = ["inputs", "include", "component", "description"];
    const INPUT_KEYS: [&str; 6] = [
        "default",
        "description",
        "options",
        "regex",
        "type",
        "rules",
    ];
    let mut unknown = |key: &Key, place: &str, allowed: &[&str]| {
        diagnostics.push(
            Diagnostic::error(key.span, format!("unknown key `{}` in {place}", key.name))
                .with_code("inputs-spec")
                .with_suggestion(&key.name, allowed.iter().copied()),
        );
    };
    for (key, spec) in header.as_map().unwrap_or_default() {
        if key.name != "spec" {
            unknown(key, "the header", &["spec"]);
            continue;
        }
        for (key, value) in spec.as_map().unwrap_or_default() {
            if !SPEC_KEYS.contains(&key.name.as_str()) {
                unknown(key, "`spec`", &SPEC_KEYS);
            } else if key.name == "inputs" {
                for (name, input) in value.as_map().unwrap_or_default() {
                    for (key, _) in input.as_map().unwrap_or_default() {
                        if !INPUT_KEYS.contains(&key.name.as_str()) {
                            unknown(key, &format!("input `{}`", name.name), &INPUT_KEYS);
                        }
                    }
                }
            }
        }
    }
}

/// Validates one input and returns its value (the provided one or the default).
fn check_input(
    key: &Key,
    spec: &Node,
    provided: Option<&Node>,
    resolved: Option<Resolved<'_>>,
    args_span: Option<Span>,
    diagnostics: &mut Diagnostics,
) -> Option<Node> {
    let name = key.name.as_str();
    let err = |span: Span, message: String| {
        Diagnostic::error(span, format!("`{name}` input: {message}")).with_code("inputs-invalid")
    };
    if !spec.is_null() && spec.as_map().is_none() {
        diagnostics.push(err(
            spec.span,
            "the input specification should be a mapping".into(),
        ));
        return None;
    }
    let type_name = spec.get("type").and_then(Node::as_str).unwrap_or("string");
    if !matches!(type_name, "string" | "number" | "boolean" | "array") {
        let span = spec.get("type").map_or(spec.span, |n| n.span);
        diagnostics.push(
            Diagnostic::error(
                span,
                format!(
                    "unknown input specification for `{name}` (valid types: array, boolean, number, string)"
                ),
            )
            .with_code("inputs-spec"),
        );
        return None;
    }
    // With `rules`, the matching rule gives the default and the options (input_rules.rs).
    let (default, options) = match &resolved {
        Some(r) => (r.default, r.options),
        None => (
            spec.get_entry("default").map(|(_, v)| v),
            spec.get("options").and_then(Node::as_seq),
        ),
    };
    // A provided `null` counts as not provided (GitLab: `value.nil? ? default : value`).
    let provided = provided.filter(|v| !v.is_null());
    // GitLab: lib/ci/inputs/base_input.rb — an input whose rules give a default is not required;
    // when no rule matches, its value is `nil` (`has_default_through_rules?`, `actual_value`).
    if provided.is_none() && default.is_none() && resolved.is_some() {
        return Some(Node::new(spec.span, Value::Null));
    }
    let Some(value) = provided.or(default) else {
        let mut d = err(
            args_span.unwrap_or(key.span),
            "required value has not been provided".into(),
        );
        if args_span.is_none() {
            d = d.with_help("give it a `default`, or pass it as a pipeline input");
        }
        diagnostics.push(d);
        return None;
    };
    let is_default = provided.is_none();
    if !value.is_null() && !has_type(value, type_name) {
        let what = if is_default {
            "default value"
        } else {
            "provided value"
        };
        diagnostics.push(err(value.span, format!("{what} is not a {type_name}")));
        return None;
    }
    if let Some(options) = options {
        let text = value.scalar_to_string();
        let allowed = options
            .iter()
            .any(|o| o.value == value.value || o.scalar_to_string() == text);
        if !allowed {
            let shown = text.unwrap_or_default();
            diagnostics.push(err(
                value.span,
                format!(
                    "`{shown}` cannot be used because it is not in the list of allowed options"
                ),
            ));
            return None;
        }
    }
    if let Some(pattern) = spec.get("regex").and_then(Node::as_str)
        && let Some(text) = value.as_str()
    {
        match Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => {
                let what = if is_default {
                    "default value"
                } else {
                    "provided value"
                };
                diagnostics.push(err(
                    value.span,
                    format!("{what} does not match required RegEx pattern"),
                ));
                return None;
            }
            Err(_) => {
                diagnostics.push(err(spec.span, "invalid regular expression".into()));
                return None;
            }
        }
    }
    Some(value.clone())
}

fn has_type(value: &Node, type_name: &str) -> bool {
    match type_name {
        "string" => matches!(value.value, Value::Str(_)),
        "number" => matches!(value.value, Value::Int(_) | Value::Float(_)),
        "boolean" => matches!(value.value, Value::Bool(_)),
        "array" => matches!(value.value, Value::Seq(_)),
        _ => false,
    }
}

/// Replaces every `$[[ ... ]]` block in the string keys and values of `content`.
pub(crate) fn interpolate(content: &mut Node, ctx: &Context, diagnostics: &mut Diagnostics) {
    let mut cache = HashMap::new();
    interpolate_node(content, ctx, &mut cache, diagnostics);
}

type BlockCache = HashMap<String, Result<Node, String>>;

fn interpolate_node(node: &mut Node, ctx: &Context, cache: &mut BlockCache, d: &mut Diagnostics) {
    match &mut node.value {
        Value::Str(s) if s.contains("$[[") => {
            if let Some(value) = interpolate_str(s, node.span, ctx, cache, d) {
                node.value = value;
            }
        }
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|n| interpolate_node(n, ctx, cache, d)),
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                if key.name.contains("$[[") {
                    let span = key.span;
                    if let Some(v) = interpolate_str(&key.name, span, ctx, cache, d) {
                        key.name = Node::new(span, v).scalar_to_string().unwrap_or_default();
                    }
                }
                interpolate_node(value, ctx, cache, d);
            }
        }
        _ => {}
    }
}

/// The new value of a string with blocks: the typed value when the string is one block, else
/// the text with every block rendered.
fn interpolate_str(
    s: &str,
    span: Span,
    ctx: &Context,
    cache: &mut BlockCache,
    diagnostics: &mut Diagnostics,
) -> Option<Value> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut failed = false;
    for caps in BLOCK.captures_iter(s) {
        let (Some(whole), Some(data)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        let result = cache
            .entry(data.as_str().to_owned())
            .or_insert_with(|| evaluate_block(data.as_str(), ctx))
            .clone();
        match result {
            Ok(value) if whole.as_str().len() == s.len() => return Some(value.value),
            Ok(value) => {
                out.push_str(&s[last..whole.start()]);
                out.push_str(&ruby_to_s(&value));
                last = whole.end();
            }
            Err(message) => {
                diagnostics.push(Diagnostic::error(span, message).with_code("interpolation"));
                failed = true;
            }
        }
    }
    if failed || last == 0 {
        return None;
    }
    out.push_str(&s[last..]);
    Some(Value::Str(out))
}

/// Evaluates `inputs.name | function | ...`.
fn evaluate_block(data: &str, ctx: &Context) -> Result<Node, String> {
    let mut parts = data.split('|').map(str::trim);
    let access = parts.next().unwrap_or_default();
    let functions: Vec<&str> = parts.collect();
    let objects: Vec<&str> = access.splitn(5, '.').collect();
    if objects.first() == Some(&"matrix") {
        // GitLab leaves `$[[ matrix.X ]]` for `needs:parallel:matrix` (block.rb).
        return Ok(Node::new(
            Span::synthetic(),
            Value::Str(format!("$[[ {data} ]]")),
        ));
    }
    if objects.len() <= 1 {
        return Err("invalid interpolation access pattern".to_owned());
    }
    if access.len() > 1024 {
        return Err("maximum interpolation expression size exceeded".to_owned());
    }
    let value = match (objects[0], objects.len()) {
        ("inputs", 2) => ctx
            .inputs
            .iter()
            .find(|(n, _)| n == objects[1])
            .map(|(_, v)| v.clone()),
        ("component", 2) => ctx
            .component
            .iter()
            .find(|(n, _)| n == objects[1])
            .map(|(_, v)| Node::new(Span::synthetic(), Value::Str(v.clone()))),
        _ => None,
    };
    let Some(mut value) = value else {
        let key = if matches!(objects[0], "inputs" | "component") {
            objects[1]
        } else {
            objects[0]
        };
        return Err(format!("unknown interpolation key: `{key}`"));
    };
    if functions.len() > MAX_FUNCTIONS {
        return Err("too many functions in interpolation block".to_owned());
    }
    for function in functions {
        value = apply_function(function, value, ctx)?;
    }
    Ok(value)
}

fn apply_function(function: &str, value: Node, ctx: &Context) -> Result<Node, String> {
    static TRUNCATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)?$").expect("valid regex")
    });
    let no_match = || {
        format!(
            "no function matching `{function}`: check that the function name, arguments, and types are correct"
        )
    };
    let name = function.split('(').next().unwrap_or(function);
    if !matches!(name, "truncate" | "posix_escape" | "expand_vars")
        || (name != "truncate" && function != name)
    {
        return Err(no_match());
    }
    let Some(text) = value.as_str() else {
        return Err(format!(
            "invalid input type: {name} can only be used with string inputs"
        ));
    };
    let result = match name {
        "truncate" => {
            let caps = TRUNCATE.captures(function).ok_or_else(no_match)?;
            let offset: usize = caps[1].parse().unwrap_or(usize::MAX);
            let length: usize = caps[2].parse().unwrap_or(usize::MAX);
            text.chars().skip(offset).take(length).collect()
        }
        "posix_escape" => shell_escape(text),
        _ => expand_server_existing(text, &ctx.variables),
    };
    Ok(Node::new(value.span, Value::Str(result)))
}

/// Ruby's `Shellwords.shellescape`.
fn shell_escape(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c == '\n' {
            out.push_str("'\n'");
        } else if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

/// Ruby's `to_s` of an interpolated value inside a larger string.
fn ruby_to_s(node: &Node) -> String {
    match &node.value {
        Value::Seq(_) | Value::Map(_) => ruby_inspect(node),
        _ => node.scalar_to_string().unwrap_or_default(),
    }
}

fn ruby_inspect(node: &Node) -> String {
    match &node.value {
        Value::Null => "nil".to_owned(),
        Value::Str(s) => format!("{s:?}"),
        Value::Seq(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(ruby_inspect)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", k.name, ruby_inspect(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => node.scalar_to_string().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_escape;

    #[test]
    fn shell_escape_matches_ruby_shellwords() {
        assert_eq!(shell_escape(""), "''");
        assert_eq!(shell_escape("a b"), "a\\ b");
        assert_eq!(shell_escape("it's"), "it\\'s");
        assert_eq!(shell_escape("x/y-1.2"), "x/y-1.2");
    }
}
