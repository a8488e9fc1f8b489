//! The legacy `only:`/`except:` keywords: which pipelines a job is in, by ref, pipeline
//! source, variables expression, changed files and Kubernetes.
//!
//! GitLab: lib/gitlab/ci/config/entry/policy.rb (the forms and the default),
//! lib/gitlab/ci/build/policy/{refs,variables,changes,kubernetes}.rb and
//! lib/gitlab/ci/pipeline/seed/build.rb (`all_of_only? && none_of_except?`).

use crate::diag::{Diagnostic, Diagnostics};
use crate::rules::eval::VarLookup;
use crate::rules::glob::fnmatch;
use crate::rules::parse::Expr;
use crate::rules::re2::Pattern;
use crate::yaml::{Node, Value};

/// `only:` or `except:` in its mapping form (the array form is `refs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlyExcept {
    /// Branch and tag names, `/regexps/`, and the keywords `branches`, `tags`, and pipeline
    /// sources (`merge_requests`, `schedules`, `pushes`, `web`, `api`, `triggers`,
    /// `pipelines`, `external`, `chats`, `external_pull_requests`, ...); `x@group/project`
    /// limits one to a project.
    pub refs: Option<Vec<String>>,
    /// Expressions; any true one satisfies the policy.
    pub variables: Option<Vec<String>>,
    /// Globs; any changed file matching one satisfies the policy.
    pub changes: Option<Vec<String>>,
    /// `kubernetes: active`.
    pub kubernetes: Option<String>,
}

/// GitLab: policy.rb `default` — `only: [branches, tags]` when `only` is not given.
fn default_refs() -> Vec<String> {
    vec!["branches".to_owned(), "tags".to_owned()]
}

/// The pipeline that `only`/`except` are checked against.
pub struct RefContext<'a> {
    /// `CI_COMMIT_REF_NAME`: the branch or tag name (for merge request pipelines, the source
    /// branch; ref patterns are not matched then).
    pub ref_name: &'a str,
    /// Whether the ref is a tag.
    pub tag: bool,
    /// `CI_PIPELINE_SOURCE`: `push`, `web`, `schedule`, `merge_request_event`, `api`,
    /// `trigger`, `pipeline`, `parent_pipeline`, `external`, `chat`,
    /// `external_pull_request_event`, ...
    pub source: &'a str,
    /// `CI_PROJECT_PATH`, for `ref@group/project`; `None` matches no such pattern.
    pub project_path: Option<&'a str>,
    /// The job's variables, for `variables:` expressions.
    pub variables: &'a dyn VarLookup,
    /// Files changed by the push; `None` (unknown) satisfies `changes:`.
    pub changed_files: Option<&'a [String]>,
    /// Whether the project has an active Kubernetes integration.
    pub kubernetes_active: bool,
    /// Whether `workflow:rules` exist: GitLab then drops the default `only` for jobs that
    /// set neither `only` nor `except` (entry/processable.rb `compose!`).
    pub has_workflow_rules: bool,
}

impl RefContext<'_> {
    fn merge_request(&self) -> bool {
        self.source == "merge_request_event"
    }

    /// GitLab: `Ci::Pipeline#branch?` — neither a tag nor a merge request pipeline.
    fn branch(&self) -> bool {
        !self.tag && !self.merge_request()
    }
}

/// Whether a job with these `only`/`except` is in the pipeline: every key of `only` holds
/// and no key of `except` does. `only` defaults to `refs: [branches, tags]`, also merged into
/// an `only` that has no `refs` (but not when `only` is absent and `workflow:rules` exist).
pub fn evaluate_only_except(
    only: Option<&OnlyExcept>,
    except: Option<&OnlyExcept>,
    ctx: &RefContext<'_>,
) -> bool {
    let only = match only {
        Some(only) => Some(OnlyExcept {
            refs: Some(only.refs.clone().unwrap_or_else(default_refs)),
            ..only.clone()
        }),
        None if ctx.has_workflow_rules => None,
        None => Some(OnlyExcept {
            refs: Some(default_refs()),
            ..OnlyExcept::default()
        }),
    };
    let all_of_only = only
        .as_ref()
        .is_none_or(|p| clauses(p, ctx).iter().all(|held| *held));
    let none_of_except = except.is_none_or(|p| !clauses(p, ctx).iter().any(|held| *held));
    all_of_only && none_of_except
}

/// Each present key of a policy, whether it holds.
fn clauses(policy: &OnlyExcept, ctx: &RefContext<'_>) -> Vec<bool> {
    let mut held = Vec::new();
    if let Some(refs) = &policy.refs {
        held.push(refs.iter().any(|r| ref_matches(r, ctx)));
    }
    if let Some(expressions) = &policy.variables {
        // GitLab: policy/variables.rb — any truthful statement; an invalid one is false.
        held.push(
            expressions
                .iter()
                .any(|e| Expr::parse(e).is_ok_and(|e| e.evaluate(ctx.variables))),
        );
    }
    if let Some(globs) = &policy.changes {
        // GitLab: policy/changes.rb — unknown changes satisfy it; no variable expansion.
        held.push(match ctx.changed_files {
            None => true,
            Some(files) => files.iter().any(|f| globs.iter().any(|g| fnmatch(g, f))),
        });
    }
    if policy.kubernetes.is_some() {
        held.push(ctx.kubernetes_active);
    }
    held
}

/// GitLab: policy/refs.rb `satisfied_by?` for one pattern.
fn ref_matches(entry: &str, ctx: &RefContext<'_>) -> bool {
    let (pattern, path) = match entry.split_once('@') {
        Some((pattern, path)) => (pattern, Some(path)),
        None => (entry, None),
    };
    if let Some(path) = path
        && ctx.project_path != Some(path)
    {
        return false;
    }
    let source = ctx.source.strip_suffix("_event").unwrap_or(ctx.source);
    if (ctx.tag && pattern == "tags") || (ctx.branch() && pattern == "branches") {
        return true;
    }
    if source == pattern || pluralize(source) == pattern {
        return true;
    }
    // Ref names and regexps only apply to branch and tag pipelines.
    if ctx.branch() || ctx.tag {
        let matched = match Pattern::new(pattern) {
            Ok(regex) => regex.is_match(ctx.ref_name),
            Err(_) => pattern == ctx.ref_name,
        };
        if matched {
            return true;
        }
    }
    // GitLab reuses `merge_requests` for external pull requests.
    source == "external_merge_request" && pattern == "merge_requests"
}

/// ActiveSupport's `pluralize`, for pipeline source names.
fn pluralize(word: &str) -> String {
    if word.ends_with("sh") || word.ends_with("ch") || word.ends_with("ss") || word.ends_with('x') {
        format!("{word}es")
    } else if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    }
}

/// Converts an `only:`/`except:` node (`key` is `only` or `except`) written in `place`.
/// GitLab: entry/policy.rb — an array of refs, or a mapping of `refs`, `variables`, `changes`,
/// `kubernetes`; expressions and regexps are validated.
pub fn only_except_from_node(
    node: &Node,
    key: &str,
    place: &str,
    diags: &mut Diagnostics,
) -> Option<OnlyExcept> {
    let error = |diags: &mut Diagnostics, node: &Node, message: String| {
        diags.push(
            Diagnostic::error(node.span, format!("`{key}` in {place}: {message}"))
                .with_code("invalid-value"),
        );
    };
    match &node.value {
        Value::Seq(_) => Some(OnlyExcept {
            refs: Some(refs(node, key, place, diags)?),
            ..OnlyExcept::default()
        }),
        Value::Map(entries) if entries.is_empty() => {
            error(diags, node, "can't be blank".to_owned());
            None
        }
        Value::Map(entries) => {
            let mut policy = OnlyExcept::default();
            let mut ok = true;
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "refs" => policy.refs = refs(v, &sub, place, diags),
                    "variables" => policy.variables = expressions(v, &sub, place, diags),
                    "changes" => policy.changes = strings(v, &sub, place, diags),
                    "kubernetes" if v.as_str() == Some("active") => {
                        // GitLab: policy/kubernetes.rb asks the project for an active deployment
                        // platform, which a local run does not have.
                        diags.push(
                            Diagnostic::warning(
                                k.span,
                                format!("`{key}:kubernetes` in {place}: runnel cannot know whether the project has an active Kubernetes integration, and takes it as not active"),
                            )
                            .with_code("kubernetes-unknown"),
                        );
                        policy.kubernetes = Some("active".to_owned())
                    }
                    "kubernetes" => {
                        error(diags, v, "`kubernetes` can only be `active`".to_owned());
                        ok = false;
                    }
                    other => {
                        let keys = ["refs", "variables", "changes", "kubernetes"];
                        let d = Diagnostic::error(
                            k.span,
                            format!("`{key}` in {place}: unknown key `{other}`"),
                        )
                        .with_code("unknown-key")
                        .with_suggestion(other, keys);
                        diags.push(d);
                        ok = false;
                    }
                }
            }
            let complete = (entries.iter().any(|(k, _)| k.as_str() == "refs")
                == policy.refs.is_some())
                && (entries.iter().any(|(k, _)| k.as_str() == "variables")
                    == policy.variables.is_some())
                && (entries.iter().any(|(k, _)| k.as_str() == "changes")
                    == policy.changes.is_some());
            (ok && complete).then_some(policy)
        }
        _ => {
            error(
                diags,
                node,
                "has to be either an array of conditions or a hash".to_owned(),
            );
            None
        }
    }
}

fn strings(node: &Node, key: &str, place: &str, diags: &mut Diagnostics) -> Option<Vec<String>> {
    let items: Option<Vec<String>> = node.as_seq().and_then(|items| {
        items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect()
    });
    if items.is_none() {
        diags.push(
            Diagnostic::error(
                node.span,
                format!("`{key}` in {place}: should be an array of strings"),
            )
            .with_code("invalid-value"),
        );
    }
    items
}

/// GitLab: validators.rb `ArrayOfStringsOrRegexpsValidator`.
fn refs(node: &Node, key: &str, place: &str, diags: &mut Diagnostics) -> Option<Vec<String>> {
    let items = strings(node, key, place, diags)?;
    let regexp_syntax =
        |s: &str| s.len() >= 2 && s.starts_with('/') && s.rfind('/').is_some_and(|i| i > 0);
    if items.iter().any(|r| {
        regexp_syntax(r.split('@').next().unwrap_or(r))
            && Pattern::new(r.split('@').next().unwrap_or(r)).is_err()
    }) {
        let message = format!(
            "`{key}` in {place}: should be an array of strings or regular expressions using re2 syntax"
        );
        diags.push(Diagnostic::error(node.span, message).with_code("invalid-value"));
        return None;
    }
    Some(items)
}

/// GitLab: policy.rb `variables_expressions_syntax`.
fn expressions(
    node: &Node,
    key: &str,
    place: &str,
    diags: &mut Diagnostics,
) -> Option<Vec<String>> {
    let items = strings(node, key, place, diags)?;
    let mut ok = true;
    for (text, item) in items.iter().zip(node.as_seq().unwrap_or_default()) {
        if let Err(e) = Expr::parse(text) {
            diags.push(
                Diagnostic::error(item.span, format!("`{key}` in {place}: {e}"))
                    .with_code("invalid-expression"),
            );
            ok = false;
        }
    }
    ok.then_some(items)
}
