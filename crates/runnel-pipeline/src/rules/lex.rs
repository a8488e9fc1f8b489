//! The lexer of GitLab's CI expression language (`rules:if`, `only:variables`, ...).
//!
//! It scans the way GitLab's `StringScanner` loop does: skip whitespace, then try each lexeme's
//! pattern at the current position, in GitLab's order, and take the first that matches.
//! GitLab: lib/gitlab/ci/pipeline/expression/lexer.rb and lexeme/*.rb.

use std::sync::LazyLock;

use regex::Regex;

use crate::rules::parse::ExprError;
use crate::rules::re2::Pattern;

/// GitLab: lexer.rb `MAX_TOKENS`. The loop runs this many times and raises after it, so an
/// expression of exactly this many tokens is already rejected.
pub const MAX_TOKENS: usize = 100;

/// What a token is.
#[derive(Debug, Clone)]
pub enum TokenKind {
    /// `(`
    ParenOpen,
    /// `)`
    ParenClose,
    /// `$[[ inputs.name ]]`: a `spec:inputs` reference left in an expression.
    Input(String),
    /// `$NAME`
    Variable(String),
    /// `"text"` or `'text'` (no escapes: the string ends at the next quote of its kind).
    Str(String),
    /// `/regex/flags`
    Pattern(Pattern),
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// `==`
    Equals,
    /// `=~`
    Matches,
    /// `!=`
    NotEquals,
    /// `!~`
    NotMatches,
    /// `&&`
    And,
    /// `||`
    Or,
}

/// One token and where it is in the expression (byte offsets).
#[derive(Debug, Clone)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

fn lexeme(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the lexeme patterns are valid regexes")
}

// GitLab's patterns, anchored at the scan position. Ruby's `\w` and `\b` are ASCII-only.
static WHITESPACE: LazyLock<Regex> = LazyLock::new(|| lexeme(r"^[ \t\r\n\x0B\x0C]+"));
// GitLab: lexeme/input.rb.
static INPUT: LazyLock<Regex> = LazyLock::new(|| {
    lexeme(r"^\$\[\[[ \t\r\n\x0B\x0C]*inputs\.([A-Za-z0-9_]+)[ \t\r\n\x0B\x0C]*\]\]")
});
// GitLab: lexeme/variable.rb `\$(?<name>\w+)`.
static VARIABLE: LazyLock<Regex> = LazyLock::new(|| lexeme(r"^\$([A-Za-z0-9_]+)"));
// GitLab: lexeme/string.rb `("(?<string>.*?)")|('(?<string>.*?)')`; `.` stops at a newline.
static STRING: LazyLock<Regex> = LazyLock::new(|| lexeme(r#"^(?:"([^\n]*?)"|'([^\n]*?)')"#));
// GitLab: lexeme/pattern.rb `^\/([^\/]|\\/)+[^\\]\/[ismU]*`. The regex crate picks the same
// match as Ruby's backtracking engine here (leftmost-first), so `/a/ b/` ends at the first `/`
// after `a ` and a one-character body such as `/a/` does not lex at all, as in GitLab.
static PATTERN: LazyLock<Regex> = LazyLock::new(|| lexeme(r"^/(?:[^/]|\\/)+[^\\]/[ismU]*"));
// GitLab: lexeme/boolean.rb `\b(?:true|false)\b`.
static BOOLEAN: LazyLock<Regex> = LazyLock::new(|| lexeme(r"^(?-u:\b)(?:true|false)(?-u:\b)"));

/// Splits `text` into tokens, or says where the first unknown lexeme is.
pub fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    for _ in 0..MAX_TOKENS {
        if let Some(m) = WHITESPACE.find(&text[pos..]) {
            pos += m.end();
        }
        if pos >= text.len() {
            return Ok(tokens);
        }
        let token = scan_one(text, pos)?;
        pos = token.end;
        tokens.push(token);
    }
    Err(ExprError::new(pos, "too many tokens"))
}

/// Tries every lexeme at `pos` in GitLab's order (lexer.rb `LEXEMES`).
fn scan_one(text: &str, pos: usize) -> Result<Token, ExprError> {
    let rest = &text[pos..];
    let token = |kind, len: usize| {
        Ok(Token {
            kind,
            start: pos,
            end: pos + len,
        })
    };
    if rest.starts_with('(') {
        return token(TokenKind::ParenOpen, 1);
    }
    if rest.starts_with(')') {
        return token(TokenKind::ParenClose, 1);
    }
    if let Some(c) = INPUT.captures(rest) {
        return token(TokenKind::Input(c[1].to_owned()), c[0].len());
    }
    if let Some(c) = VARIABLE.captures(rest) {
        return token(TokenKind::Variable(c[1].to_owned()), c[0].len());
    }
    if let Some(c) = STRING.captures(rest) {
        let value = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
        return token(TokenKind::Str(value.to_owned()), c[0].len());
    }
    if let Some(m) = PATTERN.find(rest) {
        // GitLab: lexeme/pattern.rb raises `Invalid regular expression!` from the lexer when
        // the literal does not compile.
        let pattern = Pattern::new(m.as_str()).map_err(|reason| {
            ExprError::new(pos, format!("invalid regular expression: {reason}"))
        })?;
        return token(TokenKind::Pattern(pattern), m.end());
    }
    if rest.starts_with("null") {
        return token(TokenKind::Null, 4);
    }
    if let Some(m) = BOOLEAN.find(rest) {
        return token(TokenKind::Bool(m.as_str() == "true"), m.end());
    }
    for (op, kind) in [
        ("==", TokenKind::Equals),
        ("=~", TokenKind::Matches),
        ("!=", TokenKind::NotEquals),
        ("!~", TokenKind::NotMatches),
        ("&&", TokenKind::And),
        ("||", TokenKind::Or),
    ] {
        if rest.starts_with(op) {
            return token(kind, 2);
        }
    }
    Err(ExprError::new(
        pos,
        format!("unknown lexeme found: `{}`", lexeme_excerpt(rest)),
    ))
}

/// The text at an unknown lexeme, up to the next whitespace, shortened for a message.
fn lexeme_excerpt(rest: &str) -> String {
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    if word.is_empty() {
        rest.chars().take(1).collect()
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenKind, tokenize};

    fn kinds(text: &str) -> Vec<String> {
        tokenize(text)
            .map(|tokens| tokens.iter().map(|t| format!("{:?}", t.kind)).collect())
            .unwrap_or_else(|e| vec![format!("error at {}: {}", e.offset, e.message)])
    }

    #[test]
    fn pattern_literal_ends_at_first_unescaped_slash() {
        // GitLab: spec/lib/gitlab/ci/pipeline/expression/lexeme/pattern_spec.rb
        // ("is an eager scanner for regexp boundaries").
        let tokens = tokenize("/some .* /").unwrap_or_default();
        assert!(
            matches!(tokens.first().map(|t| &t.kind), Some(TokenKind::Pattern(p)) if p.source() == "some .* ")
        );
        assert_eq!(
            kinds("/some .* / pattern/"),
            ["error at 11: unknown lexeme found: `pattern/`"]
        );
    }

    #[test]
    fn one_character_pattern_is_not_a_pattern() {
        assert!(kinds("$A =~ /a/")[0].starts_with("error at 6"));
    }

    #[test]
    fn null_needs_no_word_boundary() {
        assert_eq!(kinds("nullx")[0], "error at 4: unknown lexeme found: `x`");
    }

    #[test]
    fn hundred_tokens_are_too_many() {
        let ok = vec!["$A"; 99].join(" ");
        assert_eq!(tokenize(&ok).map(|t| t.len()).ok(), Some(99));
        let too_many = vec!["$A"; 100].join(" ");
        assert!(tokenize(&too_many).is_err());
    }

    #[test]
    fn boolean_needs_word_boundary() {
        assert_eq!(kinds("true")[0], "Bool(true)");
        assert!(kinds("trueish")[0].starts_with("error at 0"));
    }
}
