//! `runnel exec --variables-file F` and `--var K=V`: variables from outside the YAML.
//!
//! The file is a YAML mapping of name → value, or name → `{value, masked, file}`, standing in for
//! a project's CI/CD variables (Settings → CI/CD → Variables).

use std::path::Path;

use anyhow::{Context, bail};
use runnel_api::JobVariable;

/// The shape a variables file must have, for error messages.
const SHAPE: &str = "a YAML (or JSON) mapping of variable names to values: `NAME: value` or \
                     `NAME: {value: …, masked: true, file: true, raw: true}`";

/// Reads a variables file.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<JobVariable>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read variables file `{}`", path.display()))?;
    parse(&text).with_context(|| format!("invalid variables file `{}`", path.display()))
}

pub(crate) fn parse(text: &str) -> anyhow::Result<Vec<JobVariable>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: serde_json::Value = match serde_saphyr::from_str(text) {
        Ok(doc) => doc,
        Err(err) => {
            // The parser's first line says where and what; the rest is a source excerpt.
            let err = err.to_string();
            let first = err.lines().next().unwrap_or_default();
            let what = first.trim_start_matches("error: ");
            bail!("not valid YAML ({what}); expected {SHAPE}");
        }
    };
    let serde_json::Value::Object(map) = doc else {
        bail!("found {}; expected {SHAPE}", describe(&doc));
    };
    let mut vars = Vec::with_capacity(map.len());
    for (key, value) in map {
        let mut var = JobVariable::new(&key, "");
        match value {
            serde_json::Value::Object(fields) => {
                for (field, v) in fields {
                    match field.as_str() {
                        "value" => var.value = scalar(&key, &v)?,
                        "masked" => var.masked = flag(&key, &field, &v)?,
                        "file" => var.file = flag(&key, &field, &v)?,
                        "raw" | "expand" => {
                            let flag = flag(&key, &field, &v)?;
                            var.raw = if field == "raw" { flag } else { !flag };
                        }
                        other => bail!(
                            "variable `{key}`: unknown key `{other}` (expected `value`, `masked`, `file`, `raw`)"
                        ),
                    }
                }
            }
            other => var.value = scalar(&key, &other)?,
        }
        vars.push(var);
    }
    Ok(vars)
}

fn scalar(key: &str, value: &serde_json::Value) -> anyhow::Result<String> {
    Ok(match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => String::new(),
        other => bail!(
            "variable `{key}`: found {}; expected a string, number or boolean",
            describe(other)
        ),
    })
}

/// A `true`/`false` field of a variable.
fn flag(key: &str, field: &str, value: &serde_json::Value) -> anyhow::Result<bool> {
    match value {
        serde_json::Value::Bool(b) => Ok(*b),
        other => bail!(
            "variable `{key}`: `{field}` is {}; expected true or false",
            describe(other)
        ),
    }
}

/// What a YAML value is, for error messages.
fn describe(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a sequence",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// Parses `--var KEY=VALUE`.
pub(crate) fn parse_cli(arg: &str) -> anyhow::Result<JobVariable> {
    let Some((key, value)) = arg.split_once('=') else {
        bail!("`--var {arg}`: expected KEY=VALUE");
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("`--var {arg}`: a variable name has only letters, digits and `_`");
    }
    Ok(JobVariable::new(key, value))
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_cli};

    #[test]
    fn variables_file_takes_plain_and_detailed_values() {
        let vars = parse("A: one\nB: 2\nSECRET:\n  value: hunter22\n  masked: true\nCFG:\n  value: x\n  file: true\n")
            .expect("valid");
        let keys: Vec<_> = vars
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str(), v.masked, v.file))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("A", "one", false, false),
                ("B", "2", false, false),
                ("SECRET", "hunter22", true, false),
                ("CFG", "x", false, true)
            ]
        );
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse("A:\n  valeu: x\n").is_err());
    }

    #[test]
    fn cli_variables_need_a_name_and_an_equals_sign() {
        let var = parse_cli("FOO=a=b").expect("valid");
        assert_eq!((var.key.as_str(), var.value.as_str()), ("FOO", "a=b"));
        assert!(parse_cli("FOO").is_err());
        assert!(parse_cli("=x").is_err());
    }
}
