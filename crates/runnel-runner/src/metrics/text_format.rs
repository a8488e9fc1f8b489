//! A strict reader of the Prometheus text exposition format 0.0.4, for tests: it proves that
//! what `/metrics` serves is what Prometheus (and gitlab-runner's client_golang) speak.
//!
//! The grammar is Prometheus' `docs/instrumenting/exposition_formats.md` ("Text format details")
//! as `expfmt.TextParser` enforces it, made stricter where our exposition must be exact: every
//! family has one `# HELP` and one `# TYPE` before its samples, a family's lines are contiguous,
//! no series repeats, and no other comment (such as OpenMetrics' `# EOF` or `# UNIT`) appears.
//! It only reads; it never decides what the daemon exposes.

use std::collections::{BTreeMap, BTreeSet};

/// One metric family as read from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name of `# HELP` and `# TYPE`.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The unescaped help text.
    pub help: String,
    /// The samples in the order they appeared.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name: the family name, or it plus `_bucket`, `_sum` or `_count`.
    pub name: String,
    /// The unescaped labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Family {
    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }
}

/// Reads a whole exposition; the error names the 1-based line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a line feed".into());
    }
    let mut reader = Reader::default();
    for (index, line) in text.lines().enumerate() {
        reader
            .line(line)
            .map_err(|message| format!("line {}: {message}: {line:?}", index + 1))?;
    }
    reader.finish()
}

#[derive(Default)]
struct Reader {
    families: Vec<Family>,
    /// Help read for the family that has not had its `# TYPE` yet.
    pending_help: Option<(String, String)>,
    seen: BTreeSet<String>,
    series: BTreeSet<(String, Vec<(String, String)>)>,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            check_metric_name(name)?;
            self.new_family_name(name)?;
            if self.pending_help.is_some() {
                return Err("a `# HELP` without its `# TYPE`".into());
            }
            self.pending_help = Some((name.to_owned(), unescape(help, false)?));
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("a `# TYPE` without a type")?;
            check_metric_name(name)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type `{kind}`"));
            }
            let help = match self.pending_help.take() {
                Some((help_name, help)) if help_name == name => help,
                Some(_) => return Err("`# TYPE` names another family than `# HELP`".into()),
                None => return Err("a family without `# HELP`".into()),
            };
            self.seen.insert(name.to_owned());
            self.families.push(Family {
                name: name.to_owned(),
                kind: kind.to_owned(),
                help,
                samples: Vec::new(),
            });
            return Ok(());
        }
        if line.starts_with('#') {
            return Err("a comment that 0.0.4 does not define (OpenMetrics?)".into());
        }
        self.sample(line)
    }

    fn new_family_name(&self, name: &str) -> Result<(), String> {
        if self.seen.contains(name) {
            return Err(format!("a second `# HELP` or `# TYPE` for `{name}`"));
        }
        Ok(())
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        if self.pending_help.is_some() {
            return Err("a sample between `# HELP` and `# TYPE`".into());
        }
        let family = self
            .families
            .last_mut()
            .ok_or("a sample before any `# TYPE`")?;
        let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
        let name = &line[..name_end];
        check_metric_name(name)?;
        let suffixes: &[&str] = match family.kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        let suffix = name
            .strip_prefix(family.name.as_str())
            .filter(|suffix| suffixes.contains(suffix))
            .ok_or_else(|| format!("`{name}` does not belong to family `{}`", family.name))?;
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = read_labels(after, &mut labels)?;
        }
        let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let mut parts = rest.split(' ');
        let value = parse_value(parts.next().unwrap_or(""))?;
        if let Some(timestamp) = parts.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| format!("timestamp `{timestamp}` is not an integer"))?;
        }
        if parts.next().is_some() {
            return Err("text after the timestamp".into());
        }
        match suffix {
            "_bucket" if !labels.contains_key("le") => {
                return Err("a histogram bucket without `le`".into());
            }
            "_bucket" => {
                parse_value(labels.get("le").map_or("", String::as_str))?;
            }
            _ if labels.contains_key("le") && family.kind == "histogram" => {
                return Err("`le` outside a bucket".into());
            }
            _ => {}
        }
        let key = (
            name.to_owned(),
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        );
        if !self.series.insert(key) {
            return Err("a series that appeared before".into());
        }
        family.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
        Ok(())
    }

    fn finish(self) -> Result<Vec<Family>, String> {
        if let Some((name, _)) = self.pending_help {
            return Err(format!("`# HELP {name}` without `# TYPE`"));
        }
        if let Some(empty) = self.families.iter().find(|f| f.samples.is_empty()) {
            return Err(format!("family `{}` has no samples", empty.name));
        }
        Ok(self.families)
    }
}

/// Reads `name="value",...}` and returns what follows the `}`.
fn read_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (name, after) = rest.split_once("=\"").ok_or("a label without `=\"`")?;
        check_label_name(name)?;
        let (value, after) = quoted(after)?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = match after.strip_prefix(',') {
            Some(next) => next,
            None if after.starts_with('}') => after,
            None => return Err("labels not separated by `,`".into()),
        };
    }
}

/// Reads an escaped label value up to its closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((unescape(&text[..i], true)?, &text[i + 1..])),
            (false, _) => {}
        }
    }
    Err("an unterminated label value".into())
}

/// Undoes 0.0.4 escaping: `\\` and `\n` everywhere, `\"` only in label values.
fn unescape(text: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label_value => out.push('"'),
            other => return Err(format!("invalid escape `\\{}`", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

/// A value as Go's `strconv.ParseFloat` reads it in expfmt, with `+Inf`, `-Inf` and `NaN`
/// spelled as Prometheus writes them (Rust's `inf` is not valid).
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(format!("`{text}` is not a Prometheus float"));
    }
    text.parse::<f64>()
        .map_err(|_| format!("`{text}` is not a Prometheus float"))
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let valid = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid {
        return Err(format!("invalid metric name `{name}`"));
    }
    Ok(())
}

fn check_label_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !valid {
        return Err(format!("invalid label name `{name}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    const VALID: &str = "# HELP a_total Help with \\\\ and \\n.\n\
                         # TYPE a_total counter\n\
                         a_total{x=\"q\\\"uote\",y=\"2\"} 1\n\
                         # HELP a Gauge.\n\
                         # TYPE a gauge\n\
                         a 2.5e+09\n\
                         # HELP h Histogram.\n\
                         # TYPE h histogram\n\
                         h_bucket{le=\"30\"} 0\n\
                         h_bucket{le=\"+Inf\"} 1\n\
                         h_sum 12\n\
                         h_count 1\n";

    #[test]
    fn valid_exposition_is_read_with_unescaped_text() {
        let families = parse(VALID).expect("valid");
        assert_eq!(families.len(), 3);
        assert_eq!(families[0].help, "Help with \\ and \n.");
        assert_eq!(
            families[0].value("a_total", &[("x", "q\"uote"), ("y", "2")]),
            Some(1.0)
        );
        assert_eq!(families[1].value("a", &[]), Some(2.5e9));
        assert_eq!(families[2].samples.len(), 4);
    }

    #[test]
    fn openmetrics_and_malformed_lines_are_rejected() {
        let cases = [
            (format!("{VALID}# EOF\n"), "does not define"),
            ("# TYPE a gauge\na 1\n".to_owned(), "without `# HELP`"),
            (
                "# HELP a x\n# TYPE a gauge\na inf\n".to_owned(),
                "not a Prometheus float",
            ),
            ("# HELP a x\n# TYPE a gauge\na 1".to_owned(), "line feed"),
            (
                "# HELP a x\n# TYPE a gauge\na 1\na 2\n".to_owned(),
                "appeared before",
            ),
            (
                "# HELP a x\n# TYPE a gauge\nb 1\n".to_owned(),
                "does not belong",
            ),
            (
                "# HELP a x\n# TYPE a gauge\na{1x=\"v\"} 1\n".to_owned(),
                "invalid label name",
            ),
            (
                "# HELP a x\n# TYPE a gauge\na{x=\"v\\t\"} 1\n".to_owned(),
                "invalid escape",
            ),
            (
                "# HELP a x\n# TYPE a unit\na 1\n".to_owned(),
                "unknown type",
            ),
            (
                "# HELP h x\n# TYPE h histogram\nh_bucket 1\n".to_owned(),
                "without `le`",
            ),
            (
                "# HELP a x\n# TYPE a gauge\na 1\n# HELP a x\n# TYPE a gauge\n".to_owned(),
                "second",
            ),
            ("# HELP a x\n# TYPE a gauge\n".to_owned(), "no samples"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
