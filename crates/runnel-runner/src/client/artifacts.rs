//! Artifacts over HTTP: `POST /jobs/:id/artifacts` (one multipart `file` part; `artifact_type`,
//! `artifact_format`, `expire_in` in the query string; a 307 re-targets the upload) and
//! `GET /jobs/:id/artifacts` with `JOB-TOKEN` (gitlab-runner `network/gitlab.go`
//! `UploadRawArtifacts`, `DownloadArtifacts`).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use reqwest::StatusCode;
use runnel_api::{JobId, JobToken};
use tokio::io::AsyncWriteExt;

use super::ClientError;
use super::coordinator::{Coordinator, status_error};
use super::transport::Endpoint;

/// One archive to upload.
#[derive(Debug, Clone)]
pub struct ArtifactUpload {
    /// The archive on disk.
    pub path: PathBuf,
    /// The file name sent in the multipart part (`artifacts.zip`, `junit.xml.gz`, …).
    pub file_name: String,
    /// `archive`, `junit`, `dotenv`, …; empty is left out.
    pub artifact_type: String,
    /// `zip`, `gzip`, `raw`; empty is left out.
    pub artifact_format: String,
    /// `expire_in`; `None` is left out.
    pub expire_in: Option<String>,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// 201.
    Created,
    /// 413: too large; not retried.
    TooLarge,
    /// 403: forbidden.
    Forbidden,
    /// Another status after the retries.
    Failed(u16),
}

/// Uploads are re-targeted at most this many times.
const MAX_REDIRECTS: usize = 5;

impl Coordinator {
    /// Uploads one artifacts archive for job `id`.
    pub async fn upload_artifacts(
        &self,
        id: JobId,
        token: &JobToken,
        upload: &ArtifactUpload,
    ) -> Result<UploadOutcome, ClientError> {
        let mut url = self.url(&format!("jobs/{id}/artifacts"));
        {
            let mut query = url.query_pairs_mut();
            if !upload.artifact_type.is_empty() {
                query.append_pair("artifact_type", &upload.artifact_type);
            }
            if !upload.artifact_format.is_empty() {
                query.append_pair("artifact_format", &upload.artifact_format);
            }
            if let Some(expire_in) = upload.expire_in.as_deref().filter(|e| !e.is_empty()) {
                query.append_pair("expire_in", expire_in);
            }
        }
        let file_error = |source| ClientError::File {
            path: upload.path.clone(),
            source,
        };
        let length = tokio::fs::metadata(&upload.path)
            .await
            .map_err(file_error)?
            .len();
        for _ in 0..=MAX_REDIRECTS {
            let response = self
                .send(Endpoint::UploadArtifacts, || {
                    // Streamed from disk, opened afresh for every attempt so each starts at 0.
                    let body = match std::fs::File::open(&upload.path) {
                        Ok(file) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(
                            tokio::fs::File::from_std(file),
                        )),
                        Err(_) => reqwest::Body::from(Vec::new()),
                    };
                    let part = reqwest::multipart::Part::stream_with_length(body, length)
                        .file_name(upload.file_name.clone());
                    let form = reqwest::multipart::Form::new().part("file", part);
                    self.http
                        .post(url.clone())
                        .header("JOB-TOKEN", token.expose())
                        .multipart(form)
                })
                .await?;
            match response.status() {
                StatusCode::CREATED => return Ok(UploadOutcome::Created),
                StatusCode::TEMPORARY_REDIRECT => {
                    let location = response
                        .headers()
                        .get("Location")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| url.join(v).ok());
                    match location {
                        Some(next) => url = next,
                        None => return Ok(UploadOutcome::Failed(307)),
                    }
                }
                StatusCode::PAYLOAD_TOO_LARGE => return Ok(UploadOutcome::TooLarge),
                StatusCode::FORBIDDEN => return Ok(UploadOutcome::Forbidden),
                other => return Ok(UploadOutcome::Failed(other.as_u16())),
            }
        }
        Ok(UploadOutcome::Failed(307))
    }

    /// Downloads job `id`'s artifacts archive into `destination`, following redirects to
    /// object storage. A 404 means the job has no archive.
    pub async fn download_artifacts(
        &self,
        id: JobId,
        token: &JobToken,
        destination: &Path,
    ) -> Result<(), ClientError> {
        let mut url = self.url(&format!("jobs/{id}/artifacts"));
        url.query_pairs_mut().append_pair("direct_download", "true");
        let mut with_token = true;
        for _ in 0..=MAX_REDIRECTS {
            let response = self
                .send(Endpoint::DownloadArtifacts, || {
                    let request = self.http.get(url.clone());
                    // Object storage must not see the job token.
                    if with_token {
                        request.header("JOB-TOKEN", token.expose())
                    } else {
                        request
                    }
                })
                .await?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get("Location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| url.join(v).ok());
                let Some(next) = next else { break };
                with_token = next.host_str() == url.host_str();
                url = next;
                continue;
            }
            if status != StatusCode::OK {
                return Err(status_error(Endpoint::DownloadArtifacts, response).await);
            }
            let file_error = |source| ClientError::File {
                path: destination.to_owned(),
                source,
            };
            let mut file = tokio::fs::File::create(destination)
                .await
                .map_err(file_error)?;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|source| ClientError::Network {
                    endpoint: Endpoint::DownloadArtifacts,
                    source,
                })?;
                file.write_all(&chunk).await.map_err(file_error)?;
            }
            file.flush().await.map_err(file_error)?;
            return Ok(());
        }
        Err(ClientError::Status {
            endpoint: Endpoint::DownloadArtifacts,
            status: 310,
            message: "too many redirects".into(),
        })
    }
}
