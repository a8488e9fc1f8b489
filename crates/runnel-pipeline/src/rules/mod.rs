//! `rules:` and the `rules:if` expression language (also `only`/`except`).
//!
//! The language is GitLab's (lib/gitlab/ci/pipeline/expression/): [`lex`] scans, [`parse`]
//! builds an [`Expr`] the way GitLab's shunting-yard parser does, [`eval`] evaluates it against
//! a [`VarLookup`] with Ruby's semantics; [`re2`] compiles its regexps as GitLab's RE2 does.
//! [`rule`] evaluates `rules:` (with [`glob`], Ruby's `File.fnmatch?`), [`node`] converts the
//! YAML, and [`only`] handles the legacy `only`/`except`.
//!
//! Where runnel cannot do exactly what GitLab does:
//! - `exists:project` looks at the local checkout when it names this project at the
//!   checked-out ref; another project or ref is false, with a warning. `only:kubernetes` is
//!   taken as not active, with a warning. `changes:compare_to` needs the
//!   caller's [`RuleContext::compare_to`], else the push's changed files are used.
//! - `only:refs` regexps that RE2 rejects fall back to Ruby's regexp engine in GitLab; here
//!   such a pattern is compared as a plain ref name.
//! - `$X =~ true` raises in GitLab; here `true` is searched as the text `true`.

pub mod eval;
pub mod glob;
pub mod lex;
pub mod node;
pub mod only;
pub mod parse;
pub mod re2;
pub mod rule;

pub use eval::{Value, VarLookup};
pub use node::{RulesKind, rules_from_node, rules_from_node_in};
pub use only::{OnlyExcept, RefContext, evaluate_only_except, only_except_from_node};
pub use parse::{Expr, ExprError, Node, Op};
pub use re2::Pattern;
pub use rule::{
    Changes, Exists, Rule, RuleContext, RuleOutcome, evaluate_rules, evaluate_rules_with_default,
};
