//! The coordinator connection of one `[[runners]]` entry and the runner-scoped calls:
//! register, verify, unregister, reset token (gitlab-runner `network/gitlab.go`; GitLab
//! `lib/api/ci/runner.rb`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use runnel_api::{
    JobVariable, RegisterRunnerRequest, RunnerCredentialsResponse, RunnerToken, UnregisterRequest,
    VerifyRunnerRequest, VersionInfo,
};

use super::ClientError;
use super::tls::TlsFiles;
use super::transport::{self, Endpoint, RequestLabels};
use crate::config::{RunnerConfig, short_token};
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
    /// The TLS variables every job of this connection gets (gitlab-runner's `TLSData`).
    tls_variables: Arc<Vec<JobVariable>>,
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
    client_builder().build().map_err(ClientError::Build)
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60 * 60))
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

/// The HTTP client for one `[[runners]]` entry: `shared` unless the entry has TLS files.
/// `tls-ca-file` adds CA certificates; `tls-cert-file` + `tls-key-file` give a client
/// certificate. Without them, gitlab-runner's certificate directory is used:
/// `<config dir>/certs/<host>.crt`, `<host>.auth.crt` and `<host>.auth.key`
/// (`network/client.go`).
pub fn http_client_for(
    shared: &reqwest::Client,
    runner: &RunnerConfig,
    config_dir: &Path,
) -> Result<reqwest::Client, ClientError> {
    let TlsFiles { ca, cert, key } = TlsFiles::of(runner, config_dir);
    if ca.is_none() && (cert.is_none() || key.is_none()) {
        return Ok(shared.clone());
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| ClientError::File {
            path: path.clone(),
            source,
        })
    };
    let mut builder = client_builder();
    if let Some(ca) = &ca {
        let bundle =
            reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(ClientError::Build)?;
        if bundle.is_empty() {
            let source = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no PEM certificate in the file",
            );
            return Err(ClientError::File {
                path: ca.clone(),
                source,
            });
        }
        builder = builder.tls_certs_merge(bundle);
    }
    if let (Some(cert), Some(key)) = (&cert, &key) {
        let mut pem = read(cert)?;
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(&read(key)?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(ClientError::Build)?);
    }
    builder.build().map_err(ClientError::Build)
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
            tls_variables: Arc::new(Vec::new()),
        })
    }

    /// Gives every job the TLS variables of `files` (`CI_SERVER_TLS_CA_FILE`, …).
    #[must_use]
    pub fn with_tls(mut self, files: &TlsFiles) -> Self {
        self.tls_variables = Arc::new(files.job_variables());
        self
    }

    /// The TLS variables of this connection, which come before a job's own variables.
    pub fn tls_variables(&self) -> &[JobVariable] {
        &self.tls_variables
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

    /// `POST`s `body` to `path` as this runner (`RUNNER-TOKEN`), accepting JSON.
    async fn post_json(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Response, ClientError> {
        let url = self.url(path);
        self.send(endpoint, || {
            self.http
                .post(url.clone())
                .header("Accept", "application/json")
                .header("RUNNER-TOKEN", self.token.expose())
                .json(body)
        })
        .await
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
        let body = VerifyRunnerRequest {
            token: self.token.clone(),
            system_id: Some(self.system_id.clone()).filter(|id| !id.is_empty()),
            info,
        };
        let response = self
            .post_json(Endpoint::VerifyRunner, "runners/verify", &body)
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
        let path = if authentication_token {
            "runners/managers"
        } else {
            "runners"
        };
        let body = UnregisterRequest {
            token: self.token.clone(),
            system_id: authentication_token.then(|| self.system_id.clone()),
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
        let body = serde_json::json!({ "token": self.token.expose() });
        let response = self
            .post_json(
                Endpoint::ResetToken,
                "runners/reset_authentication_token",
                &body,
            )
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
    use super::{ClientError, api_base, http_client, http_client_for};
    use crate::config::RunnerConfig;

    #[test]
    fn a_missing_tls_ca_file_is_named() {
        let runner = RunnerConfig {
            url: "https://gitlab.example.com/".into(),
            tls_ca_file: Some("/nonexistent/ca.crt".into()),
            ..RunnerConfig::default()
        };
        let shared = http_client().expect("client");
        let err = http_client_for(&shared, &runner, std::path::Path::new("/nonexistent"))
            .expect_err("missing file");
        assert!(
            matches!(err, ClientError::File { ref path, .. } if path.ends_with("ca.crt")),
            "{err:?}"
        );
    }

    #[test]
    fn a_garbage_tls_ca_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("certs")).expect("mkdir");
        std::fs::write(
            dir.path().join("certs/gitlab.example.com.crt"),
            "not a certificate",
        )
        .expect("write");
        let runner = RunnerConfig {
            url: "https://gitlab.example.com/".into(),
            ..RunnerConfig::default()
        };
        let shared = http_client().expect("client");
        assert!(http_client_for(&shared, &runner, dir.path()).is_err());
    }

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
