//! Ruby's `File.fnmatch?(glob, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)`, which GitLab
//! uses for `rules:changes`, `rules:exists` and `only/except:changes`
//! (lib/gitlab/ci/build/rules/rule/clause/{changes,exists}.rb, policy/changes.rb).
//!
//! - `*` matches within one path segment (never `/`), including a leading dot;
//! - `**/` at the start of a segment matches zero or more directories; `**` elsewhere is `*`;
//! - `?` one character other than `/`; `[...]` / `[!...]` / `[^...]` a character class;
//! - `{a,b}` alternatives (nested allowed); `\` escapes the next character;
//! - the whole path must match, case-sensitively.

/// Whether `path` matches `glob` as Ruby's `File.fnmatch?` with GitLab's flags.
pub fn fnmatch(glob: &str, path: &str) -> bool {
    let path: Vec<char> = path.chars().collect();
    brace_expand(glob).iter().any(|pattern| {
        let pattern: Vec<char> = pattern.chars().collect();
        match_path(&pattern, &path)
    })
}

/// Ruby's `ruby_brace_expand`: the first top-level `{...}` is expanded, then the rest
/// recursively. An unbalanced `{` is kept literally.
fn brace_expand(glob: &str) -> Vec<String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut depth = 0usize;
    let mut open = None;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or(0);
                    return expand_group(&chars, start, i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![glob.to_owned()]
}

/// Expands the group `chars[open..=close]` and what follows it.
fn expand_group(chars: &[char], open: usize, close: usize) -> Vec<String> {
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut alternatives = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut i = open + 1;
    while i < close {
        let c = chars[i];
        match c {
            '\\' => {
                current.push(c);
                if let Some(next) = chars.get(i + 1) {
                    current.push(*next);
                }
                i += 1;
            }
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => alternatives.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
        i += 1;
    }
    alternatives.push(current);
    alternatives
        .into_iter()
        .flat_map(|alt| brace_expand(&format!("{prefix}{alt}{suffix}")))
        .collect()
}

/// Splits on `/` (outside of escapes) into segments.
fn segments(chars: &[char]) -> Vec<&[char]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '/' {
            out.push(&chars[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&chars[start.min(chars.len())..]);
    out
}

fn match_path(pattern: &[char], path: &[char]) -> bool {
    let p = segments(pattern);
    let s = segments(path);
    match_segments(&p, &s)
}

fn match_segments(p: &[&[char]], s: &[&[char]]) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return s.is_empty();
    };
    // GitLab/Ruby: `**/` matches zero or more directories (with FNM_DOTMATCH, hidden ones too).
    if *first == ['*', '*'] && !rest.is_empty() {
        return (0..s.len()).any(|skip| match_segments(rest, &s[skip..]));
    }
    match s.split_first() {
        Some((segment, s_rest)) => match_segment(first, segment) && match_segments(rest, s_rest),
        None => false,
    }
}

/// One segment: `*`, `?`, `[...]`, `\x` and literals.
fn match_segment(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    if let Some(next) = match_class(p, pi, s[si]) {
                        pi = next;
                        si += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == s[si] {
                        pi += 2;
                        si += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[si] {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((star_p, star_s)) => {
                pi = star_p + 1;
                si = star_s + 1;
                star = Some((star_p, star_s + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; the index after the class when
/// it matches. A class without its `]` never matches (Ruby's `bracket` returns NULL).
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &here = p.get(i)?;
        if here == ']' && !first {
            break;
        }
        first = false;
        let (lo, after_lo) = if here == '\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (here, i + 1)
        };
        if p.get(after_lo) == Some(&'-') && p.get(after_lo + 1).is_some_and(|c| *c != ']') {
            let (hi, after_hi) = match p.get(after_lo + 1) {
                Some('\\') => (*p.get(after_lo + 2)?, after_lo + 3),
                Some(h) => (*h, after_lo + 2),
                None => return None,
            };
            matched |= lo <= c && c <= hi;
            i = after_hi;
        } else {
            matched |= lo == c;
            i = after_lo;
        }
    }
    (matched != negated).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn exists_globs_cross_directories_only_with_double_star() {
        assert!(fnmatch("**/*.py", "a.py"));
        assert!(fnmatch("**/*.py", "src/a.py"));
        assert!(!fnmatch("*.py", "src/a.py"));
        assert!(fnmatch("Dockerfile", "Dockerfile"));
    }

    #[test]
    fn star_stays_in_one_segment() {
        assert!(fnmatch("*.md", "README.md"));
        assert!(!fnmatch("*.md", "docs/README.md"));
        assert!(fnmatch("docs/*", "docs/index.md"));
        assert!(!fnmatch("docs/*", "docs/a/index.md"));
        assert!(fnmatch("*", ".gitlab-ci.yml"));
    }

    #[test]
    fn double_star_slash_matches_zero_or_more_directories() {
        assert!(fnmatch("**/*.rb", "a.rb"));
        assert!(fnmatch("**/*.rb", "lib/a/b.rb"));
        assert!(fnmatch("docs/**/*", "docs/a/b/c.md"));
        assert!(fnmatch("**/*", ".hidden/x"));
        assert!(!fnmatch("docs/**", "docs/a/b"));
        assert!(fnmatch("docs/**", "docs/a"));
    }

    #[test]
    fn braces_classes_and_escapes() {
        assert!(fnmatch("{src,lib}/**/*.{rs,toml}", "lib/x/Cargo.toml"));
        assert!(!fnmatch("{src,lib}/*.rs", "test/a.rs"));
        assert!(fnmatch("file[0-9].txt", "file7.txt"));
        assert!(!fnmatch("file[!0-9].txt", "file7.txt"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "a/c"));
        assert!(fnmatch(r"a\*c", "a*c"));
        assert!(!fnmatch(r"a\*c", "abc"));
        assert!(!fnmatch("file[0-9.txt", "file[0-9.txt"));
        assert!(fnmatch("{a,{b,c}}d", "cd"));
    }

    #[test]
    fn whole_path_and_case_sensitive() {
        assert!(!fnmatch("Dockerfile", "dockerfile"));
        assert!(!fnmatch("src", "src/main.rs"));
        assert!(fnmatch("src/main.rs", "src/main.rs"));
    }
}
