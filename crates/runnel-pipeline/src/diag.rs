//! Diagnostics: mistakes in user input, each with a [`Span`], and the one renderer that `runnel
//! lint`, `runnel exec` and the web UI share ([`render_plain`], [`render_json`]).
//!
//! A diagnostic is data; this module never prints. Build one with
//! `Diagnostic::error(span, "message").with_code("code").with_help("...")`.

use std::fmt;

use crate::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mistake in user input. `message` is lower case, without a final period, with the
/// names the user wrote in backticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    /// A stable, kebab-case identifier for `--json` (`yaml-syntax`, `include-not-found`, ...).
    pub code: &'static str,
    pub message: String,
    /// Printed after the carets: "did you mean `before_script`?".
    pub help: Option<String>,
    /// Printed as `= note: <text> at <file:line:col>` (or without the location for a synthetic
    /// span), e.g. `("included", span_of_the_include)`.
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(severity: Severity, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            span,
            code: "invalid",
            message: message.into(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Error, span, message)
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Warning, span, message)
    }

    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets `help` to "did you mean `x`?" when `word` is close to one of `candidates`.
    #[must_use]
    pub fn with_suggestion<'a>(
        mut self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        if let Some(best) = suggest(word, candidates) {
            self.help = Some(format!("did you mean `{best}`?"));
        }
        self
    }

    #[must_use]
    pub fn with_note(mut self, span: Span, note: impl Into<String>) -> Self {
        self.notes.push((span, note.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)
    }
}

/// All the diagnostics of one step, in the order they were found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// `Err(self)` when there is at least one error, else `Ok(())` (warnings are dropped).
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.has_errors() { Err(self) } else { Ok(()) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Diagnostics(diagnostics)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.to_owned())
}

/// Renders diagnostics as `runnel lint` prints them (rustc's shape, no colour).
pub fn render_plain(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_one(&mut out, d, sources);
    }
    out
}

fn render_one(out: &mut String, d: &Diagnostic, sources: &SourceMap) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{}: {}", d.severity, d.message);
    let snippet = (!d.span.is_synthetic())
        .then(|| sources.file(d.span.file))
        .flatten()
        .and_then(|file| file.line(d.span.start.line).map(|line| (file, line)));
    let gutter = if snippet.is_some() {
        d.span.start.line.to_string().len()
    } else {
        1
    };
    let pad = " ".repeat(gutter);
    let mut help_printed = false;
    if let Some((file, line)) = snippet {
        let _ = writeln!(out, "{pad}--> {}", sources.location(d.span));
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {line}", d.span.start.line);
        let start = d.span.start.column.max(1) as usize - 1;
        let width = line.chars().count();
        let end = if d.span.end.line == d.span.start.line && d.span.end.column > d.span.start.column
        {
            d.span.end.column as usize - 1
        } else {
            width
        };
        let carets = end.min(width).saturating_sub(start).max(1);
        let indent: String = line
            .chars()
            .take(start)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = write!(out, "{pad} | {indent}{}", "^".repeat(carets));
        if let Some(help) = &d.help {
            let _ = write!(out, " {help}");
            help_printed = true;
        }
        out.push('\n');
        let _ = file;
    } else if !d.span.is_synthetic() {
        let _ = writeln!(out, "{pad}--> {}", sources.location(d.span));
    }
    if let (Some(help), false) = (&d.help, help_printed) {
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    for (span, note) in &d.notes {
        if span.is_synthetic() {
            let _ = writeln!(out, "{pad} = note: {note}");
        } else {
            let _ = writeln!(out, "{pad} = note: {note} at {}", sources.location(*span));
        }
    }
}

/// Renders diagnostics for `--json`: one object per diagnostic with
/// `{file, line, column, end_line, end_column, severity, code, message, help}`.
pub fn render_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> serde_json::Value {
    let items = diagnostics
        .iter()
        .map(|d| {
            let file = (!d.span.is_synthetic()).then(|| sources.path(d.span.file));
            serde_json::json!({
                "file": file,
                "line": d.span.start.line,
                "column": d.span.start.column,
                "end_line": d.span.end.line,
                "end_column": d.span.end.column,
                "severity": d.severity.as_str(),
                "code": d.code,
                "message": d.message,
                "help": d.help,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::{Diagnostic, render_json, render_plain, suggest};
    use crate::source::{Pos, SourceMap, Span};

    #[test]
    fn suggest_finds_close_keyword() {
        let keywords = ["before_script", "script", "after_script"];
        assert_eq!(
            suggest("before_string", keywords),
            Some("before_script".to_owned())
        );
        assert_eq!(suggest("scirpt", keywords), Some("script".to_owned()));
        assert_eq!(suggest("deploy_production", keywords), None);
    }

    #[test]
    fn render_json_has_position_code_and_help() {
        let mut map = SourceMap::new();
        let file = map.add("ci/build.yml", "job:\n  scirpt: echo\n");
        let span = Span::new(file, Pos::new(2, 3), Pos::new(2, 9));
        let d = Diagnostic::error(span, "unknown key `scirpt` in job `job`")
            .with_code("unknown-key")
            .with_suggestion("scirpt", ["script"]);
        let json = render_json(&[d], &map);
        let expected = serde_json::json!([{
            "file": "ci/build.yml", "line": 2, "column": 3, "end_line": 2, "end_column": 9,
            "severity": "error", "code": "unknown-key",
            "message": "unknown key `scirpt` in job `job`", "help": "did you mean `script`?",
        }]);
        assert_eq!(json, expected);
    }

    #[test]
    fn render_plain_without_a_file_prints_no_snippet() {
        let map = SourceMap::new();
        let d =
            Diagnostic::error(Span::synthetic(), "variable `A` is invalid").with_help("quote it");
        assert_eq!(
            render_plain(&[d], &map),
            "error: variable `A` is invalid\n  = help: quote it\n"
        );
    }

    #[test]
    fn render_plain_points_carets_at_the_span() {
        let mut map = SourceMap::new();
        let text = "stages: [a]\n".repeat(11) + "before_string: [echo hi]\n";
        let file = map.add(".gitlab-ci.yml", text);
        let span = Span::new(file, Pos::new(12, 1), Pos::new(12, 14));
        let d = Diagnostic::error(span, "`before_string` is neither a keyword nor a job")
            .with_suggestion("before_string", ["before_script"])
            .with_note(
                Span::synthetic(),
                "a top-level key that is not a keyword defines a job",
            );
        let expected = "\
error: `before_string` is neither a keyword nor a job
  --> .gitlab-ci.yml:12:1
   |
12 | before_string: [echo hi]
   | ^^^^^^^^^^^^^ did you mean `before_script`?
   = note: a top-level key that is not a keyword defines a job
";
        assert_eq!(render_plain(&[d], &map), expected);
    }
}
