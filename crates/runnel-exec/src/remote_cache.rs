//! The distributed cache (`[runners.cache]` with `Type` s3, gcs or azure), job side: cache
//! archives go to and come from object storage through pre-signed URLs, as gitlab-runner's
//! `cache-extractor` and `cache-archiver` helpers do (`commands/helpers/cache_extractor.go`,
//! `cache_archiver.go`).
//!
//! The manager side (the runner daemon, or `runnel exec --cache-config`) holds the credentials
//! and signs one GET or PUT request per cache key through a [`CacheUrlSigner`]; this module only
//! ever sees the signed [`PresignedRequest`]s, so no credential reaches a job's environment or
//! trace (a URL is printed without its query string, where the signature lives).
//!
//! [`download`] and [`upload`] need nothing but a request and a file, and stream the archive
//! between the file and the network without holding it in memory: a helper container (the
//! Kubernetes executor's) can call them with URLs made by the manager. [`RemoteCacheStore`]
//! puts them behind the [`CacheStore`] trait for the shell and Docker executors, whose cache
//! stages run in the runner's own process.
//!
//! As in gitlab-runner, the archive is also kept in the local cache directory: a download
//! replaces the local copy unless that is as new as the object (`Last-Modified`), and an upload
//! first stores the archive locally. A missing object is no cache; any other failure is a
//! warning and the job goes on without cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::store::{BoxFuture, CacheStore, LocalCacheStore, StoreError};
use crate::trace::Trace;

/// What a pre-signed request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMethod {
    /// Download the archive.
    Get,
    /// Upload the archive.
    Put,
}

/// One signed request: the URL carries the authorization; `headers` must be sent as they are
/// (signed server-side encryption headers, Azure's `x-ms-blob-type`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresignedRequest {
    /// The full URL, signature included. Never print it: use [`PresignedRequest::clean_url`].
    pub url: String,
    /// Headers to send with the request.
    pub headers: Vec<(String, String)>,
}

impl PresignedRequest {
    /// The URL without query string, fragment or user info: what a trace may show
    /// (gitlab-runner `url_helpers.CleanURL`).
    pub fn clean_url(&self) -> String {
        clean_url(&self.url)
    }
}

impl std::fmt::Debug for PresignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedRequest")
            .field("url", &self.clean_url())
            .field("headers", &self.headers)
            .finish()
    }
}

/// Strips the query string, the fragment and any user info from `url`.
pub fn clean_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(host_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A request signed for one sanitized cache key and method, handed to a helper that has no
/// credentials (`runnel helper stage` in the custom executor's driver).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedKey {
    /// The sanitized key.
    pub key: String,
    /// What the request is for.
    pub method: CacheMethod,
    /// The request.
    pub request: PresignedRequest,
}

/// The manager side: makes pre-signed requests for cache keys. Implementations hold the
/// credentials; their errors must not contain them.
pub trait CacheUrlSigner: Send + Sync + std::fmt::Debug {
    /// A request to `method` the archive of `key` (already sanitized by
    /// [`crate::sanitize_cache_key`]).
    fn presign<'a>(
        &'a self,
        key: &'a str,
        method: CacheMethod,
    ) -> BoxFuture<'a, Result<PresignedRequest, Box<dyn std::error::Error + Send + Sync>>>;
}

/// How a download ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downloaded {
    /// The archive was written to the file.
    Fresh,
    /// The local file is at least as new as the object; it was left alone.
    UpToDate,
    /// There is no such object (404 with `NoSuchKey`, or a 404 without an error code).
    NotFound,
}

/// Why a transfer failed. Messages hold no URL query string and no response body beyond the
/// storage's error code.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The request could not be sent or its answer not read.
    #[error("failed to reach the cache server")]
    Request(#[source] reqwest::Error),
    /// The storage refused the request.
    #[error("the cache server answered {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The storage's error code (`NoSuchBucket`, `SignatureDoesNotMatch`, `AuthenticationFailed`).
        code: Option<String>,
    },
    /// A local file operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl TransferError {
    fn retryable(&self) -> bool {
        match self {
            TransferError::Request(_) => true,
            TransferError::Status { status, .. } => status.is_server_error(),
            TransferError::Io { .. } => false,
        }
    }
}

/// The HTTP client for cache transfers: no overall timeout (archives may be large), a bounded
/// connect time so a dead endpoint fails fast.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("runnel/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// gitlab-runner retries a transfer twice, one second apart, after a network error or a 5xx
/// (`retryHelper{Retry: 2, RetryTime: time.Second}`).
const ATTEMPTS: u32 = 3;
const RETRY_WAIT: Duration = Duration::from_secs(1);
/// Reads and writes go through buffers of this size, so memory stays bounded by it.
const BUFFER: usize = 1 << 20;

/// Downloads the object of `request` into `file`, streamed through a temporary file beside it
/// that is renamed into place when complete (a failed download leaves `file` as it was). Skips
/// the download when `file` is at least as new as the object's `Last-Modified`.
pub async fn download(
    client: &reqwest::Client,
    request: &PresignedRequest,
    file: &Path,
) -> Result<Downloaded, TransferError> {
    let mut attempt = 1;
    loop {
        match download_once(client, request, file).await {
            Err(err) if err.retryable() && attempt < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(RETRY_WAIT).await;
            }
            result => return result,
        }
    }
}

async fn download_once(
    client: &reqwest::Client,
    request: &PresignedRequest,
    file: &Path,
) -> Result<Downloaded, TransferError> {
    let mut builder = client.get(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let mut response = builder
        .send()
        .await
        .map_err(|e| TransferError::Request(e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        let code = error_code(response).await;
        if status == reqwest::StatusCode::NOT_FOUND
            && matches!(code.as_deref(), None | Some("NoSuchKey" | "BlobNotFound"))
        {
            return Ok(Downloaded::NotFound);
        }
        return Err(TransferError::Status { status, code });
    }
    let modified = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    if let (Some(modified), Ok(meta)) = (modified, std::fs::metadata(file))
        && meta.modified().is_ok_and(|local| local >= modified)
    {
        return Ok(Downloaded::UpToDate);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io_err("create the directory", dir))?;
    let partial = partial_path(file);
    let result = async {
        let out = tokio::fs::File::create(&partial)
            .await
            .map_err(io_err("create", &partial))?;
        let mut out = tokio::io::BufWriter::with_capacity(BUFFER, out);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransferError::Request(e.without_url()))?
        {
            out.write_all(&chunk)
                .await
                .map_err(io_err("write", &partial))?;
        }
        out.flush().await.map_err(io_err("write", &partial))?;
        let out = out.into_inner().into_std().await;
        if let Some(modified) = modified {
            let _ = out.set_modified(modified);
        }
        drop(out);
        tokio::fs::rename(&partial, file)
            .await
            .map_err(io_err("move the download to", file))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result.map(|()| Downloaded::Fresh)
}

/// Uploads `file` with `request`, streamed from disk, with `Content-Length` (storages refuse
/// chunked uploads to signed URLs), `Content-Type: application/octet-stream` unless the request
/// names one, and `Last-Modified` as gitlab-runner sends them.
pub async fn upload(
    client: &reqwest::Client,
    request: &PresignedRequest,
    file: &Path,
) -> Result<(), TransferError> {
    let mut attempt = 1;
    loop {
        match upload_once(client, request, file).await {
            Err(err) if err.retryable() && attempt < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(RETRY_WAIT).await;
            }
            result => return result,
        }
    }
}

async fn upload_once(
    client: &reqwest::Client,
    request: &PresignedRequest,
    file: &Path,
) -> Result<(), TransferError> {
    let input = tokio::fs::File::open(file)
        .await
        .map_err(io_err("open", file))?;
    let meta = input.metadata().await.map_err(io_err("read", file))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(input, BUFFER);
    let mut builder = client
        .put(&request.url)
        .header(reqwest::header::CONTENT_LENGTH, meta.len());
    let mut content_type = false;
    for (name, value) in &request.headers {
        content_type |= name.eq_ignore_ascii_case("content-type");
        builder = builder.header(name, value);
    }
    if !content_type {
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
    }
    if let Ok(modified) = meta.modified() {
        builder = builder.header(
            reqwest::header::LAST_MODIFIED,
            httpdate::fmt_http_date(modified),
        );
    }
    let response = builder
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| TransferError::Request(e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let code = error_code(response).await;
    Err(TransferError::Status { status, code })
}

/// The `<Code>` of an S3, GCS or Azure XML error body, read from at most 64 KiB.
async fn error_code(mut response: reqwest::Response) -> Option<String> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    let code = text[start..end].trim();
    (!code.is_empty() && code.len() < 100 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| code.to_owned())
}

fn partial_path(file: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_owned();
    move |source| TransferError::Io {
        action,
        path,
        source,
    }
}

/// Caches in object storage through pre-signed URLs, with the local copy in `local` as
/// gitlab-runner keeps it.
#[derive(Debug, Clone)]
pub struct RemoteCacheStore {
    local: LocalCacheStore,
    signer: Signing,
    max_uploaded_archive_size: u64,
    client: reqwest::Client,
}

/// Where the store's requests come from.
#[derive(Debug, Clone)]
enum Signing {
    /// Signed when needed (the manager side, with the credentials).
    Signer(Arc<dyn CacheUrlSigner>),
    /// Signed beforehand by the manager, one per key and method (a helper's side).
    Presigned(Vec<SignedKey>),
}

impl RemoteCacheStore {
    /// A store signing with `signer`, keeping local copies under `local_root`. Archives larger
    /// than `max_uploaded_archive_size` bytes (0: no limit) stay local.
    pub fn new(
        local_root: impl Into<PathBuf>,
        signer: Arc<dyn CacheUrlSigner>,
        max_uploaded_archive_size: u64,
    ) -> Self {
        Self {
            local: LocalCacheStore::new(local_root),
            signer: Signing::Signer(signer),
            max_uploaded_archive_size,
            client: http_client(),
        }
    }

    /// A store with only the requests the manager signed beforehand (`requests`), keeping
    /// local copies under `local_root`: a key or method without a request is an error.
    pub fn presigned(
        local_root: impl Into<PathBuf>,
        requests: Vec<SignedKey>,
        max_uploaded_archive_size: u64,
    ) -> Self {
        Self {
            local: LocalCacheStore::new(local_root),
            signer: Signing::Presigned(requests),
            max_uploaded_archive_size,
            client: http_client(),
        }
    }

    async fn sign(
        &self,
        key: &str,
        method: CacheMethod,
    ) -> Result<(String, PresignedRequest), StoreError> {
        let clean = crate::store::sanitize_cache_key(key).ok_or_else(|| StoreError::BadKey {
            key: key.to_owned(),
        })?;
        let action = match method {
            CacheMethod::Get => "make the cache download URL",
            CacheMethod::Put => "make the cache upload URL",
        };
        let request = match &self.signer {
            Signing::Signer(signer) => signer.presign(&clean, method).await,
            Signing::Presigned(requests) => requests
                .iter()
                .find(|signed| signed.key == clean && signed.method == method)
                .map(|signed| signed.request.clone())
                .ok_or_else(|| "the runner signed no request for this key".into()),
        }
        .map_err(|source| StoreError::Remote {
            action: action.to_owned(),
            source,
        })?;
        Ok((clean, request))
    }
}

impl CacheStore for RemoteCacheStore {
    fn presign<'a>(
        &'a self,
        key: &'a str,
        method: CacheMethod,
    ) -> BoxFuture<'a, Result<Option<SignedKey>, StoreError>> {
        Box::pin(async move {
            let (key, request) = self.sign(key, method).await?;
            Ok(Some(SignedKey {
                key,
                method,
                request,
            }))
        })
    }

    fn max_uploaded_archive_size(&self) -> u64 {
        self.max_uploaded_archive_size
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        _scratch: &'a Path,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        Box::pin(async move {
            let path = self.local.path(key)?;
            let (_, request) = self.sign(key, CacheMethod::Get).await?;
            let location = request.clean_url();
            trace.println(&format!("Downloading cache from {location}"));
            match download(&self.client, &request, &path).await {
                Ok(Downloaded::Fresh) => Ok(Some(path)),
                Ok(Downloaded::UpToDate) => {
                    trace.println("cache.zip is up to date");
                    Ok(Some(path))
                }
                Ok(Downloaded::NotFound) => Ok(None),
                Err(err) => Err(StoreError::Remote {
                    action: format!("download the cache from {location}"),
                    source: Box::new(err),
                }),
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        archive: &'a Path,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        Box::pin(async move {
            let path = self.local.save(key, archive, trace).await?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if self.max_uploaded_archive_size > 0 && size > self.max_uploaded_archive_size {
                // GitLab: cache_archiver.go `uploadArchiveIfNeeded`.
                trace.warning(&format!(
                    "Cache archive size ({size}) is too big (Limit is set to {}). Cache will be stored only locally.",
                    self.max_uploaded_archive_size
                ));
                return Ok(path);
            }
            let (_, request) = self.sign(key, CacheMethod::Put).await?;
            let location = request.clean_url();
            trace.println(&format!("Uploading cache.zip to {location}"));
            upload(&self.client, &request, &path)
                .await
                .map_err(|err| StoreError::Remote {
                    action: format!("upload the cache to {location}"),
                    source: Box::new(err),
                })?;
            Ok(path)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::clean_url;

    #[test]
    fn clean_urls_drop_the_signature_and_user_info() {
        assert_eq!(
            clean_url(
                "http://127.0.0.1:9000/cache/runner/abc/project/1/key?X-Amz-Signature=s3cr3t"
            ),
            "http://127.0.0.1:9000/cache/runner/abc/project/1/key"
        );
        assert_eq!(
            clean_url("https://user:pw@acct.blob.core.windows.net/c/k?sig=x#f"),
            "https://acct.blob.core.windows.net/c/k"
        );
    }
}
