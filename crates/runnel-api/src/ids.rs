//! Identifier and secret newtypes. A token's `Debug` and `Display` never print it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A CI job id (`id` in the payload, `CI_JOB_ID`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! secret_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a token value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value, for the places that must send it (headers, URLs, masking).
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[MASKED]")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[MASKED]")
            }
        }
    };
}

secret_newtype!(
    /// A job token (`glcbt-…`, `CI_JOB_TOKEN`): authenticates job-scoped API calls.
    JobToken
);
secret_newtype!(
    /// A runner authentication token (`glrt-…`) or a legacy registration token.
    RunnerToken
);

#[cfg(test)]
mod tests {
    use super::{JobToken, RunnerToken};

    #[test]
    fn tokens_do_not_print_their_value() {
        let job = JobToken::new("glcbt-secret-value");
        let runner = RunnerToken::new("glrt-secret-value");
        assert_eq!(
            format!("{job:?} {job} {runner:?} {runner}"),
            "[MASKED] [MASKED] [MASKED] [MASKED]"
        );
        assert_eq!(job.expose(), "glcbt-secret-value");
    }
}
