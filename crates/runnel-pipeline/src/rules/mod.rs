//! `rules:` and the `rules:if` expression language (also `only`/`except`).
//!
//! The language is GitLab's (lib/gitlab/ci/pipeline/expression/): [`lex`] scans, [`parse`]
//! builds an [`Expr`], [`eval`] evaluates it against a [`VarLookup`]; [`re2`] compiles its
//! regexps as GitLab's RE2 does.

pub mod eval;
pub mod lex;
pub mod parse;
pub mod re2;

pub use eval::{Value, VarLookup};
pub use parse::{Expr, ExprError, Node, Op};
pub use re2::Pattern;
