//! Variable expansion, in the two flavours GitLab has.
//!
//! - **Server side** ([`expand_server`], [`expand_server_existing`]): GitLab's
//!   `ExpandVariables` (lib/expand_variables.rb). `$VAR`, `${VAR}` and `%VAR%` are replaced;
//!   there is no escape, so `$$VAR` is `$` followed by the value of `VAR`.
//! - **Runner side** ([`expand_runner`]): gitlab-runner's `JobVariables.ExpandValue`, which is
//!   Go's `os.Expand` with the runner's lookup (common/variables.go): `$VAR` and `${VAR}`, an
//!   unknown variable is empty, `$$` is `$`, and `%VAR%` is left alone.
//!
//! Variables that refer to each other are expanded by GitLab before the job is sent
//! ([`sort_and_expand_all`], lib/gitlab/ci/variables/collection.rb and collection/sort.rb) and
//! once more by the runner ([`expand_runner_variables`]). Neither loops: GitLab expands in
//! dependency order and refuses cycles, the runner makes a single pass.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::rules::VarLookup;

// GitLab: lib/expand_variables.rb `VARIABLES_REGEXP = /\$([a-zA-Z_][a-zA-Z0-9_]*)|\${\g<1>}|%\g<1>%/`.
static SERVER_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|%([a-zA-Z_][a-zA-Z0-9_]*)%",
    )
    .expect("the variable reference pattern is valid")
});

// GitLab: lib/gitlab/ci/variables/collection/item.rb
// `VARIABLES_REGEXP = /\$\$|%%|\$(?<key>[a-zA-Z_][a-zA-Z0-9_]*)|\${\g<key>?}|%\g<key>%/`.
static COLLECTION_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\$\$|%%|\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_]*)?\}|%([a-zA-Z_][a-zA-Z0-9_]*)%",
    )
    .expect("the variable reference pattern is valid")
});

/// The referenced name of a reference match (`$NAME`, `${NAME}` or `%NAME%`), if any.
fn reference_name<'t>(caps: &Captures<'t>) -> Option<&'t str> {
    caps.get(1)
        .or_else(|| caps.get(2))
        .or_else(|| caps.get(3))
        .map(|m| m.as_str())
}

/// GitLab's `ExpandVariables.expand`: unknown variables become empty.
///
/// GitLab uses it for `environment:name`, `environment:url`, `environment:auto_stop_in`,
/// `environment:kubernetes:namespace`, `resource_group`, `pages:publish`, and the `pipeline:`
/// and `job:` of cross-pipeline `needs`.
pub fn expand_server(text: &str, vars: &dyn VarLookup) -> String {
    SERVER_REFERENCE
        .replace_all(text, |caps: &Captures<'_>| {
            reference_name(caps)
                .and_then(|name| vars.lookup(name))
                .unwrap_or("")
                .to_owned()
        })
        .into_owned()
}

/// GitLab's `ExpandVariables.expand_existing`: unknown variables are left as written.
///
/// GitLab uses it for `rules:changes` paths and `compare_to`, `rules:exists` paths (and its
/// `project`/`ref`), and runner `tags`.
pub fn expand_server_existing(text: &str, vars: &dyn VarLookup) -> String {
    SERVER_REFERENCE
        .replace_all(text, |caps: &Captures<'_>| {
            match reference_name(caps).and_then(|n| vars.lookup(n)) {
                Some(value) => value.to_owned(),
                None => caps[0].to_owned(),
            }
        })
        .into_owned()
}

/// gitlab-runner's `JobVariables.ExpandValue`: Go's `os.Expand` with the runner's lookup.
///
/// The runner uses it for `image`, `services` (name, alias, entrypoint, command), `cache:key`
/// and `cache:paths`, `artifacts:name` and paths, `dependencies` artifacts paths, the
/// `CI_*`-derived build directories, and job variables that refer to others.
///
/// `$NAME`/`${NAME}` (names of ASCII letters, digits and `_`) are looked up, unknown names are
/// empty; `$$` is `$`; the special shell variables `$*`, `$#`, `$@`, `$!`, `$?`, `$0`-`$9` are
/// empty; `$-` looks up `-`; a `$` that starts no name (`$/`, a trailing `$`) is kept; `${}` is
/// removed and an unclosed `${` loses the `${`.
pub fn expand_runner(text: &str, vars: &dyn VarLookup) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() * 2);
    let mut copied = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            match name {
                None if width > 0 => {} // Invalid syntax: the characters are eaten.
                None => out.push('$'),
                Some(name) => out.push_str(&runner_lookup(vars, name)),
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// gitlab-runner: common/variables.go `JobVariables.Get`.
fn runner_lookup(vars: &dyn VarLookup, name: &str) -> String {
    match name {
        "$" => "$".to_owned(),
        "*" | "#" | "@" | "!" | "?" | "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" => {
            String::new()
        }
        _ => vars.lookup(name).unwrap_or("").to_owned(),
    }
}

fn is_shell_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go: os/env.go `getShellName` — the name after a `$` and how many bytes it took.
/// `None` with a width: bad syntax to eat; `None` with width 0: no name, keep the `$`.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_shell_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match b.iter().skip(1).position(|c| *c == b'}') {
            Some(0) => (None, 2),
            Some(i) => (Some(&s[1..=i]), i + 2),
            None => (None, 1),
        };
    }
    if is_shell_special(b[0]) {
        return (Some(&s[0..1]), 1);
    }
    let len = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

/// One variable as the expansion of variables by variables sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandVariable {
    pub key: String,
    pub value: String,
    /// `expand: false` (GitLab's `raw`): its value is never expanded.
    pub raw: bool,
    /// A file-type variable (its value is the file's content).
    pub file: bool,
}

impl ExpandVariable {
    /// A plain (non-raw, non-file) variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        ExpandVariable {
            key: key.into(),
            value: value.into(),
            raw: false,
            file: false,
        }
    }
}

impl VarLookup for [ExpandVariable] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|v| v.key == name)
            .map(|v| v.value.as_str())
    }
}

impl VarLookup for Vec<ExpandVariable> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// gitlab-runner's `JobVariables.Expand`: every non-raw value expanded once with
/// [`expand_runner`] against the values as received (so no chain is followed further and no
/// cycle can loop).
pub fn expand_runner_variables(vars: &[ExpandVariable]) -> Vec<ExpandVariable> {
    vars.iter()
        .map(|v| {
            let mut v = v.clone();
            if !v.raw {
                v.value = expand_runner(&v.value, &vars);
            }
            v
        })
        .collect()
}

/// How [`sort_and_expand_all`] treats references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortExpandOptions {
    /// Keep `$UNKNOWN` as written (else it becomes empty).
    pub keep_undefined: bool,
    /// Replace references to file variables by their content (else keep the reference).
    pub expand_file_refs: bool,
    /// Replace references to raw variables by their value (else keep the reference, for the
    /// runner to expand).
    pub expand_raw_refs: bool,
}

impl SortExpandOptions {
    /// What GitLab uses for the variables it sends to the runner (`Ci::Build#runner_variables`).
    pub const RUNNER: SortExpandOptions = SortExpandOptions {
        keep_undefined: true,
        expand_file_refs: false,
        expand_raw_refs: false,
    };
    /// GitLab's defaults (`environment`, `resource_group`, ... expansion).
    pub const DEFAULT: SortExpandOptions = SortExpandOptions {
        keep_undefined: false,
        expand_file_refs: true,
        expand_raw_refs: true,
    };
}

/// The result of [`sort_and_expand_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedVariables {
    /// The variables in dependency order, expanded (unchanged and in input order on a cycle).
    pub variables: Vec<ExpandVariable>,
    /// GitLab's error for reference cycles: `circular variable reference detected: ["A", "B"]`.
    pub error: Option<String>,
}

/// The names a variable refers to; `None` for a raw variable or one without `$`/`%`.
/// GitLab: collection/item.rb `depends_on`.
fn depends_on(var: &ExpandVariable) -> Option<Vec<&str>> {
    if var.raw || !(var.value.contains('$') || var.value.contains('%')) {
        return None;
    }
    Some(
        COLLECTION_REFERENCE
            .captures_iter(&var.value)
            .filter_map(|c| reference_name(&c))
            .collect(),
    )
}

/// GitLab's `Collection#sort_and_expand_all`: orders the variables so that each comes after
/// those it refers to (Ruby's TSort, depth first in list order), then expands each value
/// against the variables placed before it. `$$` and `%%` are kept for the runner.
pub fn sort_and_expand_all(vars: &[ExpandVariable], options: SortExpandOptions) -> SortedVariables {
    match sort_and_expand_indexed(vars, options) {
        Ok(sorted) => SortedVariables {
            variables: sorted
                .into_iter()
                .map(|(i, value)| ExpandVariable {
                    value,
                    ..vars[i].clone()
                })
                .collect(),
            error: None,
        },
        Err(error) => SortedVariables {
            variables: vars.to_vec(),
            error: Some(error),
        },
    }
}

/// [`sort_and_expand_all`] as the input positions of the variables in their new order, each
/// with its expanded value; the error is GitLab's message for reference cycles
/// (collection/sort.rb: `circular variable reference detected: ["A", "B"]`).
pub fn sort_and_expand_indexed(
    vars: &[ExpandVariable],
    options: SortExpandOptions,
) -> Result<Vec<(usize, String)>, String> {
    let deps = dependencies(vars);
    if let Some(error) = cycle_error(vars, &deps) {
        return Err(error);
    }
    let mut order = Vec::with_capacity(vars.len());
    let mut state = vec![0u8; vars.len()]; // 0 new, 1 in progress, 2 done
    for start in 0..vars.len() {
        post_order(start, &deps, &mut state, &mut order);
    }
    let mut out: Vec<ExpandVariable> = Vec::with_capacity(vars.len());
    let mut sorted = Vec::with_capacity(vars.len());
    for i in order {
        let mut var = vars[i].clone();
        if depends_on(&var).is_some() {
            var.value = expand_collection_value(&var.value, &out, options);
        }
        sorted.push((i, var.value.clone()));
        out.push(var);
    }
    Ok(sorted)
}

/// GitLab's check at pipeline creation (collection/sort.rb `errors`): `Some` with its message
/// when variables refer to each other in a cycle. A variable that refers to itself is no cycle.
pub fn reference_cycles(vars: &[ExpandVariable]) -> Option<String> {
    cycle_error(vars, &dependencies(vars))
}

/// For each variable, the positions of every variable named in its value.
/// GitLab: sort.rb `tsort_each_child` (`@collection.all(name)` for each referenced name).
fn dependencies(vars: &[ExpandVariable]) -> Vec<Vec<usize>> {
    vars.iter()
        .map(|v| {
            depends_on(v)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|name| {
                    vars.iter()
                        .enumerate()
                        .filter(move |(_, w)| w.key == name)
                        .map(|(i, _)| i)
                })
                .collect()
        })
        .collect()
}

fn cycle_error(vars: &[ExpandVariable], deps: &[Vec<usize>]) -> Option<String> {
    let cycles = strongly_connected_cycles(deps);
    if cycles.is_empty() {
        return None;
    }
    let described: Vec<String> = cycles
        .iter()
        .map(|c| {
            let keys: Vec<String> = c.iter().map(|i| format!("{:?}", vars[*i].key)).collect();
            format!("[{}]", keys.join(", "))
        })
        .collect();
    Some(format!(
        "circular variable reference detected: {}",
        described.join(", ")
    ))
}

fn post_order(node: usize, deps: &[Vec<usize>], state: &mut [u8], order: &mut Vec<usize>) {
    if state[node] != 0 {
        return;
    }
    state[node] = 1;
    for &child in &deps[node] {
        post_order(child, deps, state, order);
    }
    state[node] = 2;
    order.push(node);
}

/// Tarjan's algorithm as Ruby's TSort runs it (nodes in list order, children in reference
/// order); returns the components of more than one variable.
fn strongly_connected_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        deps: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.deps[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    // Ruby's TSort yields a component in the order it pushed its nodes.
                    component.reverse();
                    self.out.push(component);
                }
            }
        }
    }
    let n = deps.len();
    let mut t = Tarjan {
        deps,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out
}

/// GitLab: collection.rb `expand_value`.
fn expand_collection_value(
    value: &str,
    known: &[ExpandVariable],
    options: SortExpandOptions,
) -> String {
    COLLECTION_REFERENCE
        .replace_all(value, |caps: &Captures<'_>| {
            let full = &caps[0];
            let Some(name) = reference_name(caps) else {
                return full.to_owned();
            };
            match known.iter().rev().find(|v| v.key == name) {
                Some(v) if v.file && !options.expand_file_refs => full.to_owned(),
                Some(v) if v.raw && !options.expand_raw_refs => full.to_owned(),
                Some(v) => v.value.clone(),
                None if options.keep_undefined => full.to_owned(),
                None => String::new(),
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::{
        ExpandVariable, SortExpandOptions, expand_runner, expand_server, expand_server_existing,
        sort_and_expand_all,
    };

    fn vars() -> Vec<(String, String)> {
        vec![
            ("A".to_owned(), "a".to_owned()),
            ("B".to_owned(), "$A-b".to_owned()),
        ]
    }

    #[test]
    fn runner_expansion_follows_os_expand() {
        let v = vars();
        assert_eq!(expand_runner("$A ${A} $$A $UNKNOWN.", &v), "a a $A .");
        assert_eq!(
            expand_runner("cost: 5$ and $/x $", &v),
            "cost: 5$ and $/x $"
        );
        assert_eq!(expand_runner("${} ${A", &v), " A");
        assert_eq!(
            expand_runner("[${-}] [$1] [%A%] [${A $B}]", &v),
            "[] [] [%A%] []"
        );
        assert_eq!(expand_runner("$B", &v), "$A-b");
    }

    #[test]
    fn server_expansion_knows_percent_and_keeps_or_drops_unknowns() {
        let v = vars();
        assert_eq!(expand_server("$A ${A} %A% $$A $NOPE", &v), "a a a $a ");
        assert_eq!(
            expand_server_existing("$A/$NOPE/${NOPE}/%NOPE%", &v),
            "a/$NOPE/${NOPE}/%NOPE%"
        );
    }

    #[test]
    fn sort_and_expand_follows_chains_in_dependency_order() {
        let vars = vec![
            ExpandVariable::new("C", "$B-c"),
            ExpandVariable::new("B", "$A-b"),
            ExpandVariable::new("A", "a$$%%$UNKNOWN"),
        ];
        let sorted = sort_and_expand_all(&vars, SortExpandOptions::DEFAULT);
        let pairs: Vec<(&str, &str)> = sorted
            .variables
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("A", "a$$%%"), ("B", "a$$%%-b"), ("C", "a$$%%-b-c")]
        );
    }

    #[test]
    fn sort_and_expand_reports_cycles_without_looping() {
        let vars = vec![
            ExpandVariable::new("A", "$B"),
            ExpandVariable::new("B", "${A}"),
            ExpandVariable::new("S", "$S"),
        ];
        let sorted = sort_and_expand_all(&vars, SortExpandOptions::RUNNER);
        assert_eq!(
            sorted.error.as_deref(),
            Some(r#"circular variable reference detected: ["A", "B"]"#)
        );
        let self_ref = sort_and_expand_all(&vars[2..], SortExpandOptions::RUNNER);
        assert_eq!(self_ref.error, None);
        assert_eq!(self_ref.variables[0].value, "$S");
    }

    #[test]
    fn raw_references_are_left_for_the_runner() {
        let mut raw = ExpandVariable::new("R", "raw-$A");
        raw.raw = true;
        let vars = vec![
            ExpandVariable::new("A", "normal"),
            raw,
            ExpandVariable::new("C", "$R"),
        ];
        let sorted = sort_and_expand_all(&vars, SortExpandOptions::RUNNER);
        let c = sorted
            .variables
            .iter()
            .find(|v| v.key == "C")
            .map(|v| v.value.as_str());
        assert_eq!(c, Some("$R"));
    }
}
