//! Test support: a fake GitLab coordinator and an in-process daemon (behind the
//! `test-support` feature).

mod daemon;
mod fake_gitlab;
mod git_http;
mod proxy;
mod repo;
mod s3;
mod terminal;

pub use daemon::{TestDaemon, one_runner_config};
pub use fake_gitlab::{FakeGitLab, FakeJob, FakeJobState, GitRequest, GitSource, JobSpec};
pub use repo::{commit_readme, git, new_repository};
pub use s3::{
    AUTH_ACCESS_KEY, AUTH_BUCKET, S3Server, SIGV4_ACCESS_KEY, SIGV4_BUCKET, SIGV4_SECRET_KEY,
    s3_auth_server, s3_server, s3_sigv4_server,
};
pub use terminal::{
    TerminalSocket, assert_kept_until_session_timeout, connect_terminal, connect_terminal_with,
    hang_up, read_to_close, read_until, refused_with, session_of, session_token, type_into,
};
