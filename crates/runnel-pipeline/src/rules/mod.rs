//! `rules:` and the `rules:if` expression language (also `only`/`except`).
//!
//! The language is GitLab's (lib/gitlab/ci/pipeline/expression/): [`lex`] scans, [`parse`]
//! builds an [`Expr`], [`eval`] evaluates it against a [`VarLookup`]; [`re2`] compiles its
//! regexps as GitLab's RE2 does.

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
