//! Reading typed values out of spanned YAML nodes, with one diagnostic per mistake: "`retry` in
//! job `build`: expected an integer from 0 to 2 or a mapping, found `5`".
//!
//! A [`Reader`] knows the place it reads for ("job `build`", "`default`"), and collects every
//! error instead of stopping at the first.

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::Span;
use crate::yaml::{Node, Value};

/// Collects diagnostics while the model is built from nodes.
pub(crate) struct Reader<'d> {
    pub(crate) diags: &'d mut Diagnostics,
    /// "job `build`", "`default`", "the configuration", "`workflow`".
    pub(crate) place: String,
    /// The value and key spans of the keyword being read, so that errors about a whole mapping
    /// point at its key rather than at its first entry.
    pub(crate) keyword: Option<(Span, Span)>,
}

/// What a node is, for "found ..." in messages: the value itself for short scalars.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Int(i) => format!("`{i}`"),
        Value::Float(f) => format!("`{f}`"),
        Value::Str(s) if s.chars().count() <= 40 && !s.contains('\n') => format!("`{s}`"),
        Value::Str(_) => "a string".to_owned(),
        Value::Seq(_) => "a sequence".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    }
}

/// The string of a scalar as Ruby's `to_s` prints it (variables, matrix values, tags); `None`
/// for null, sequences and mappings. GitLab stringifies YAML scalars this way: `1.10` → `1.1`.
pub(crate) fn scalar_string(node: &Node) -> Option<String> {
    if node.is_null() {
        None
    } else {
        node.scalar_to_string()
    }
}

/// A node converted to JSON (for keywords runnel keeps as written, such as `secrets`).
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    node.to_json()
}

impl<'d> Reader<'d> {
    pub(crate) fn new(diags: &'d mut Diagnostics, place: impl Into<String>) -> Self {
        Reader {
            diags,
            place: place.into(),
            keyword: None,
        }
    }

    /// Reports "`key` in <place>: expected <expected>, found <found>" at the node.
    pub(crate) fn expected(&mut self, key: &str, node: &Node, expected: &str) {
        let message = format!(
            "`{key}` in {}: expected {expected}, found {}",
            self.place,
            describe(node)
        );
        self.diags
            .push(Diagnostic::error(node.span, message).with_code("invalid-value"));
    }

    /// Where to report an error about `node` as a whole: its key when it is the value of the
    /// keyword being read, else the node.
    pub(crate) fn anchor(&self, node: &Node) -> Span {
        match self.keyword {
            Some((value, key)) if value == node.span => key,
            _ => node.span,
        }
    }

    /// Reports an error with a custom message at `span`.
    pub(crate) fn error(&mut self, span: Span, message: String) {
        self.diags
            .push(Diagnostic::error(span, message).with_code("invalid-value"));
    }

    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    pub(crate) fn string(&mut self, key: &str, node: &Node) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.expected(key, node, "a string");
                None
            }
        }
    }

    /// A string, or a number/boolean stringified (where GitLab accepts any scalar).
    pub(crate) fn scalar(&mut self, key: &str, node: &Node) -> Option<String> {
        let value = scalar_string(node);
        if value.is_none() {
            self.expected(key, node, "a string");
        }
        value
    }

    pub(crate) fn boolean(&mut self, key: &str, node: &Node) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(key, node, "a boolean");
                None
            }
        }
    }

    pub(crate) fn integer(&mut self, key: &str, node: &Node) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.expected(key, node, "an integer");
                None
            }
        }
    }

    /// One of `allowed`, with a suggestion when misspelt.
    pub(crate) fn one_of(&mut self, key: &str, node: &Node, allowed: &[&str]) -> Option<String> {
        let Value::Str(s) = &node.value else {
            self.expected(key, node, &format!("one of {}", list(allowed)));
            return None;
        };
        if allowed.contains(&s.as_str()) {
            return Some(s.clone());
        }
        let message = format!(
            "`{key}` in {}: expected one of {}, found `{s}`",
            self.place,
            list(allowed)
        );
        self.push(
            Diagnostic::error(node.span, message)
                .with_code("invalid-value")
                .with_suggestion(s, allowed.iter().copied()),
        );
        None
    }

    /// A list of strings; nested lists are flattened as GitLab flattens `!reference` results
    /// (up to 10 levels). A single string is a one-element list when `single` is true.
    pub(crate) fn strings(&mut self, key: &str, node: &Node, single: bool) -> Option<Vec<String>> {
        match &node.value {
            Value::Str(s) if single => Some(vec![s.clone()]),
            Value::Seq(_) => {
                let mut out = Vec::new();
                if self.flatten(key, node, 0, &mut out) {
                    Some(out)
                } else {
                    None
                }
            }
            _ => {
                let what = if single {
                    "a string or a list of strings"
                } else {
                    "a list of strings"
                };
                self.expected(key, node, what);
                None
            }
        }
    }

    fn flatten(&mut self, key: &str, node: &Node, depth: usize, out: &mut Vec<String>) -> bool {
        let Value::Seq(items) = &node.value else {
            return true;
        };
        let mut ok = true;
        for item in items {
            match &item.value {
                Value::Seq(_) if depth < 10 => ok &= self.flatten(key, item, depth + 1, out),
                Value::Str(s) => out.push(s.clone()),
                // GitLab accepts numbers in scripts and tags after `to_s` (entry/commands.rb).
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                    out.extend(scalar_string(item));
                }
                _ => {
                    self.expected(key, item, "a string");
                    ok = false;
                }
            }
        }
        ok
    }

    /// `script`-like keys: a string or a list of strings/nested lists.
    pub(crate) fn commands(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        self.strings(key, node, true)
    }

    /// Integers from a single integer or a list (`exit_codes`).
    pub(crate) fn integers(&mut self, key: &str, node: &Node) -> Option<Vec<i64>> {
        match &node.value {
            Value::Int(i) => Some(vec![*i]),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.integer(key, item)?);
                }
                Some(out)
            }
            _ => {
                self.expected(key, node, "an integer or a list of integers");
                None
            }
        }
    }

    /// The entries of a mapping, or an error.
    pub(crate) fn map<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
    ) -> Option<&'n [(crate::yaml::Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.expected(key, node, "a mapping");
                None
            }
        }
    }

    /// Reports keys of `node` not in `allowed` (as `keywords::check_keys`, at this place).
    pub(crate) fn keys(&mut self, key: &str, node: &Node, allowed: &[&str]) -> bool {
        let place = format!("`{key}` of {}", self.place);
        crate::keywords::check_keys(node, allowed, &place, self.diags)
    }
}

/// `a`, `b` or `c` in backticks, comma separated.
pub(crate) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a duration as GitLab's ChronicDuration does, enough for `timeout`, `start_in`,
/// `expire_in`: `3 hours 30 minutes`, `1h 30m`, `90`, `1 week`, `2d`. Returns seconds.
/// GitLab: lib/gitlab/ci/config/entry/validators.rb (`DurationValidator`), chronic_duration.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    // `hh:mm:ss` and `mm:ss`.
    if text.contains(':') {
        let parts: Option<Vec<u64>> = text.split(':').map(|p| p.parse().ok()).collect();
        let parts = parts?;
        return match parts.as_slice() {
            [m, s] => m.checked_mul(60)?.checked_add(*s),
            [h, m, s] => h
                .checked_mul(3600)?
                .checked_add(m.checked_mul(60)?)?
                .checked_add(*s),
            _ => None,
        };
    }
    let mut total = 0f64;
    let mut number: Option<f64> = None;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() || c == '.' {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || d == '.' {
                    s.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if number.is_some() {
                return None;
            }
            number = Some(s.parse().ok()?);
        } else if c.is_ascii_alphabetic() {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphabetic() {
                    s.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if s == "and" {
                continue;
            }
            let unit = unit_seconds(&s)?;
            total += number.take()? * unit;
            any = true;
        } else if c.is_whitespace() || c == ',' {
            chars.next();
        } else {
            return None;
        }
    }
    if let Some(n) = number {
        // A trailing bare number counts as seconds (`1 minute 30`).
        total += n;
        any = true;
    }
    if any && total.is_finite() && total >= 0.0 {
        // Durations are whole seconds; the cast saturates on absurd values.
        Some(total.round() as u64)
    } else {
        None
    }
}

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "wk" | "wks" | "week" | "weeks" => 604_800.0,
        "mo" | "mos" | "month" | "months" => 2_592_000.0,
        "y" | "yr" | "yrs" | "year" | "years" => 31_557_600.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_like_chronic_duration() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("30 minutes"), Some(1800));
        assert_eq!(parse_duration("1 day and 2 hours"), Some(93_600));
        assert_eq!(parse_duration("1h 30m"), Some(5400));
        assert_eq!(parse_duration("3 hours and 30 minutes"), Some(12_600));
        assert_eq!(parse_duration("1 week"), Some(604_800));
        assert_eq!(parse_duration("2 days"), Some(172_800));
        assert_eq!(parse_duration("1:30"), Some(90));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("18446744073709551615:59"), None);
        assert_eq!(parse_duration(""), None);
    }
}
