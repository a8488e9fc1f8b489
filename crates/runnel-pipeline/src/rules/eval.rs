//! Evaluating an [`Expr`] against variables, with GitLab's Ruby semantics.
//!
//! GitLab: lib/gitlab/ci/pipeline/expression/statement.rb and lexeme/*.rb. Values are Ruby
//! values: `nil`, strings, booleans (from comparisons) and regexps (from pattern literals).
//! `&&` and `||` return one of their operands as Ruby does, where only `nil` and `false` are
//! false, so `"" && "x"` is `"x"`. The whole expression is true when its value is `present?`:
//! not `nil`, not `false`, and not a string that is empty or only whitespace.

use std::collections::{BTreeMap, HashMap};

use crate::rules::parse::{Expr, Node, Op};
use crate::rules::re2::Pattern;

/// Looks variables up by name; `None` is an undefined variable (GitLab: `nil`).
pub trait VarLookup {
    fn lookup(&self, name: &str) -> Option<&str>;

    /// A `spec:inputs` value for `$[[ inputs.name ]]` left in an expression. GitLab interpolates
    /// inputs before expressions are evaluated, so by default there are none.
    fn lookup_input(&self, name: &str) -> Option<&str> {
        let _ = name;
        None
    }
}

impl VarLookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl VarLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// In a list, the last definition of a name wins (as in GitLab's variables collection).
impl VarLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl VarLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: VarLookup + ?Sized> VarLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }

    fn lookup_input(&self, name: &str) -> Option<&str> {
        (**self).lookup_input(name)
    }
}

/// The value of an expression, as GitLab's `Statement#evaluate` returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Ruby `nil`: an undefined variable or `null`.
    Null,
    Str(&'a str),
    Bool(bool),
    Regex(&'a Pattern),
}

impl Value<'_> {
    /// Ruby truthiness: only `nil` and `false` are false.
    fn is_truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// ActiveSupport `present?`: not `nil`, not `false`, not blank (whitespace-only) text.
    pub fn is_present(&self) -> bool {
        match self {
            Value::Null | Value::Bool(false) => false,
            Value::Str(s) => !s.chars().all(char::is_whitespace),
            Value::Bool(true) | Value::Regex(_) => true,
        }
    }

    /// Ruby `to_s`, used for the left side of `=~`.
    fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Str(s) => (*s).to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Regex(p) => p.literal().to_owned(),
        }
    }

    /// Ruby `==`.
    fn ruby_eq(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Regex(a), Value::Regex(b)) => a == b,
            _ => false,
        }
    }
}

impl Expr {
    /// Whether the expression is true for these variables (GitLab: `Statement#truthful?`).
    /// This is what `rules:if`, `only:variables` and `except:variables` use.
    pub fn evaluate(&self, vars: &dyn VarLookup) -> bool {
        self.value(vars).is_present()
    }

    /// The expression's value (GitLab: `Statement#evaluate`).
    pub fn value<'a>(&'a self, vars: &'a dyn VarLookup) -> Value<'a> {
        eval_node(self.root(), vars)
    }
}

fn eval_node<'a>(node: &'a Node, vars: &'a dyn VarLookup) -> Value<'a> {
    match node {
        // GitLab: lexeme/variable.rb — an undefined variable is nil.
        Node::Variable(name) => vars.lookup(name).map_or(Value::Null, Value::Str),
        Node::Input(name) => vars.lookup_input(name).map_or(Value::Null, Value::Str),
        Node::Str(s) => Value::Str(s),
        Node::Pattern(p) => Value::Regex(p),
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Binary { op, left, right } => match op {
            Op::And => {
                let left = eval_node(left, vars);
                if left.is_truthy() {
                    eval_node(right, vars)
                } else {
                    left
                }
            }
            Op::Or => {
                let left = eval_node(left, vars);
                if left.is_truthy() {
                    left
                } else {
                    eval_node(right, vars)
                }
            }
            Op::Equals => Value::Bool(eval_node(left, vars).ruby_eq(&eval_node(right, vars))),
            Op::NotEquals => Value::Bool(!eval_node(left, vars).ruby_eq(&eval_node(right, vars))),
            Op::Matches => {
                let text = eval_node(left, vars).to_text();
                match eval_node(right, vars) {
                    // GitLab: matches.rb `return false unless regexp`.
                    Value::Null | Value::Bool(false) => Value::Bool(false),
                    right => Value::Bool(matches(&text, &right)),
                }
            }
            Op::NotMatches => {
                let text = eval_node(left, vars).to_text();
                match eval_node(right, vars) {
                    // GitLab: not_matches.rb `return true unless regexp`.
                    Value::Null | Value::Bool(false) => Value::Bool(true),
                    right => Value::Bool(!matches(&text, &right)),
                }
            }
        },
    }
}

/// GitLab: matches.rb with `Lexeme::Pattern.build_and_evaluate`: a right side that is a string
/// (a variable or a quoted string) is turned into a regexp when it reads as `/regexp/flags`;
/// otherwise Ruby's `String#scan` runs on it, which finds the left text as a substring of it.
fn matches(text: &str, right: &Value<'_>) -> bool {
    match right {
        Value::Regex(pattern) => pattern.is_match(text),
        Value::Str(data) => match Pattern::new(data) {
            Ok(pattern) => pattern.is_match(text),
            Err(_) => data.contains(text),
        },
        // `=~ true` raises in GitLab (NoMethodError); here it reads as the text `true`.
        Value::Bool(b) => b.to_string().contains(text),
        Value::Null => false,
    }
}
