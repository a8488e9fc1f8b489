//! Regular expressions as GitLab runs them: Ruby-style `/regexp/flags` literals compiled with
//! RE2 (`Gitlab::UntrustedRegexp`), here translated to the `regex` crate.
//!
//! GitLab: lib/gitlab/untrusted_regexp.rb, lib/gitlab/untrusted_regexp/ruby_syntax.rb and
//! lib/gitlab/ci/pipeline/expression/lexeme/pattern.rb.
//!
//! RE2 and the `regex` crate agree on most syntax and on `^`/`$` (start and end of the text
//! unless `m` is given; GitLab does not turn multi-line mode on). Where they differ, the
//! translation follows RE2: `\d`, `\w`, `\s`, `\b` are ASCII-only, `\Q...\E` quotes, `\123` is
//! an octal escape, a `{` that does not start a repetition is a literal, and only the flags
//! `i`, `m`, `s`, `U` exist.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// A compiled `/regexp/flags` pattern.
#[derive(Clone)]
pub struct Pattern {
    /// The text the pattern was built from, e.g. `/foo\/bar/i`.
    literal: String,
    /// The regexp between the slashes, after `\/` became `/`.
    source: String,
    /// The flags after the last slash.
    flags: String,
    regex: Regex,
}

// GitLab: ruby_syntax.rb `PATTERN = %r{^/(?<regexp>.*)/(?<flags>[ismU]*)$}`. Ruby's `^` and `$`
// match at line boundaries, hence `(?m)`.
static RUBY_SYNTAX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^/(.*)/([ismU]*)$").expect("the Ruby regexp syntax pattern is valid")
});

impl Pattern {
    /// Builds a pattern from `/regexp/flags` text, as GitLab's `Lexeme::Pattern.new` does for a
    /// literal and for a variable's value on the right of `=~`. Err: why it is not a regexp.
    pub fn new(text: &str) -> Result<Pattern, String> {
        // GitLab: pattern.rb `regexp.gsub(%r{\\/}, '/')`.
        let unescaped = text.replace("\\/", "/");
        let caps = RUBY_SYNTAX
            .captures(&unescaped)
            .ok_or("not a `/regexp/` literal")?;
        let source = caps.get(1).map_or("", |m| m.as_str()).to_owned();
        let flags = caps.get(2).map_or("", |m| m.as_str()).to_owned();
        let translated = translate(&source)?;
        let full = if flags.is_empty() {
            translated
        } else {
            format!("(?{flags}){translated}")
        };
        let regex = Regex::new(&full).map_err(|e| first_line(&e.to_string()))?;
        Ok(Pattern {
            literal: text.to_owned(),
            source,
            flags,
            regex,
        })
    }

    /// The text the pattern was written as.
    pub fn literal(&self) -> &str {
        &self.literal
    }

    /// The regexp between the slashes (GitLab's `UntrustedRegexp#source` without the flags).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The flags (`i`, `m`, `s`, `U`).
    pub fn flags(&self) -> &str {
        &self.flags
    }

    /// Whether the regexp matches anywhere in `text` (GitLab: `regexp.scan(text).present?`).
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.literal)
    }
}

impl PartialEq for Pattern {
    /// GitLab: untrusted_regexp.rb `==` compares sources.
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source && self.flags == other.flags
    }
}

fn first_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.last().map_or_else(
        || text.to_owned(),
        |l| l.trim().trim_start_matches("error: ").to_owned(),
    )
}

const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";
const SPACE: &str = r"\t\n\x0C\r ";

/// Translates RE2 syntax into the `regex` crate's. Err: the construct RE2 rejects.
pub fn translate(re2: &str) -> Result<String, String> {
    let chars: Vec<char> = re2.chars().collect();
    let mut out = String::with_capacity(re2.len() + 8);
    let mut i = 0;
    let mut class_depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => i = translate_escape(&chars, i, class_depth > 0, &mut out)?,
            '[' if class_depth > 0 && chars.get(i + 1) != Some(&':') => {
                // A `[` inside a class is a literal in RE2; the regex crate would nest a class.
                out.push_str("\\[");
                i += 1;
            }
            '[' => {
                out.push('[');
                i += 1;
                class_depth += 1;
                if class_depth == 1 {
                    // A `]` (or `^]`) first in a class is a literal in RE2 and in the regex crate.
                    if chars.get(i) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    if chars.get(i) == Some(&']') {
                        out.push_str("\\]");
                        i += 1;
                    }
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
                i += 1;
            }
            '&' | '~' | '-' if class_depth > 0 && chars.get(i + 1) == Some(&c) => {
                // The regex crate gives `&&`, `~~`, `--` set meanings that RE2 lacks.
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '{' if class_depth == 0 => {
                if is_repetition(&chars[i..]) {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
                i += 1;
            }
            '}' if class_depth == 0 => {
                // Only reached for a `}` that closes no repetition: RE2 reads it literally.
                out.push_str(if closes_repetition(&out) { "}" } else { "\\}" });
                i += 1;
            }
            '(' if class_depth == 0 && chars.get(i + 1) == Some(&'?') => {
                check_group_flags(&chars[i + 2..])?;
                out.push('(');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Whether `chars` (starting at `{`) is `{n}`, `{n,}` or `{n,m}`.
fn is_repetition(chars: &[char]) -> bool {
    let body: String = chars.iter().skip(1).take_while(|c| **c != '}').collect();
    if chars.len() <= body.chars().count() + 1 {
        return false;
    }
    let mut parts = body.splitn(2, ',');
    let min = parts.next().unwrap_or("");
    let max = parts.next();
    !min.is_empty()
        && min.chars().all(|c| c.is_ascii_digit())
        && max.is_none_or(|m| m.chars().all(|c| c.is_ascii_digit()))
}

/// Whether the text written so far ends inside an open `{n,m` repetition.
fn closes_repetition(out: &str) -> bool {
    let Some(open) = out.rfind('{') else {
        return false;
    };
    if out[..open].ends_with('\\') {
        return false;
    }
    out[open + 1..]
        .chars()
        .all(|c| c.is_ascii_digit() || c == ',')
}

/// RE2 accepts only the flags `i`, `m`, `s`, `U` (and `-`) in `(?flags)` and `(?flags:...)`.
fn check_group_flags(after_question: &[char]) -> Result<(), String> {
    let Some(first) = after_question.first() else {
        return Ok(());
    };
    if matches!(first, ':' | 'P' | '<' | '=' | '!' | '#') {
        return match first {
            '=' | '!' => Err("lookahead is not supported".to_owned()),
            '<' if matches!(after_question.get(1), Some('=' | '!')) => {
                Err("lookbehind is not supported".to_owned())
            }
            _ => Ok(()),
        };
    }
    for c in after_question {
        match c {
            ')' | ':' => return Ok(()),
            'i' | 'm' | 's' | 'U' | '-' => {}
            other => return Err(format!("invalid flag `{other}` in group")),
        }
    }
    Ok(())
}

/// Translates the escape at `chars[i]` (a backslash); returns the index after it.
fn translate_escape(
    chars: &[char],
    i: usize,
    in_class: bool,
    out: &mut String,
) -> Result<usize, String> {
    let Some(&next) = chars.get(i + 1) else {
        return Err("trailing backslash".to_owned());
    };
    let ascii_class = |set: &str, negated: bool, out: &mut String| match (in_class, negated) {
        (true, false) => out.push_str(set),
        (_, true) => {
            out.push_str("[^");
            out.push_str(set);
            out.push(']');
        }
        (false, false) => {
            out.push('[');
            out.push_str(set);
            out.push(']');
        }
    };
    match next {
        'd' => ascii_class(DIGIT, false, out),
        'D' => ascii_class(DIGIT, true, out),
        'w' => ascii_class(WORD, false, out),
        'W' => ascii_class(WORD, true, out),
        's' => ascii_class(SPACE, false, out),
        'S' => ascii_class(SPACE, true, out),
        'b' if !in_class => out.push_str(r"(?-u:\b)"),
        'B' if !in_class => out.push_str(r"(?-u:\B)"),
        'Q' => return Ok(quote_until_e(chars, i + 2, out)),
        'E' => {}
        'C' => return Err("`\\C` is not supported".to_owned()),
        '1'..='7' | '0' => return octal_escape(chars, i, out),
        '8' | '9' => return Err("backreferences are not supported".to_owned()),
        '<' | '>' => out.push(next),
        'x' | 'p' | 'P' if chars.get(i + 2) == Some(&'{') => {
            // `\x{7F}`, `\p{Greek}`: the braces belong to the escape.
            let close = chars[i + 2..]
                .iter()
                .position(|c| *c == '}')
                .ok_or("unclosed `{` in escape")?;
            out.extend(&chars[i..i + 3 + close]);
            return Ok(i + 3 + close);
        }
        c if c.is_ascii_punctuation() => {
            out.push('\\');
            out.push(c);
        }
        c => {
            out.push('\\');
            out.push(c);
        }
    }
    Ok(i + 2)
}

/// `\Q...\E`: everything up to `\E` (or the end) is literal.
fn quote_until_e(chars: &[char], mut i: usize, out: &mut String) -> usize {
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
            return i + 2;
        }
        out.push_str(&regex::escape(&chars[i].to_string()));
        i += 1;
    }
    i
}

/// RE2 (parse.cc): `\0` and `\1`-`\7` followed by another octal digit are octal escapes of up
/// to three digits; a lone `\1`-`\7` is a backreference, which RE2 rejects.
fn octal_escape(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let is_octal = |c: Option<&char>| c.is_some_and(|c| ('0'..='7').contains(c));
    let first = chars[i + 1];
    if first != '0' && !is_octal(chars.get(i + 2)) {
        return Err("backreferences are not supported".to_owned());
    }
    let mut value = 0u32;
    let mut j = i + 1;
    while j < chars.len() && j < i + 4 && is_octal(chars.get(j)) {
        value = value * 8 + chars[j].to_digit(8).unwrap_or(0);
        j += 1;
    }
    out.push_str(&format!("\\x{{{value:X}}}"));
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::{Pattern, translate};

    fn matches(literal: &str, text: &str) -> bool {
        Pattern::new(literal)
            .map(|p| p.is_match(text))
            .unwrap_or(false)
    }

    #[test]
    fn ascii_classes_do_not_match_unicode() {
        assert!(!matches(r"/^\w$/", "é"));
        assert!(matches(r"/^\w$/", "e"));
        assert!(!matches(r"/^\d$/", "٣"));
        assert!(matches(r"/^[\w-]+$/", "feature-1_x"));
        assert!(matches(r"/\bmain\b/", "é main"));
    }

    #[test]
    fn anchors_match_the_whole_text_unless_m() {
        assert!(!matches("/^b/", "a\nb"));
        assert!(matches("/^b/m", "a\nb"));
        assert!(!matches("/a$/", "a\n"));
    }

    #[test]
    fn flags_i_s_u() {
        assert!(matches("/MAIN/i", "main"));
        assert!(!matches("/a.b/", "a\nb"));
        assert!(matches("/a.b/s", "a\nb"));
    }

    #[test]
    fn re2_rejections() {
        assert!(Pattern::new("/(?=a)/").is_err());
        assert!(Pattern::new(r"/(a)\1/").is_err());
        assert!(Pattern::new("/(?x)a/").is_err());
        assert!(Pattern::new("/ some ( thin/i").is_err());
    }

    #[test]
    fn re2_literals() {
        assert_eq!(translate("a{,3}").ok().as_deref(), Some(r"a\{,3\}"));
        assert!(matches("/a{,3}/", "a{,3}"));
        assert!(matches(r"/\Qa.b\E/", "a.b"));
        assert!(!matches(r"/\Qa.b\E/", "axb"));
        assert!(matches(r"/\101/", "A"));
        assert!(matches("/x{2}/", "xx"));
        assert!(matches("/[a&&b]/", "&"));
    }

    #[test]
    fn escaped_slash_is_a_slash() {
        assert!(matches(r"/^a\/b$/", "a/b"));
    }
}
