//! runnel-pipeline: `.gitlab-ci.yml` → Document → Config → Pipeline → plan() → JobPayload.
//!
//! Synchronous. It reads included files (and asks a [`include::Fetcher`] for remote ones) but does
//! no other I/O, and knows nothing of HTTP or processes.

pub mod context;
pub mod dag;
pub mod definition;
pub mod diag;
pub mod exclusion;
pub mod expand;
pub mod extends;
pub mod include;
mod input_rules;
pub mod inputs;
pub mod job;
pub mod keywords;
pub mod matrix;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod resolve;
pub mod rules;
pub mod schedule;
pub mod seed;
pub mod source;
pub mod variables;
pub mod when;
pub mod workflow;
pub mod yaml;
