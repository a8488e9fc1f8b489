//! Report artifacts read locally: `dotenv`, `junit`, and Cobertura `coverage_report`.
//!
//! GitLab: `app/services/ci/parse_dotenv_artifact_service.rb` (dotenv format and limits),
//! `lib/gitlab/ci/parsers/test/junit.rb` (test cases and their status),
//! `lib/gitlab/ci/parsers/coverage/cobertura.rb`.

use quick_xml::events::Event;

/// GitLab's default plan limit `dotenv_size`: 5 KiB.
pub const DOTENV_MAX_BYTES: usize = 5 * 1024;
/// GitLab's default plan limit `dotenv_variables`: 20.
pub const DOTENV_MAX_VARIABLES: usize = 20;

/// Why a dotenv report was rejected (GitLab rejects the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// Larger than [`DOTENV_MAX_BYTES`].
    #[error("dotenv artifact too big: maximum allowable size is {DOTENV_MAX_BYTES} bytes")]
    TooBig,
    /// More than [`DOTENV_MAX_VARIABLES`] variables.
    #[error("dotenv files cannot have more than {DOTENV_MAX_VARIABLES} variables")]
    TooManyVariables,
    /// A line is not `KEY=VALUE` (blank lines included, as in GitLab).
    #[error("invalid format on line {line}")]
    InvalidFormat {
        /// 1-based line number.
        line: usize,
    },
    /// A key has characters other than letters, digits and `_`.
    #[error("invalid variable name `{key}` on line {line}")]
    InvalidKey {
        /// The key.
        key: String,
        /// 1-based line number.
        line: usize,
    },
}

/// Parses a dotenv report like GitLab: each line is `KEY=VALUE` split at the first `=`, both
/// sides stripped, quotes kept; a later key replaces an earlier one.
pub fn parse_dotenv(content: &[u8]) -> Result<Vec<(String, String)>, DotenvError> {
    if content.len() >= DOTENV_MAX_BYTES {
        return Err(DotenvError::TooBig);
    }
    let text = String::from_utf8_lossy(content);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut variables: Vec<(String, String)> = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_number = index + 1;
        let line = line.trim_end_matches(['\n']);
        let Some((key, value)) = line.split_once('=') else {
            return Err(DotenvError::InvalidFormat { line: line_number });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty()
            || key.len() > 255
            || !key.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
        {
            return Err(DotenvError::InvalidKey {
                key: key.to_owned(),
                line: line_number,
            });
        }
        variables.retain(|(k, _)| k != key);
        variables.push((key.to_owned(), value.to_owned()));
    }
    if variables.len() > DOTENV_MAX_VARIABLES {
        return Err(DotenvError::TooManyVariables);
    }
    Ok(variables)
}

/// Counts of a JUnit report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JunitSummary {
    /// All test cases.
    pub total: u64,
    /// Cases with `<failure>`.
    pub failed: u64,
    /// Cases with `<error>`.
    pub errored: u64,
    /// Cases with `<skipped>`.
    pub skipped: u64,
}

impl JunitSummary {
    /// Adds another report's counts.
    pub fn add(&mut self, other: JunitSummary) {
        self.total += other.total;
        self.failed += other.failed;
        self.errored += other.errored;
        self.skipped += other.skipped;
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse the XML report")]
pub struct XmlReportError(#[source] quick_xml::Error);

/// Summarises a JUnit XML report by its `<testcase>` elements, as GitLab's parser does.
pub fn summarize_junit(xml: &[u8]) -> Result<JunitSummary, XmlReportError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut summary = JunitSummary::default();
    let mut in_case = false;
    let mut status: Option<&'static str> = None;
    loop {
        let event = reader.read_event_into(&mut buf).map_err(XmlReportError)?;
        let (name, is_empty) = match &event {
            Event::Start(e) => (e.local_name().as_ref().to_vec(), false),
            Event::Empty(e) => (e.local_name().as_ref().to_vec(), true),
            Event::End(e) => {
                if e.local_name().as_ref() == b"testcase" && in_case {
                    finish_case(&mut summary, status.take());
                    in_case = false;
                }
                buf.clear();
                continue;
            }
            Event::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        match name.as_slice() {
            b"testcase" if is_empty => finish_case(&mut summary, None),
            b"testcase" => {
                in_case = true;
                status = None;
            }
            b"failure" if in_case => status = Some(status.unwrap_or("failed")),
            b"error" if in_case => status = Some(status.unwrap_or("error")),
            b"skipped" if in_case => status = Some(status.unwrap_or("skipped")),
            _ => {}
        }
        buf.clear();
    }
    Ok(summary)
}

fn finish_case(summary: &mut JunitSummary, status: Option<&str>) {
    summary.total += 1;
    match status {
        Some("failed") => summary.failed += 1,
        Some("error") => summary.errored += 1,
        Some("skipped") => summary.skipped += 1,
        _ => {}
    }
}

/// The line coverage of a Cobertura report in percent (`line-rate` of `<coverage>` × 100).
pub fn cobertura_line_rate(xml: &[u8]) -> Result<Option<f64>, XmlReportError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(XmlReportError)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"coverage" => {
                let rate = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == b"line-rate")
                    .and_then(|a| String::from_utf8_lossy(&a.value).trim().parse::<f64>().ok());
                return Ok(rate.map(|r| (r * 10_000.0).round() / 100.0));
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{DotenvError, JunitSummary, cobertura_line_rate, parse_dotenv, summarize_junit};

    #[test]
    fn dotenv_splits_at_the_first_equals_and_strips() {
        let vars = parse_dotenv(b"A = 1\nB=x=y\nA=\"q\"\n").expect("valid");
        assert_eq!(
            vars,
            [("B".into(), "x=y".into()), ("A".into(), "\"q\"".into())]
        );
    }

    #[test]
    fn dotenv_rejects_blank_lines_and_bad_keys() {
        assert_eq!(
            parse_dotenv(b"A=1\n\nB=2\n"),
            Err(DotenvError::InvalidFormat { line: 2 })
        );
        assert!(matches!(
            parse_dotenv(b"A-B=1\n"),
            Err(DotenvError::InvalidKey { .. })
        ));
    }

    #[test]
    fn dotenv_limits_variable_count() {
        let text: String = (0..21).map(|i| format!("V{i}=x\n")).collect();
        assert_eq!(
            parse_dotenv(text.as_bytes()),
            Err(DotenvError::TooManyVariables)
        );
    }

    #[test]
    fn junit_counts_cases_by_status() {
        let xml = br#"<testsuites><testsuite>
            <testcase name="a"/>
            <testcase name="b"><failure message="x">trace</failure></testcase>
            <testcase name="c"><skipped/></testcase>
            <testcase name="d"><error/></testcase>
        </testsuite></testsuites>"#;
        let summary = summarize_junit(xml).expect("valid");
        assert_eq!(
            summary,
            JunitSummary {
                total: 4,
                failed: 1,
                errored: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn cobertura_line_rate_is_a_percentage() {
        let xml =
            br#"<?xml version="1.0"?><coverage line-rate="0.8512" branch-rate="0"></coverage>"#;
        assert_eq!(cobertura_line_rate(xml).expect("valid"), Some(85.12));
    }
}
