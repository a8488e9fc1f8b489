//! The coordinator connection of one `[[runners]]` entry and the runner-scoped calls:
//! register, verify, unregister, reset token (gitlab-runner `network/gitlab.go`; GitLab
//! `lib/api/ci/runner.rb`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use runnel_api::{
    RegisterRunnerRequest, RunnerCredentialsResponse, RunnerToken, UnregisterRequest,
    VerifyRunnerRequest, VersionInfo,
};

use super::ClientError;
use super::transport::{self, Endpoint, RequestLabels};
use crate::config::short_token;
use crate::metrics::Metrics;

/// A connection to the coordinator for one runner token. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) http: reqwest::Client,
    api: reqwest::Url,
    pub(crate) token: RunnerToken,
    pub(crate) system_id: String,
    pub(crate) labels: RequestLabels,
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// The last `X-GitLab-Last-Update` seen, re-sent as `last_update` in job requests.
    pub(crate) last_update: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

/// Builds the shared HTTP client: rustls, gitlab-runner's timeouts, no automatic redirects
/// (artifact uploads follow 307 themselves, with a fresh body).
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60 * 60))
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ClientError::Build)
}

/// The API base for a runner `url`: trailing `/` and a legacy `/ci` suffix stripped, then
/// `/api/v4/` (gitlab-runner `network/client.go`).
pub fn api_base(url: &str) -> Result<reqwest::Url, ClientError> {
    let invalid = || ClientError::InvalidUrl {
        url: url.to_owned(),
    };
    let mut root = url.trim().trim_end_matches('/');
    if let Some(stripped) = root.strip_suffix("/ci") {
        root = stripped;
    }
    let parsed = reqwest::Url::parse(&format!("{root}/api/v4/")).map_err(|_| invalid())?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(parsed),
        _ => Err(invalid()),
    }
}

impl Coordinator {
    /// A connection to the GitLab at `url` for `token`.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        token: RunnerToken,
        system_id: String,
    ) -> Result<Self, ClientError> {
        let labels = RequestLabels {
            runner: short_token(token.expose()),
            system_id: if system_id.is_empty() {
                "unknown".into()
            } else {
                system_id.clone()
            },
        };
        Ok(Self {
            http,
            api: api_base(url)?,
            token,
            system_id,
            labels,
            metrics: None,
            last_update: Arc::new(Mutex::new(None)),
        })
    }

    /// Records API request statuses in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The runner token.
    pub fn token(&self) -> &RunnerToken {
        &self.token
    }

    pub(crate) fn url(&self, path: &str) -> reqwest::Url {
        self.api
            .join(path)
            .expect("API paths are relative and valid")
    }

    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        build: impl FnMut() -> reqwest::RequestBuilder,
    ) -> Result<Response, ClientError> {
        transport::send(endpoint, &self.labels, self.metrics.as_deref(), build).await
    }

    /// `POST /api/v4/runners` with a legacy registration token. 201 gives the new runner's id
    /// and token; 403 is a bad token; 410 means registration tokens are disabled.
    pub async fn register(
        &self,
        request: &RegisterRunnerRequest,
    ) -> Result<RunnerCredentialsResponse, ClientError> {
        let url = self.url("runners");
        let response = self
            .send(Endpoint::RegisterRunner, || {
                self.http
                    .post(url.clone())
                    .header("Accept", "application/json")
                    .json(request)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => json(Endpoint::RegisterRunner, response).await,
            StatusCode::FORBIDDEN => Err(ClientError::Forbidden {
                endpoint: Endpoint::RegisterRunner,
            }),
            StatusCode::GONE => Err(ClientError::RegistrationDisallowed),
            _ => Err(status_error(Endpoint::RegisterRunner, response).await),
        }
    }

    /// `POST /api/v4/runners/verify`. Old servers answer 200 with a text body, which gives no
    /// id or token: the token that was sent is kept then.
    pub async fn verify(
        &self,
        info: Option<VersionInfo>,
    ) -> Result<RunnerCredentialsResponse, ClientError> {
        let url = self.url("runners/verify");
        let body = VerifyRunnerRequest {
            token: self.token.clone(),
            system_id: Some(self.system_id.clone()).filter(|id| !id.is_empty()),
            info,
        };
        let response = self
            .send(Endpoint::VerifyRunner, || {
                self.http
                    .post(url.clone())
                    .header("Accept", "application/json")
                    .header("RUNNER-TOKEN", self.token.expose())
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::OK => {
                let fallback = RunnerCredentialsResponse {
                    id: None,
                    token: self.token.clone(),
                    token_expires_at: None,
                };
                let bytes = response.bytes().await.unwrap_or_default();
                Ok(serde_json::from_slice(&bytes).unwrap_or(fallback))
            }
            StatusCode::FORBIDDEN => Err(ClientError::Forbidden {
                endpoint: Endpoint::VerifyRunner,
            }),
            StatusCode::UNPROCESSABLE_ENTITY => Err(ClientError::Orphaned),
            _ => Err(status_error(Endpoint::VerifyRunner, response).await),
        }
    }

    /// Unregisters: `DELETE /api/v4/runners` for legacy tokens, `DELETE /api/v4/runners/managers`
    /// (this machine's manager only) for `glrt-` tokens. 204 is success.
    pub async fn unregister(&self) -> Result<(), ClientError> {
        let authentication_token = self.token.expose().starts_with("glrt-");
        let (path, body) = if authentication_token {
            let body = UnregisterRequest {
                token: self.token.clone(),
                system_id: Some(self.system_id.clone()),
            };
            ("runners/managers", body)
        } else {
            (
                "runners",
                UnregisterRequest {
                    token: self.token.clone(),
                    system_id: None,
                },
            )
        };
        let url = self.url(path);
        let response = self
            .send(Endpoint::UnregisterRunner, || {
                self.http
                    .delete(url.clone())
                    .header("RUNNER-TOKEN", self.token.expose())
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            StatusCode::FORBIDDEN => Err(ClientError::Forbidden {
                endpoint: Endpoint::UnregisterRunner,
            }),
            _ => Err(status_error(Endpoint::UnregisterRunner, response).await),
        }
    }

    /// `POST /api/v4/runners/reset_authentication_token` (token rotation). 201 gives the new
    /// token and its expiry.
    pub async fn reset_token(&self) -> Result<RunnerCredentialsResponse, ClientError> {
        let url = self.url("runners/reset_authentication_token");
        let body = serde_json::json!({ "token": self.token.expose() });
        let response = self
            .send(Endpoint::ResetToken, || {
                self.http
                    .post(url.clone())
                    .header("Accept", "application/json")
                    .header("RUNNER-TOKEN", self.token.expose())
                    .json(&body)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => json(Endpoint::ResetToken, response).await,
            StatusCode::FORBIDDEN => Err(ClientError::Forbidden {
                endpoint: Endpoint::ResetToken,
            }),
            _ => Err(status_error(Endpoint::ResetToken, response).await),
        }
    }
}

/// Reads a JSON body; a 2xx whose Content-Type is not JSON is an error, as in gitlab-runner.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    endpoint: Endpoint,
    response: Response,
) -> Result<T, ClientError> {
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ClientError::NotJson { endpoint });
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ClientError::Network { endpoint, source })?;
    serde_json::from_slice(&bytes).map_err(|source| ClientError::BadJson { endpoint, source })
}

/// An error for an unexpected status, with GitLab's `message` when the body has one.
pub(crate) async fn status_error(endpoint: Endpoint, response: Response) -> ClientError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .map(ToString::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    ClientError::Status {
        endpoint,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::api_base;

    #[test]
    fn api_base_strips_slash_and_legacy_ci_suffix() {
        for url in [
            "https://gitlab.example.com",
            "https://gitlab.example.com/",
            "https://gitlab.example.com/ci",
        ] {
            assert_eq!(
                api_base(url).expect("valid").as_str(),
                "https://gitlab.example.com/api/v4/"
            );
        }
        assert_eq!(
            api_base("http://host:8080/sub/").expect("valid").as_str(),
            "http://host:8080/sub/api/v4/"
        );
        assert!(api_base("ftp://host").is_err());
    }
}
