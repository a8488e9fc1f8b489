//! The errors of coordinator calls.

use super::transport::Endpoint;

/// A coordinator call that failed. A job that failed is not one of these.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The runner `url` is not an http(s) URL.
    #[error("`{url}` is not a GitLab URL (expected http:// or https://)")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// The request did not get an answer.
    #[error("failed to reach the coordinator ({})", endpoint.label())]
    Network {
        /// The call.
        endpoint: Endpoint,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// 403: the token is not valid (any more).
    #[error("the coordinator rejected the token ({}): 403 Forbidden", endpoint.label())]
    Forbidden {
        /// The call.
        endpoint: Endpoint,
    },
    /// 410 on register: the instance no longer accepts registration tokens.
    #[error(
        "runner registration tokens are disabled on this GitLab instance (410 Gone); create the runner in GitLab and register with its `glrt-` authentication token"
    )]
    RegistrationDisallowed,
    /// 422 on verify or job request: the runner's project or group is gone.
    #[error("the runner is orphaned: its project or group no longer exists (422)")]
    Orphaned,
    /// Another unexpected status.
    #[error("unexpected answer from the coordinator ({}): {status} {message}", endpoint.label())]
    Status {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// GitLab's message, or the start of the body.
        message: String,
    },
    /// A 2xx answer that is not JSON.
    #[error("the coordinator answered without JSON ({})", endpoint.label())]
    NotJson {
        /// The call.
        endpoint: Endpoint,
    },
    /// A JSON answer of the wrong shape.
    #[error("failed to read the coordinator's answer ({})", endpoint.label())]
    BadJson {
        /// The call.
        endpoint: Endpoint,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A local file for an upload or download failed.
    #[error("failed to access artifacts file `{path}`")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
