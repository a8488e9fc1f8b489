//! `$VAR` expansion of job variable values, as the runner does before exporting them.
//!
//! GitLab: gitlab-runner `common/spec/variables.go` `ExpandValue` is Go's `os.Expand` with a
//! lookup that returns the *unexpanded* value of the last variable with that name (one pass, no
//! recursion), `$` for `$$`, the empty string for shell specials and unknown names, and the file
//! path for file variables. This crate must not depend on `runnel-pipeline`, so it has its own copy.

/// Expands `$NAME`, `${NAME}` and `$$` in `value` with Go's `os.Expand` rules; `lookup` gives the
/// value of a name (`None` = empty).
pub fn expand_value(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut copied = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&value[copied..j]);
            let (name, width) = shell_name(&value[j + 1..]);
            match name {
                // Invalid syntax (`${}`, `${` without `}`): os.Expand eats the characters.
                None if width > 0 => {}
                // `$` not followed by a name stays.
                None => out.push('$'),
                Some(name) => out.push_str(&lookup_special(name, &lookup)),
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    if copied == 0 {
        return value.to_owned();
    }
    out.push_str(&value[copied.min(value.len())..]);
    out
}

/// gitlab-runner's `Variables.value`: `$` → `$`, positional and special parameters → empty.
fn lookup_special(name: &str, lookup: &impl Fn(&str) -> Option<String>) -> String {
    match name {
        "$" => "$".to_owned(),
        "*" | "#" | "@" | "!" | "?" | "-" | "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8"
        | "9" => String::new(),
        _ => lookup(name).unwrap_or_default(),
    }
}

fn is_shell_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Go's `getShellName`: the name after a `$` and how many bytes it used.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_shell_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match bytes.iter().skip(1).position(|&c| c == b'}') {
            Some(0) => (None, 2),
            Some(end) => (Some(&s[1..=end]), end + 2),
            None => (None, 1),
        };
    }
    if is_shell_special(bytes[0]) {
        return (Some(&s[..1]), 1);
    }
    let len = bytes.iter().take_while(|&&c| is_alnum(c)).count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

#[cfg(test)]
mod tests {
    use super::expand_value;

    fn expand(value: &str) -> String {
        expand_value(value, |name| match name {
            "A" => Some("a".to_owned()),
            "B_2" => Some("$A".to_owned()),
            _ => None,
        })
    }

    #[test]
    fn expands_plain_and_braced_names() {
        assert_eq!(expand("x$A-${A}y"), "xa-ay");
    }

    #[test]
    fn does_not_expand_recursively() {
        assert_eq!(expand("$B_2"), "$A");
    }

    #[test]
    fn double_dollar_is_a_dollar_and_unknown_is_empty() {
        assert_eq!(expand("$$A $NOPE."), "$A .");
    }

    #[test]
    fn bad_syntax_is_eaten_and_lone_dollar_stays() {
        assert_eq!(expand("a${}b ${A c$ d$%"), "ab A c$ d$%");
    }

    #[test]
    fn specials_are_empty() {
        assert_eq!(expand("$1${#}$?x"), "x");
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(expand("é$A€"), "éa€");
    }
}
