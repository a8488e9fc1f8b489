//! `rules:` evaluation: the first rule whose clauses all hold decides the job's `when`,
//! `allow_failure`, variables and needs; no matching rule removes the job (`when: never`).
//!
//! GitLab: lib/gitlab/ci/build/rules.rb, rules/rule.rb and rules/rule/clause/{if,changes,
//! exists}.rb. Used for job `rules:`, `workflow:rules` and `include:rules`.

use std::cell::OnceCell;
use std::path::Path;

use crate::expand::expand_server_existing;
use crate::rules::eval::VarLookup;
use crate::rules::glob::fnmatch;
use crate::rules::parse::Expr;
use crate::when::{AllowFailure, When};
use crate::yaml::Node;

/// GitLab: clause/changes.rb `CHANGES_MAX_PATTERN_COMPARISONS`: past this many path × glob
/// comparisons the clause is assumed true.
pub const CHANGES_MAX_PATTERN_COMPARISONS: usize = 50_000;
/// GitLab: clause/exists.rb `MAX_PATTERN_COMPARISONS`: past this many glob comparisons the
/// clause is assumed true.
pub const EXISTS_MAX_PATTERN_COMPARISONS: usize = 10_000;

/// One entry of `rules:`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `if:`
    pub if_: Option<Expr>,
    /// `changes:`
    pub changes: Option<Changes>,
    /// `exists:`
    pub exists: Option<Exists>,
    /// `when:` (with `start_in` folded into [`When::Delayed`]).
    pub when: Option<When>,
    /// `start_in:` as written (only with `when: delayed`).
    pub start_in: Option<String>,
    /// `allow_failure:` (a boolean in rules).
    pub allow_failure: Option<AllowFailure>,
    /// `variables:` in order.
    pub variables: Vec<(String, String)>,
    /// `needs:` as written, for the job model to convert (jobs only).
    pub needs: Option<Node>,
    /// `interruptible:` (jobs only).
    pub interruptible: Option<bool>,
    /// `auto_cancel:` as written (`workflow:rules` only).
    pub auto_cancel: Option<Node>,
}

/// `rules:changes`: the array form, or `{paths, compare_to}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Globs, variables not yet expanded.
    pub paths: Vec<String>,
    /// `compare_to:` (a ref, variables not yet expanded): changes are then computed against
    /// it instead of the push's before-SHA.
    pub compare_to: Option<String>,
}

/// `rules:exists`: the array form, or `{paths, project, ref}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exists {
    /// Globs relative to the project directory, variables not yet expanded.
    pub paths: Vec<String>,
    /// `project:` another project to look in (not available locally; see [`RuleContext`]).
    pub project: Option<String>,
    /// `ref:` the ref of `project` to look at.
    pub ref_: Option<String>,
}

impl Rule {
    /// A rule with no clauses and no attributes (it always matches).
    pub fn empty() -> Self {
        Rule {
            if_: None,
            changes: None,
            exists: None,
            when: None,
            start_in: None,
            allow_failure: None,
            variables: Vec::new(),
            needs: None,
            interruptible: None,
            auto_cancel: None,
        }
    }
}

/// Computes the files changed since a ref, for `changes:compare_to`. Err: the ref is not valid.
pub type CompareTo<'a> = &'a dyn Fn(&str) -> Result<Vec<String>, String>;

/// What rules are evaluated against.
pub struct RuleContext<'a> {
    /// The variables `rules:if` sees, and that are expanded in `changes` and `exists` paths
    /// (GitLab expands those with the job's variables, themselves expanded).
    pub variables: &'a dyn VarLookup,
    /// Files changed by the push, relative to the project. `None` means unknown (a new branch,
    /// a tag, a schedule, a web or API pipeline): GitLab then treats `changes` as true.
    pub changed_files: Option<&'a [String]>,
    /// The checkout that `exists` looks into. `None`: no files, so `exists` is false.
    pub project_dir: Option<&'a Path>,
    /// For `changes:compare_to`: the changed files relative to the (expanded) ref. `None`:
    /// `changed_files` is used, as if `compare_to` were absent.
    pub compare_to: Option<CompareTo<'a>>,
    /// The project's files, listed once on first use.
    project_files: OnceCell<Vec<String>>,
    /// The project's top-level files, listed once on first use.
    top_level_files: OnceCell<Vec<String>>,
}

impl<'a> RuleContext<'a> {
    pub fn new(variables: &'a dyn VarLookup) -> Self {
        RuleContext {
            variables,
            changed_files: None,
            project_dir: None,
            compare_to: None,
            project_files: OnceCell::new(),
            top_level_files: OnceCell::new(),
        }
    }

    #[must_use]
    pub fn with_changed_files(mut self, files: Option<&'a [String]>) -> Self {
        self.changed_files = files;
        self
    }

    #[must_use]
    pub fn with_project_dir(mut self, dir: Option<&'a Path>) -> Self {
        self.project_dir = dir;
        self
    }

    #[must_use]
    pub fn with_compare_to(mut self, compare_to: CompareTo<'a>) -> Self {
        self.compare_to = Some(compare_to);
        self
    }

    /// Every file under the project directory (not `.git`), relative, `/`-separated, sorted:
    /// GitLab's worktree paths. Only the top level when `top_level_only`.
    fn project_files(&self, top_level_only: bool) -> &[String] {
        let (cell, depth) = if top_level_only {
            (&self.top_level_files, 1)
        } else {
            (&self.project_files, usize::MAX)
        };
        cell.get_or_init(|| match self.project_dir {
            Some(dir) => list_files(dir, depth),
            None => Vec::new(),
        })
    }
}

fn list_files(dir: &Path, max_depth: usize) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .max_depth(max_depth)
        .into_iter()
        .filter_entry(|e| !(e.depth() > 0 && e.file_name() == ".git"))
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| relative_slash_path(dir, e.path()))
        .collect();
    files.sort();
    files
}

/// `path` relative to `root`, its components joined with `/` (the form GitLab matches
/// `rules:changes`, `rules:exists` and `include:local` wildcards against).
pub(crate) fn relative_slash_path(root: &Path, path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// What the rules decided for one job (or pipeline, or include).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// The matched rule's `when`, else the default; [`When::Never`] when no rule matched.
    pub when: When,
    pub allow_failure: Option<AllowFailure>,
    pub variables: Vec<(String, String)>,
    pub needs: Option<Node>,
    pub interruptible: Option<bool>,
    pub auto_cancel: Option<Node>,
    /// The 0-based index of the rule that matched.
    pub matched_rule: Option<usize>,
    /// Evaluation errors (GitLab: `rules:changes:compare_to is not a valid ref`); the outcome
    /// is then `when: never`.
    pub errors: Vec<String>,
}

impl RuleOutcome {
    fn never(errors: Vec<String>) -> Self {
        RuleOutcome {
            when: When::Never,
            allow_failure: None,
            variables: Vec::new(),
            needs: None,
            interruptible: None,
            auto_cancel: None,
            matched_rule: None,
            errors,
        }
    }

    /// Whether the job is added (GitLab: `Result#pass?`, `when != never`).
    pub fn pass(&self) -> bool {
        self.when != When::Never
    }
}

/// Evaluates job `rules:` with the default `when: on_success`. See [`evaluate_rules_with_default`].
pub fn evaluate_rules(rules: &[Rule], ctx: &RuleContext<'_>) -> RuleOutcome {
    evaluate_rules_with_default(rules, ctx, &When::OnSuccess)
}

/// The first rule whose clauses all hold wins; its `when` (or `default_when`: the job's own
/// `when`, or `always` for `workflow:rules`) and attributes are the outcome. No match is
/// `when: never`. GitLab: lib/gitlab/ci/build/rules.rb `evaluate`.
pub fn evaluate_rules_with_default(
    rules: &[Rule],
    ctx: &RuleContext<'_>,
    default_when: &When,
) -> RuleOutcome {
    for (index, rule) in rules.iter().enumerate() {
        match rule_matches(rule, ctx) {
            Ok(false) => continue,
            Ok(true) => {
                return RuleOutcome {
                    when: rule.when.clone().unwrap_or_else(|| default_when.clone()),
                    allow_failure: rule.allow_failure.clone(),
                    variables: rule.variables.clone(),
                    needs: rule.needs.clone(),
                    interruptible: rule.interruptible,
                    auto_cancel: rule.auto_cancel.clone(),
                    matched_rule: Some(index),
                    errors: Vec::new(),
                };
            }
            Err(error) => return RuleOutcome::never(vec![error]),
        }
    }
    RuleOutcome::never(Vec::new())
}

/// GitLab: rules/rule.rb `matches?` — every clause must be satisfied (in the order written:
/// `if`, `changes`, `exists`).
fn rule_matches(rule: &Rule, ctx: &RuleContext<'_>) -> Result<bool, String> {
    if let Some(expr) = &rule.if_
        && !expr.evaluate(ctx.variables)
    {
        return Ok(false);
    }
    if let Some(changes) = &rule.changes
        && !changes_satisfied(changes, ctx)?
    {
        return Ok(false);
    }
    if let Some(exists) = &rule.exists
        && !exists_satisfied(exists, ctx)
    {
        return Ok(false);
    }
    Ok(true)
}

/// Whether `exists:project` (and `ref`) name the checked-out commit of this project, so that
/// the local checkout shows the files GitLab would look at. GitLab: clause/exists.rb
/// (`project` and `ref` expanded with `expand_existing`; without `ref`, the project's default
/// branch).
pub fn exists_project_is_local(exists: &Exists, vars: &dyn VarLookup) -> bool {
    let Some(project) = &exists.project else {
        return true;
    };
    let lookup = |name: &str| vars.lookup(name).filter(|v| !v.is_empty());
    let project = expand_server_existing(project, vars);
    if lookup("CI_PROJECT_PATH") != Some(project.as_str()) {
        return false;
    }
    let current = [
        lookup("CI_COMMIT_REF_NAME"),
        lookup("CI_COMMIT_SHA"),
        lookup("CI_COMMIT_SHORT_SHA"),
    ];
    match &exists.ref_ {
        Some(reference) => {
            let reference = expand_server_existing(reference, vars);
            let reference = reference
                .strip_prefix("refs/heads/")
                .or_else(|| reference.strip_prefix("refs/tags/"))
                .unwrap_or(&reference);
            current.contains(&Some(reference))
        }
        None => lookup("CI_DEFAULT_BRANCH").is_some() && current[0] == lookup("CI_DEFAULT_BRANCH"),
    }
}

/// GitLab: clause/changes.rb `satisfied_by?`.
pub fn changes_satisfied(changes: &Changes, ctx: &RuleContext<'_>) -> Result<bool, String> {
    let compared;
    let modified: Option<&[String]> = match (&changes.compare_to, ctx.compare_to) {
        (Some(reference), Some(diff)) => {
            let reference = expand_server_existing(reference, ctx.variables);
            compared = diff(&reference)
                .map_err(|_| "rules:changes:compare_to is not a valid ref".to_owned())?;
            Some(&compared)
        }
        _ => ctx.changed_files,
    };
    let Some(modified) = modified else {
        return Ok(true);
    };
    if modified.is_empty() {
        return Ok(false);
    }
    let mut globs: Vec<String> = Vec::new();
    for path in &changes.paths {
        let glob = expand_server_existing(path, ctx.variables);
        if !globs.contains(&glob) {
            globs.push(glob);
        }
    }
    if globs.is_empty() {
        return Ok(false);
    }
    if modified.len().saturating_mul(globs.len()) > CHANGES_MAX_PATTERN_COMPARISONS {
        return Ok(true);
    }
    Ok(modified
        .iter()
        .any(|path| globs.iter().any(|glob| fnmatch(glob, path))))
}

/// GitLab: clause/exists.rb `satisfied_by?`. Exact paths are looked up, `**/*.ext` globs
/// compare extensions, other globs use `fnmatch` up to [`EXISTS_MAX_PATTERN_COMPARISONS`].
/// `exists:project` naming this project at the checked-out ref (or, without `ref`, while the
/// default branch is checked out) looks at the local files; another project or ref cannot be
/// looked at locally and is false (the pipeline warns, see [`exists_project_is_local`]).
pub fn exists_satisfied(exists: &Exists, ctx: &RuleContext<'_>) -> bool {
    if exists.project.is_some() && !exists_project_is_local(exists, ctx.variables) {
        return false;
    }
    // GitLab: exists.rb `top_level_glob?` — without `/` or `**`, only the top level is listed.
    let top_level_only = exists
        .paths
        .iter()
        .all(|g| !g.contains('/') && !g.contains("**"));
    let files = ctx.project_files(top_level_only);
    let globs: Vec<String> = exists
        .paths
        .iter()
        .map(|g| expand_server_existing(g, ctx.variables))
        .collect();
    let is_exact = |g: &str| !g.contains(['*', '?', '[', '{']);
    let extension = |g: &str| {
        let rest = g.strip_prefix("**/*").unwrap_or(g);
        (rest.starts_with('.') && !rest.contains('/') && is_exact(rest)).then(|| rest.to_owned())
    };
    let (exact, others): (Vec<&String>, Vec<&String>) = globs.iter().partition(|g| is_exact(g));
    if exact.iter().any(|g| files.binary_search(g).is_ok()) {
        return true;
    }
    let (extensions, patterns): (Vec<&String>, Vec<&String>) =
        others.into_iter().partition(|g| extension(g).is_some());
    let extensions: Vec<String> = extensions
        .into_iter()
        .filter_map(|g| extension(g))
        .collect();
    if !extensions.is_empty()
        && files
            .iter()
            .any(|f| extensions.iter().any(|e| f.ends_with(e.as_str())))
    {
        return true;
    }
    let mut comparisons = 0usize;
    patterns.iter().any(|glob| {
        files.iter().any(|path| {
            comparisons += 1;
            comparisons > EXISTS_MAX_PATTERN_COMPARISONS || fnmatch(glob, path)
        })
    })
}
