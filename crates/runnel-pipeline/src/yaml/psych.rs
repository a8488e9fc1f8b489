//! Psych's typing of plain scalars (YAML 1.1 as Ruby reads it), which GitLab inherits.

use crate::yaml::Value;

/// What Psych makes of a plain scalar.
#[derive(Debug, PartialEq)]
pub(super) enum PsychScalar {
    Value(Value),
    /// A date or a time: Psych loads a `Date`/`Time`, which GitLab's `safe_load` refuses.
    Date,
}

/// Types a plain scalar as Psych's `ScalarScanner#tokenize` does.
// GitLab: Psych (ruby/psych lib/psych/scalar_scanner.rb), called through `YAML.safe_load` in
// lib/gitlab/config/loader/yaml.rb.
pub(super) fn psych_scalar(s: &str) -> PsychScalar {
    use std::sync::LazyLock;

    use regex::Regex;
    static WORDISH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[^\d.:-]?[A-Za-z_\s!@#$%^&*(){}<>|/\\~;=]+").expect("valid regex")
    });
    static TIME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^-?\d{4}-\d{1,2}-\d{1,2}(?:[Tt]|\s+)\d{1,2}:\d\d:\d\d(?:\.\d*)?(?:\s*(?:Z|[-+]\d{1,2}:?(?:\d\d)?))?$")
            .expect("valid regex")
    });
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\d{4}-(?:1[012]|0\d|\d)-(?:[12]\d|3[01]|0\d|\d)$").expect("valid regex")
    });
    static SEXAGESIMAL_INT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}$").expect("valid regex")
    });
    static SEXAGESIMAL_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}\.[0-9_]*$").expect("valid regex")
    });
    static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?|[-+]?[0-9][0-9_,]*(:[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$")
            .expect("valid regex")
    });
    let str_value = || PsychScalar::Value(Value::Str(s.to_owned()));
    if s.is_empty() {
        return PsychScalar::Value(Value::Null);
    }
    if WORDISH.is_match(s) || s.contains('\n') {
        if s.chars().count() > 5 {
            return str_value();
        }
        let lower = s.to_ascii_lowercase();
        return PsychScalar::Value(match lower.as_str() {
            _ if !lower.starts_with(['y', 't', 'o', 'n', 'f', '~']) => Value::Str(s.to_owned()),
            "~" | "null" => Value::Null,
            "yes" | "true" | "on" => Value::Bool(true),
            "no" | "false" | "off" => Value::Bool(false),
            _ => Value::Str(s.to_owned()),
        });
    }
    if TIME.is_match(s) || DATE.is_match(s) {
        return PsychScalar::Date;
    }
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        ".inf" | "+.inf" => return PsychScalar::Value(Value::Float(f64::INFINITY)),
        "-.inf" => return PsychScalar::Value(Value::Float(f64::NEG_INFINITY)),
        ".nan" => return PsychScalar::Value(Value::Float(f64::NAN)),
        _ => {}
    }
    if s.starts_with(':') && s.len() > 1 {
        // A Ruby symbol; GitLab permits the Symbol class. Keep its name as a string.
        return str_value();
    }
    if SEXAGESIMAL_INT.is_match(s) {
        return sexagesimal(s).map_or_else(str_value, |f| PsychScalar::Value(Value::Int(f as i64)));
    }
    if SEXAGESIMAL_FLOAT.is_match(s) {
        return sexagesimal(s).map_or_else(str_value, |f| PsychScalar::Value(Value::Float(f)));
    }
    if FLOAT.is_match(s) {
        if s.trim_start_matches(['-', '+']) == "." {
            return str_value();
        }
        let cleaned: String = s.chars().filter(|c| *c != ',' && *c != '_').collect();
        let cleaned = cleaned.strip_suffix('.').unwrap_or(&cleaned);
        let cleaned = cleaned.replace(".e", "e").replace(".E", "E");
        return cleaned
            .parse::<f64>()
            .map_or_else(|_| str_value(), |f| PsychScalar::Value(Value::Float(f)));
    }
    // Psych's `INTEGER_LEGACY` (the default, `strict_integer: false`) allows `,` separators.
    static INTEGER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^[-+]?(?:0b[0-1_,]+|0[0-7_,]+|(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)|0x[0-9a-fA-F_,]+)$",
        )
        .expect("valid regex")
    });
    if !INTEGER.is_match(s) {
        return str_value();
    }
    let cleaned: String = s.chars().filter(|c| *c != ',' && *c != '_').collect();
    parse_int(&cleaned).map_or_else(str_value, |i| PsychScalar::Value(Value::Int(i)))
}

/// Psych's sexagesimal: each part times `60 ** (index - 2).abs`, so `1:30` is 5400 and
/// `1:30:00` is 5400 too (Psych's own arithmetic, reproduced on purpose).
fn sexagesimal(s: &str) -> Option<f64> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = 0.0;
    for (i, part) in body.split(':').enumerate() {
        let part: String = part.chars().filter(|c| *c != '_').collect();
        let n: f64 = part.parse().ok()?;
        let exponent = i32::try_from(i).ok()?.saturating_sub(2).abs();
        total += n * 60f64.powi(exponent);
    }
    // Ruby's `"-1".to_i` keeps the sign on the first part only.
    let first_negative = sign < 0.0;
    Some(if first_negative { -total } else { total })
}

/// Psych's `INTEGER`: binary `0b`, octal `0`, decimal, hex `0x`, with an optional sign.
fn parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else if body == "0" || body.starts_with(|c: char| c.is_ascii_digit() && c != '0') {
        (10, body)
    } else {
        return None;
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::{PsychScalar, psych_scalar};
    use crate::yaml::Value;

    fn psych(s: &str) -> Value {
        match psych_scalar(s) {
            PsychScalar::Value(v) => v,
            PsychScalar::Date => Value::Str("<date>".to_owned()),
        }
    }

    #[test]
    fn psych_types_plain_scalars_as_yaml_1_1() {
        assert_eq!(psych("yes"), Value::Bool(true));
        assert_eq!(psych("Off"), Value::Bool(false));
        assert_eq!(psych("TRUE"), Value::Bool(true));
        assert_eq!(psych("y"), Value::Str("y".into()));
        assert_eq!(psych("n"), Value::Str("n".into()));
        assert_eq!(psych("~"), Value::Null);
        assert_eq!(psych("nULL"), Value::Null);
        assert_eq!(psych("0755"), Value::Int(493));
        assert_eq!(psych("0x1F"), Value::Int(31));
        assert_eq!(psych("0b101"), Value::Int(5));
        assert_eq!(psych("1_000"), Value::Int(1000));
        assert_eq!(psych("1,000"), Value::Int(1000));
        assert_eq!(psych("08"), Value::Str("08".into()));
        assert_eq!(psych("1e3"), Value::Str("1e3".into()));
        assert_eq!(psych("1.5"), Value::Float(1.5));
        assert_eq!(psych("1."), Value::Float(1.0));
        assert_eq!(psych("1:30"), Value::Int(5400));
        assert_eq!(psych("1:30:00"), Value::Int(5400));
        assert_eq!(psych("2024-01-01"), Value::Str("<date>".into()));
        assert_eq!(psych("echo hi"), Value::Str("echo hi".into()));
        assert_eq!(psych("-1"), Value::Int(-1));
        assert_eq!(psych("3.0.1"), Value::Str("3.0.1".into()));
    }
}
