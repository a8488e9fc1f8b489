//! Test support: a fake GitLab coordinator (behind the `test-support` feature).

mod fake_gitlab;
mod git_http;
mod proxy;

pub use fake_gitlab::{FakeGitLab, FakeJob, FakeJobState, GitRequest, GitSource, JobSpec};
