//! The `coverage:` keyword: extracting a percentage from the trace with the job's regex.
//!
//! GitLab does this on the server (`lib/gitlab/ci/trace/stream.rb` `extract_coverage`), so the
//! payload has no coverage field; local runs call this helper with the job's `coverage` regex.

use regex::Regex;

/// Extracts the coverage like GitLab: lines are tried from the last to the first; in the first
/// line with a match, the last capture (or the whole match when the regex has no group) of the
/// last match is taken, and the first number in it (`\d+(\.\d+)?`) is the result.
///
/// `pattern` may be written as in YAML, between slashes (`/Coverage: (\d+)%/`).
/// Returns `None` for an invalid regex or when no line matches with a number.
pub fn extract_coverage(pattern: &str, trace: &str) -> Option<String> {
    let pattern = pattern
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/'))
        .unwrap_or(pattern);
    let regex = Regex::new(pattern).ok()?;
    let number = Regex::new(r"\d+(\.\d+)?").expect("the number pattern is valid");
    for line in trace.lines().rev() {
        let Some(last) = regex.captures_iter(line).last() else {
            continue;
        };
        let matched = if regex.captures_len() > 1 {
            last.iter().skip(1).flatten().last()
        } else {
            last.get(0)
        };
        if let Some(found) = matched.and_then(|m| number.find(m.as_str())) {
            return Some(found.as_str().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::extract_coverage;

    #[test]
    fn takes_the_last_matching_line_and_its_capture() {
        let trace = "Coverage: 10%\nnoise\nTOTAL 120 30 75.5%\nnoise\n";
        assert_eq!(
            extract_coverage(r"/TOTAL.*\s(\d+\.?\d*)%/", trace).as_deref(),
            Some("75.5")
        );
        assert_eq!(
            extract_coverage(r"Coverage: \d+%", trace).as_deref(),
            Some("10")
        );
    }

    #[test]
    fn no_match_is_none() {
        assert_eq!(extract_coverage(r"/nothing (\d+)/", "a\nb"), None);
        assert_eq!(extract_coverage(r"/bad(/", "a"), None);
    }
}
