//! Why a job of the configuration is not in a pipeline: `workflow:rules` filtered out the whole
//! pipeline, a rule of the job decided `when: never` (or none matched), or `only`/`except` left
//! it out. `runnel exec` says so when such a job is named, and can run it anyway.
//!
//! GitLab: lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb (the pipeline),
//! lib/gitlab/ci/build/rules.rb (first match wins, no match excludes),
//! lib/gitlab/ci/pipeline/seed/build.rb (`included?`: rules, else only/except).

use std::fmt;

use crate::source::Span;

/// What left a job out of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// `workflow:rules` filtered out the pipeline: the rule (0-based) that matched with
    /// `when: never`, or `None` when no rule matched.
    Workflow {
        /// The decisive rule.
        rule: Option<usize>,
        /// Its `if:`, as written.
        condition: Option<String>,
    },
    /// The job's `rules`: the rule (0-based) that matched with `when: never`, or `None` when
    /// no rule matched.
    Rules {
        /// The decisive rule.
        rule: Option<usize>,
        /// Its `if:`, as written.
        condition: Option<String>,
    },
    /// Its `only:` (or the default `only: [branches, tags]`) does not hold for `pipeline`.
    Only {
        /// The pipeline: `branch `main`, source `push``.
        pipeline: String,
    },
    /// Its `except:` holds for `pipeline`.
    Except {
        /// The pipeline: `branch `main`, source `push``.
        pipeline: String,
    },
}

/// ` (`if: …`)` for a rule with `if:`.
fn condition_text(condition: Option<&String>) -> String {
    condition.map_or(String::new(), |c| format!(" (`if: {c}`)"))
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::Workflow {
                rule: Some(rule),
                condition,
            } => write!(
                f,
                "`workflow:rules` filtered out the pipeline: rule {}{} matched with `when: never`",
                rule + 1,
                condition_text(condition.as_ref())
            ),
            Exclusion::Workflow { rule: None, .. } => write!(
                f,
                "`workflow:rules` filtered out the pipeline: none of its rules matched"
            ),
            Exclusion::Rules {
                rule: Some(rule),
                condition,
            } => write!(
                f,
                "rule {} of its `rules`{} matched with `when: never`",
                rule + 1,
                condition_text(condition.as_ref())
            ),
            Exclusion::Rules { rule: None, .. } => write!(f, "none of its `rules` matched"),
            Exclusion::Only { pipeline } => {
                write!(f, "its `only:` does not match this pipeline ({pipeline})")
            }
            Exclusion::Except { pipeline } => {
                write!(f, "its `except:` matches this pipeline ({pipeline})")
            }
        }
    }
}

/// A job (or parallel instance) of the configuration that is not in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedJob {
    /// Its name (a parallel instance's full name).
    pub name: String,
    /// The job's name as written (a parallel instance's group).
    pub base_name: String,
    /// Where the job is defined.
    pub span: Span,
    /// Why it is not in the pipeline.
    pub reason: Exclusion,
}
