//! Planning: one job of a [`crate::pipeline::Pipeline`] plus a [`RunContext`] → the
//! [`runnel_api::JobPayload`] GitLab would send a runner for it.
//!
//! Pure: the caller gathers the commit, the project and the results of finished jobs into the
//! [`RunContext`]; planning reads nothing else.

mod context;
mod predefined;

pub use context::{GitMeta, ProjectMeta, RunContext, UserMeta};
pub use predefined::{
    commit_description, commit_title, environment_slug, pipeline_variables, slugify,
};
