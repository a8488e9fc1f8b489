//! The expression language against GitLab's own examples: every `tests/fixtures/rules-expr/*.cases`
//! file is a table of expressions with the value GitLab gives them (its spec file is named in
//! the file's header). Each line is checked, and the whole table, with the error messages, is
//! snapshotted.

use std::fmt::Write as _;
use std::path::Path;

use runnel_pipeline::rules::{Expr, Value};

/// One `.cases` file.
struct Table {
    /// `# var: NAME=value` lines, in order (`\n` in a value is a newline).
    vars: Vec<(String, String)>,
    /// `# mode: truthful`: the expected column is `Statement#truthful?`, not `#evaluate`.
    truthful: bool,
    /// `expression => expected`.
    cases: Vec<(String, String)>,
}

impl Table {
    fn read(path: &Path) -> Table {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let mut table = Table {
            vars: Vec::new(),
            truthful: false,
            cases: Vec::new(),
        };
        for line in text.lines() {
            if let Some(var) = line.strip_prefix("# var: ") {
                let (name, value) = var.split_once('=').expect("`# var: NAME=value`");
                table
                    .vars
                    .push((name.to_owned(), value.replace("\\n", "\n")));
            } else if line == "# mode: truthful" {
                table.truthful = true;
            } else if !line.starts_with('#') {
                let (expr, expected) = line.rsplit_once(" => ").expect("`expression => expected`");
                table.cases.push((expr.to_owned(), expected.to_owned()));
            }
        }
        table
    }
}

/// Ruby's `inspect` of a value, as GitLab's specs write it.
fn inspect(value: &Value<'_>) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Str(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Regex(p) => p.literal().to_owned(),
    }
}

#[test]
fn expression_tables() {
    insta::glob!("fixtures/rules-expr/*.cases", |path| {
        let table = Table::read(path);
        let mut out = String::new();
        let mut failures = Vec::new();
        for (text, expected) in &table.cases {
            let actual = match Expr::parse(text) {
                Ok(expr) if table.truthful => expr.evaluate(&table.vars).to_string(),
                Ok(expr) => inspect(&expr.value(&table.vars)),
                Err(_) if table.truthful && expected == "false" => "false".to_owned(),
                Err(_) => "error".to_owned(),
            };
            let _ = writeln!(out, "{text} => {actual}");
            if let Err(e) = Expr::parse(text) {
                let _ = writeln!(out, "{}^ {e}", " ".repeat(text[..e.offset].chars().count()));
            }
            if &actual != expected {
                failures.push(format!("{text}: expected {expected}, got {actual}"));
            }
        }
        assert!(failures.is_empty(), "{}: {failures:#?}", path.display());
        insta::assert_snapshot!(out);
    });
}
