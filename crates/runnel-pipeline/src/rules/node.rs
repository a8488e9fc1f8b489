//! `rules:` YAML → [`Rule`]s, with a diagnostic for every mistake.
//!
//! GitLab: lib/gitlab/ci/config/entry/rules.rb, rules/rule.rb, rules/rule/{changes,exists}.rb,
//! entry/workflow.rb and entry/include/rules/rule.rb (the keys and `when` values each place
//! allows).

use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics};
use crate::job::parse_duration;
use crate::keywords;
use crate::rules::parse::Expr;
use crate::rules::rule::{Changes, Exists, Rule};
use crate::source::{Pos, Span};
use crate::when::{AllowFailure, When};
use crate::yaml::{Node, Value};

/// Where a `rules:` list is written; decides its keys and `when` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesKind {
    /// A job's `rules:`.
    Job,
    /// `workflow:rules`.
    Workflow,
    /// `include:rules`.
    Include,
}

impl RulesKind {
    /// GitLab: the `allowed_keys` each place passes to `Entry::Rules::Rule`.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            RulesKind::Job => keywords::RULE,
            // GitLab: entry/workflow.rb also lets through `start_in`, `allow_failure` and
            // `needs` ("should not be allowed but we can't break this behavior now").
            RulesKind::Workflow => &[
                "if",
                "changes",
                "exists",
                "when",
                "start_in",
                "allow_failure",
                "variables",
                "needs",
                "auto_cancel",
            ],
            RulesKind::Include => &["if", "changes", "exists", "when"],
        }
    }

    /// GitLab: the `allowed_when` each place passes to `Entry::Rules::Rule`.
    pub fn when_values(self) -> &'static [&'static str] {
        match self {
            RulesKind::Job => keywords::RULE_WHEN,
            RulesKind::Workflow | RulesKind::Include => keywords::WORKFLOW_WHEN,
        }
    }
}

/// GitLab: rules/rule/changes.rb and exists.rb — at most 50 paths in the array form.
const MAX_PATHS: usize = 50;
/// GitLab: rules/rule.rb — `start_in` may not exceed one week.
const MAX_START_IN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Converts a job's `rules:` node. See [`rules_from_node_in`].
pub fn rules_from_node(node: &Node, diags: &mut Diagnostics) -> Vec<Rule> {
    rules_from_node_in(node, RulesKind::Job, "the job", diags)
}

/// Converts a `rules:` node written at `kind`'s place; `place` names it in messages
/// ("job `build`", "`workflow`"). Faulty rules are reported and left out.
pub fn rules_from_node_in(
    node: &Node,
    kind: RulesKind,
    place: &str,
    diags: &mut Diagnostics,
) -> Vec<Rule> {
    let Some((items, _)) = node.flattened() else {
        diags.push(wrong_type(node, "rules", place, "a list of rules"));
        return Vec::new();
    };
    let mut reader = Reader { diags, place, kind };
    let mut rules = Vec::new();
    // GitLab: entry/rules.rb (`[super].flatten`) — nested lists, which `!reference` and anchors
    // produce, are flattened; a job's depth limit is checked by its caller.
    for item in items {
        if let Some(rule) = reader.rule(item) {
            rules.push(rule);
        }
    }
    rules
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("`{s}`"),
        _ => node.kind().to_string(),
    }
}

fn wrong_type(node: &Node, key: &str, place: &str, expected: &str) -> Diagnostic {
    Diagnostic::error(
        node.span,
        format!(
            "`{key}` in {place}: expected {expected}, found {}",
            describe(node)
        ),
    )
    .with_code("invalid-value")
}

struct Reader<'d> {
    diags: &'d mut Diagnostics,
    place: &'d str,
    kind: RulesKind,
}

impl Reader<'_> {
    fn error(&mut self, node: &Node, key: &str, expected: &str) {
        self.diags.push(wrong_type(node, key, self.place, expected));
    }

    fn rule(&mut self, node: &Node) -> Option<Rule> {
        let Some(entries) = node.as_map() else {
            self.error(node, "rules", "a mapping");
            return None;
        };
        let mut rule = Rule::empty();
        let mut ok = true;
        let mut start_in: Option<(&Node, String)> = None;
        for (key, value) in entries {
            let name = key.as_str();
            if !self.kind.keys().contains(&name) {
                let message = format!("`rules` in {}: unknown key `{name}`", self.place);
                let d = Diagnostic::error(key.span, message)
                    .with_code("unknown-key")
                    .with_suggestion(name, self.kind.keys().iter().copied());
                self.diags.push(d);
                ok = false;
                continue;
            }
            let key = format!("rules:{name}");
            let read = match name {
                "if" => self.if_clause(value).map(|e| rule.if_ = Some(e)),
                "changes" => self.changes(value).map(|c| rule.changes = Some(c)),
                "exists" => self.exists(value).map(|e| rule.exists = Some(e)),
                "when" => self.when(value).map(|w| rule.when = Some(w)),
                "start_in" => match value
                    .scalar_to_string()
                    .filter(|_| value.as_seq().is_none())
                {
                    Some(text) => {
                        start_in = Some((value, text));
                        Some(())
                    }
                    None => {
                        self.error(value, &key, "a duration");
                        None
                    }
                },
                "allow_failure" => self
                    .boolean(value, &key)
                    .map(|b| rule.allow_failure = Some(AllowFailure::Bool(b))),
                "interruptible" => self
                    .boolean(value, &key)
                    .map(|b| rule.interruptible = Some(b)),
                "variables" => self.variables(value).map(|v| rule.variables = v),
                "needs" => {
                    rule.needs = Some(value.clone());
                    Some(())
                }
                _ => {
                    rule.auto_cancel = Some(value.clone());
                    Some(())
                }
            };
            ok &= read.is_some();
        }
        ok &= self.delay(node, &mut rule, start_in);
        ok.then_some(rule)
    }

    /// `when: delayed` needs `start_in` (at most a week); `start_in` needs `when: delayed`.
    fn delay(&mut self, node: &Node, rule: &mut Rule, start_in: Option<(&Node, String)>) -> bool {
        let delayed = matches!(rule.when, Some(When::Delayed { .. }));
        match (delayed, start_in) {
            (false, None) => true,
            (false, Some((value, _))) => {
                let message = format!(
                    "`rules:start_in` in {}: only allowed with `when: delayed`",
                    self.place
                );
                self.diags
                    .push(Diagnostic::error(value.span, message).with_code("invalid-value"));
                false
            }
            (true, None) => {
                let message = format!(
                    "`rules` in {}: `when: delayed` needs `start_in`",
                    self.place
                );
                self.diags
                    .push(Diagnostic::error(node.span, message).with_code("invalid-value"));
                false
            }
            (true, Some((value, text))) => match parse_duration(&text).map(Duration::from_secs) {
                Some(duration) if duration <= MAX_START_IN => {
                    rule.when = Some(When::Delayed {
                        start_in: text.clone(),
                        duration,
                    });
                    rule.start_in = Some(text);
                    true
                }
                Some(_) => {
                    let message = format!(
                        "`rules:start_in` in {}: should not exceed the limit of 1 week",
                        self.place
                    );
                    self.diags
                        .push(Diagnostic::error(value.span, message).with_code("invalid-value"));
                    false
                }
                None => {
                    self.error(value, "rules:start_in", "a duration such as `30 minutes`");
                    false
                }
            },
        }
    }

    fn if_clause(&mut self, value: &Node) -> Option<Expr> {
        let Some(text) = value.as_str() else {
            self.error(value, "rules:if", "a string");
            return None;
        };
        match Expr::parse(text) {
            Ok(expr) => Some(expr),
            Err(e) => {
                let span = span_in_scalar(value, text, e.offset);
                let message = format!("`rules:if` in {}: {e}", self.place);
                self.diags
                    .push(Diagnostic::error(span, message).with_code("invalid-expression"));
                None
            }
        }
    }

    fn when(&mut self, value: &Node) -> Option<When> {
        let allowed = self.kind.when_values();
        let text = value.as_str().filter(|t| allowed.contains(t));
        let Some(text) = text else {
            let list: Vec<String> = allowed.iter().map(|w| format!("`{w}`")).collect();
            let mut d = wrong_type(
                value,
                "rules:when",
                self.place,
                &format!("one of {}", list.join(", ")),
            );
            if let Some(written) = value.as_str() {
                d = d.with_suggestion(written, allowed.iter().copied());
            }
            self.diags.push(d);
            return None;
        };
        Some(match text {
            "on_success" => When::OnSuccess,
            "on_failure" => When::OnFailure,
            "always" => When::Always,
            "manual" => When::Manual,
            "never" => When::Never,
            // The duration is filled in from `start_in` by `delay`.
            _ => When::Delayed {
                start_in: String::new(),
                duration: Duration::ZERO,
            },
        })
    }

    fn boolean(&mut self, value: &Node, key: &str) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.error(value, key, "a boolean");
        }
        b
    }

    fn strings(&mut self, value: &Node, key: &str) -> Option<Vec<String>> {
        let Some(items) = value.as_seq() else {
            self.error(value, key, "a list of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str() {
                Some(s) => out.push(s.to_owned()),
                None => {
                    self.error(item, key, "a string");
                    return None;
                }
            }
        }
        Some(out)
    }

    fn string(&mut self, value: &Node, key: &str) -> Option<String> {
        let s = value.as_str().map(str::to_owned);
        if s.is_none() {
            self.error(value, key, "a string");
        }
        s
    }

    /// GitLab: rules/rule/changes.rb — an array of at most 50 strings, or `{paths, compare_to}`.
    fn changes(&mut self, value: &Node) -> Option<Changes> {
        if value.as_seq().is_some() {
            let paths = self.paths(value, "rules:changes")?;
            return Some(Changes {
                paths,
                compare_to: None,
            });
        }
        let entries = self.mapping(value, "rules:changes", &["paths", "compare_to"])?;
        let mut changes = Changes {
            paths: Vec::new(),
            compare_to: None,
        };
        let mut has_paths = false;
        for (key, v) in entries {
            match key.as_str() {
                "paths" => {
                    changes.paths = self.paths(v, "rules:changes:paths")?;
                    has_paths = true;
                }
                _ => changes.compare_to = Some(self.string(v, "rules:changes:compare_to")?),
            }
        }
        if !has_paths {
            let message = format!("`rules:changes` in {}: `paths` is required", self.place);
            self.diags
                .push(Diagnostic::error(value.span, message).with_code("invalid-value"));
            return None;
        }
        Some(changes)
    }

    /// GitLab: rules/rule/exists.rb — an array of at most 50 strings, or `{paths, project, ref}`.
    fn exists(&mut self, value: &Node) -> Option<Exists> {
        if value.as_seq().is_some() {
            let paths = self.paths(value, "rules:exists")?;
            return Some(Exists {
                paths,
                project: None,
                ref_: None,
            });
        }
        if value.as_str().is_some() {
            // GitLab: `Array(clause)` accepts a single string.
            let paths = vec![value.as_str().unwrap_or_default().to_owned()];
            return Some(Exists {
                paths,
                project: None,
                ref_: None,
            });
        }
        let entries = self.mapping(value, "rules:exists", &["paths", "project", "ref"])?;
        let mut exists = Exists {
            paths: Vec::new(),
            project: None,
            ref_: None,
        };
        for (key, v) in entries {
            match key.as_str() {
                "paths" => exists.paths = self.paths(v, "rules:exists:paths")?,
                "project" => exists.project = Some(self.string(v, "rules:exists:project")?),
                _ => exists.ref_ = Some(self.string(v, "rules:exists:ref")?),
            }
        }
        if exists.ref_.is_some() && exists.project.is_none() {
            let message = format!("`rules:exists` in {}: `ref` needs `project`", self.place);
            self.diags
                .push(Diagnostic::error(value.span, message).with_code("invalid-value"));
            return None;
        }
        Some(exists)
    }

    fn paths(&mut self, value: &Node, key: &str) -> Option<Vec<String>> {
        let paths = self.strings(value, key)?;
        if paths.len() > MAX_PATHS {
            let message = format!(
                "`{key}` in {}: has too many entries (maximum {MAX_PATHS})",
                self.place
            );
            self.diags
                .push(Diagnostic::error(value.span, message).with_code("invalid-value"));
            return None;
        }
        Some(paths)
    }

    fn mapping<'n>(
        &mut self,
        value: &'n Node,
        key: &str,
        allowed: &[&str],
    ) -> Option<&'n [(crate::yaml::Key, Node)]> {
        let Some(entries) = value.as_map() else {
            self.error(
                value,
                key,
                &format!("a list of paths or a mapping with {}", allowed.join(", ")),
            );
            return None;
        };
        let mut ok = true;
        for (k, _) in entries {
            if !allowed.contains(&k.as_str()) {
                let message = format!("`{key}` in {}: unknown key `{}`", self.place, k.as_str());
                let d = Diagnostic::error(k.span, message)
                    .with_code("unknown-key")
                    .with_suggestion(k.as_str(), allowed.iter().copied());
                self.diags.push(d);
                ok = false;
            }
        }
        ok.then_some(entries)
    }

    /// `rules:variables`: a mapping of scalars.
    fn variables(&mut self, value: &Node) -> Option<Vec<(String, String)>> {
        if value.is_null() {
            return Some(Vec::new());
        }
        let Some(entries) = value.as_map() else {
            self.error(
                value,
                "rules:variables",
                "a mapping of variable names to values",
            );
            return None;
        };
        let mut out: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match v.scalar_to_string() {
                Some(s) => out.push((k.as_str().to_owned(), s)),
                None => {
                    self.error(v, &format!("rules:variables:{}", k.as_str()), "a string");
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// The span of the character at `offset` (bytes) of a scalar `text` written on one line,
/// through the end of the scalar; the scalar's own span when its layout is unknown (a block
/// scalar, escapes).
fn span_in_scalar(node: &Node, text: &str, offset: usize) -> Span {
    let span = node.span;
    if span.is_synthetic() || span.start.line != span.end.line || text.contains('\n') {
        return span;
    }
    let written = span.end.column.saturating_sub(span.start.column) as usize;
    let chars = text.chars().count();
    let quote = if written == chars {
        0
    } else if written == chars + 2 {
        1
    } else {
        return span;
    };
    let before = text.get(..offset).map_or(chars, |t| t.chars().count());
    let column = span.start.column + (quote + before) as u32;
    let end = span.end.column - quote as u32;
    Span::new(
        span.file,
        Pos::new(span.start.line, column),
        Pos::new(span.start.line, end.max(column + 1)),
    )
}
