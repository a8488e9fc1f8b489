//! `runnel exec --variables-file F` and `--var K=V`: variables from outside the YAML.
//!
//! The file is a YAML mapping of name → value, or name → `{value, masked, file}`, standing in for
//! a project's CI/CD variables (Settings → CI/CD → Variables).

use std::path::Path;

use anyhow::{Context, bail};
use runnel_api::JobVariable;

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
    let doc: serde_json::Value = serde_saphyr::from_str(text).context("not valid YAML")?;
    let serde_json::Value::Object(map) = doc else {
        bail!("expected a mapping of variable names to values");
    };
    let mut vars = Vec::with_capacity(map.len());
    for (key, value) in map {
        let mut var = JobVariable::new(&key, "");
        match value {
            serde_json::Value::Object(fields) => {
                for (field, v) in fields {
                    match field.as_str() {
                        "value" => var.value = scalar(&key, &v)?,
                        "masked" => var.masked = v.as_bool().unwrap_or(false),
                        "file" => var.file = v.as_bool().unwrap_or(false),
                        "raw" | "expand" => {
                            let flag = v.as_bool().unwrap_or(false);
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
        _ => bail!("variable `{key}`: expected a string, number or boolean"),
    })
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
