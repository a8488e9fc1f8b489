//! The parser of GitLab's CI expression language: tokens → [`Expr`] tree.
//!
//! GitLab parses with a shunting-yard pass into reverse Polish notation and then builds the
//! tree from it (lib/gitlab/ci/pipeline/expression/parser.rb). This parser does the same, so it
//! accepts and rejects exactly what GitLab does, including its oddities: the pass does not check
//! that operands and operators alternate, so `$A $B ==` is read as `$A == $B`.
//!
//! Precedence (lexeme/*.rb, Ruby's own): `==`, `!=`, `=~`, `!~` (10) bind tighter than `&&` (11),
//! which binds tighter than `||` (12); all are left-associative.

use std::fmt;

use crate::rules::lex::{Token, TokenKind, tokenize};
use crate::rules::re2::Pattern;

/// An invalid expression: where (a byte offset into the expression text) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset within the expression text where the problem is.
    pub offset: usize,
    /// What is wrong, lower case (GitLab's wording where it has one).
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        ExprError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for ExprError {
    /// GitLab reports every invalid expression as `invalid expression syntax`
    /// (lib/gitlab/config/entry/validators.rb `ExpressionValidator`); the detail follows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid expression syntax: {}", self.message)
    }
}

impl std::error::Error for ExprError {}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    Matches,
    NotMatches,
    And,
    Or,
}

impl Op {
    /// GitLab's precedence numbers: lower binds tighter.
    fn precedence(self) -> u32 {
        match self {
            Op::Equals | Op::NotEquals | Op::Matches | Op::NotMatches => 10,
            Op::And => 11,
            Op::Or => 12,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "==",
            Op::NotEquals => "!=",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
            Op::And => "&&",
            Op::Or => "||",
        }
    }

    /// GitLab's lexeme name, used in its error messages.
    fn lexeme_name(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Matches => "matches",
            Op::NotMatches => "not_matches",
            Op::And => "and",
            Op::Or => "or",
        }
    }
}

/// A node of the expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `$NAME`
    Variable(String),
    /// `$[[ inputs.NAME ]]`
    Input(String),
    /// `"text"` / `'text'`
    Str(String),
    /// `/regexp/flags`
    Pattern(Pattern),
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// `left op right`
    Binary {
        op: Op,
        left: Box<Node>,
        right: Box<Node>,
    },
}

/// A parsed expression, ready to be evaluated against variables (see [`Expr::evaluate`]).
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    root: Node,
}

impl Expr {
    /// Parses `text` as GitLab would validate it (`Statement#valid?`).
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = tokenize(text)?;
        // GitLab: statement.rb raises when there are no lexemes.
        if tokens.is_empty() {
            return Err(ExprError::new(0, "the expression is empty"));
        }
        let rpn = to_rpn(tokens)?;
        let root = build_tree(rpn)?;
        Ok(Expr {
            text: text.to_owned(),
            root,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tree.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The expression printed back from the tree, every binary operation in parentheses. It
    /// parses to the same tree.
    pub fn to_canonical(&self) -> String {
        self.root.to_string()
    }
}

impl PartialEq for Expr {
    /// Two expressions are equal when their trees are, whatever the spacing.
    fn eq(&self, other: &Expr) -> bool {
        self.root == other.root
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Variable(name) => write!(f, "${name}"),
            Node::Input(name) => write!(f, "$[[ inputs.{name} ]]"),
            Node::Str(s) if s.contains('"') => write!(f, "'{s}'"),
            Node::Str(s) => write!(f, "\"{s}\""),
            Node::Pattern(p) => f.write_str(p.literal()),
            Node::Null => f.write_str("null"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Binary { op, left, right } => write!(f, "({left} {} {right})", op.as_str()),
        }
    }
}

/// A token of the reverse Polish output.
enum RpnItem {
    Value(Node, usize),
    Operator(Op, usize),
    /// An unmatched `(` (GitLab: "Unprocessable token found in parse tree").
    Open(usize),
}

/// What sits on the operator stack.
enum Stacked {
    Operator(Op, usize),
    Open(usize),
}

/// GitLab: parser.rb `tokens_rpn`, the shunting-yard pass.
fn to_rpn(tokens: Vec<Token>) -> Result<Vec<RpnItem>, ExprError> {
    let mut output = Vec::new();
    let mut operators: Vec<Stacked> = Vec::new();
    for token in tokens {
        let value = |node| RpnItem::Value(node, token.start);
        let op = match token.kind {
            TokenKind::Variable(name) => {
                output.push(value(Node::Variable(name)));
                continue;
            }
            TokenKind::Input(name) => {
                output.push(value(Node::Input(name)));
                continue;
            }
            TokenKind::Str(s) => {
                output.push(value(Node::Str(s)));
                continue;
            }
            TokenKind::Pattern(p) => {
                output.push(value(Node::Pattern(p)));
                continue;
            }
            TokenKind::Null => {
                output.push(value(Node::Null));
                continue;
            }
            TokenKind::Bool(b) => {
                output.push(value(Node::Bool(b)));
                continue;
            }
            TokenKind::Equals => Op::Equals,
            TokenKind::NotEquals => Op::NotEquals,
            TokenKind::Matches => Op::Matches,
            TokenKind::NotMatches => Op::NotMatches,
            TokenKind::And => Op::And,
            TokenKind::Or => Op::Or,
            TokenKind::ParenOpen => {
                operators.push(Stacked::Open(token.start));
                continue;
            }
            TokenKind::ParenClose => {
                // Pop every operator down to the `(` (GitLab: `)` has precedence 900, `(` 901).
                while let Some(Stacked::Operator(op, at)) = operators.last() {
                    output.push(RpnItem::Operator(*op, *at));
                    operators.pop();
                }
                if operators.pop().is_none() {
                    return Err(ExprError::new(token.start, "unmatched parenthesis"));
                }
                continue;
            }
        };
        // GitLab: `consume?` pops while the stacked operator binds at least as tightly.
        while let Some(Stacked::Operator(top, at)) = operators.last() {
            if op.precedence() < top.precedence() {
                break;
            }
            output.push(RpnItem::Operator(*top, *at));
            operators.pop();
        }
        operators.push(Stacked::Operator(op, token.start));
    }
    output.extend(operators.into_iter().rev().map(|s| match s {
        Stacked::Operator(op, at) => RpnItem::Operator(op, at),
        Stacked::Open(at) => RpnItem::Open(at),
    }));
    Ok(output)
}

/// GitLab: parser.rb `tree`, folding the reverse Polish output.
fn build_tree(rpn: Vec<RpnItem>) -> Result<Node, ExprError> {
    // Each result with the offset of its first token, to point at leftovers.
    let mut results: Vec<(Node, usize)> = Vec::new();
    for item in rpn {
        match item {
            RpnItem::Value(node, at) => results.push((node, at)),
            RpnItem::Operator(op, at) => {
                // GitLab: logical_operator.rb checks the left operand first, and the left is
                // the one missing whenever fewer than two values are there.
                let (Some((right, _)), Some((left, left_at))) = (results.pop(), results.pop())
                else {
                    let name = op.lexeme_name();
                    return Err(ExprError::new(
                        at,
                        format!("invalid left operand of `{name}`"),
                    ));
                };
                let node = Node::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                };
                results.push((node, left_at.min(at)));
            }
            RpnItem::Open(at) => {
                return Err(ExprError::new(at, "unmatched parenthesis"));
            }
        }
    }
    let mut results = results.into_iter();
    match (results.next(), results.next()) {
        (Some((root, _)), None) => Ok(root),
        (None, _) => Err(ExprError::new(0, "empty parse tree")),
        (Some(_), Some((_, at))) => Err(ExprError::new(
            at,
            "unreachable nodes in parse tree (a value without an operator)",
        )),
    }
}
