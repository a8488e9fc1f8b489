//! `rules:` and the `rules:if` expression language (also `only`/`except`).

pub mod eval;
pub mod lex;
pub mod parse;
