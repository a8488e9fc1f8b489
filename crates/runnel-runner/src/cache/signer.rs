//! One job's signer: the configured object store, the job's object name prefix, and the headers
//! uploads carry.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use runnel_exec::{BoxFuture, CacheMethod, CacheUrlSigner, PresignedRequest};

use super::object::object_name;
use super::{azure, gcs, s3};
use crate::config::CacheConfig;

/// Why `[runners.cache]` cannot be used. Messages name the key, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum CacheSetupError {
    /// `Type` is not one runnel knows.
    #[error("[runners.cache] Type `{0}` is not one of `s3`, `gcs`, `azure`")]
    UnknownType(String),
    /// A required key is missing.
    #[error("[runners.cache.{section}] {key} is required")]
    Missing {
        /// `s3`, `gcs` or `azure`.
        section: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A key has a value runnel cannot use.
    #[error("[runners.cache.s3] {key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// object_store refused the configuration.
    #[error("failed to set up the {kind} cache client")]
    Store {
        /// `s3`, `gcs` or `azure`.
        kind: &'static str,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
}

/// A usable remote cache for one job.
#[derive(Debug)]
pub struct CacheSetup {
    /// Signs the job's cache URLs.
    pub signer: Arc<ObjectStoreSigner>,
    /// `MaxUploadedArchiveSize` in bytes; 0 is no limit.
    pub max_uploaded_archive_size: u64,
    /// Keys read but not implemented, or values ignored.
    pub warnings: Vec<String>,
}

/// The remote cache of `cache` for a job of project `project_id` on the runner whose short
/// token is `short_token`; URLs are valid for `expires` (at most 7 days, the S3 and GCS limit).
/// `None` when `Type` is empty: the local cache only.
pub fn cache_setup(
    cache: &CacheConfig,
    short_token: &str,
    project_id: u64,
    expires: Duration,
) -> Result<Option<CacheSetup>, CacheSetupError> {
    let kind = cache
        .kind
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut warnings = Vec::new();
    let (store, signed_put, plain_put): (Arc<dyn Signer>, _, _) = match kind.as_str() {
        "" => return Ok(None),
        "s3" | "s3v2" => {
            let (store, headers) = s3::build(
                cache.s3.as_ref().ok_or(CacheSetupError::Missing {
                    section: "s3",
                    key: "BucketName",
                })?,
                &mut warnings,
            )?;
            (Arc::new(store), headers, Vec::new())
        }
        "gcs" | "gcsv2" => {
            let store = gcs::build(cache.gcs.as_ref().ok_or(CacheSetupError::Missing {
                section: "gcs",
                key: "BucketName",
            })?)?;
            (Arc::new(store), Vec::new(), Vec::new())
        }
        "azure" => {
            let store = azure::build(cache.azure.as_ref().ok_or(CacheSetupError::Missing {
                section: "azure",
                key: "AccountName",
            })?)?;
            (Arc::new(store), Vec::new(), azure::upload_headers())
        }
        other => return Err(CacheSetupError::UnknownType(other.to_owned())),
    };
    let signer = ObjectStoreSigner {
        store,
        path: cache.path.clone().unwrap_or_default(),
        shared: cache.shared == Some(true),
        short_token: short_token.to_owned(),
        project_id,
        signed_put,
        plain_put,
        expires: expires.clamp(Duration::from_secs(60), Duration::from_secs(7 * 24 * 3600)),
    };
    Ok(Some(CacheSetup {
        signer: Arc::new(signer),
        max_uploaded_archive_size: cache
            .max_uploaded_archive_size
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        warnings,
    }))
}

/// Signs GET and PUT URLs of one project's cache objects with an object_store `Signer`.
#[derive(Debug)]
pub struct ObjectStoreSigner {
    store: Arc<dyn Signer>,
    path: String,
    shared: bool,
    short_token: String,
    project_id: u64,
    /// Headers folded into the upload signature (S3 server-side encryption).
    signed_put: Vec<(HeaderName, HeaderValue)>,
    /// Headers uploads send without signing them (Azure's blob type).
    plain_put: Vec<(HeaderName, HeaderValue)>,
    expires: Duration,
}

impl ObjectStoreSigner {
    /// The object name of `key` (for tests and logs).
    pub fn object_name(&self, key: &str) -> Result<String, super::ObjectNameError> {
        object_name(
            &self.path,
            self.shared,
            &self.short_token,
            self.project_id,
            key,
        )
    }

    async fn sign(
        &self,
        key: &str,
        method: CacheMethod,
    ) -> Result<PresignedRequest, Box<dyn std::error::Error + Send + Sync>> {
        let name = self.object_name(key)?;
        // `Path::parse` keeps the name as written; a name with characters object_store does
        // not allow in a path segment is percent-encoded instead.
        let path = Path::parse(&name).unwrap_or_else(|_| Path::from(name.as_str()));
        let (url, headers) = match method {
            CacheMethod::Get => (
                self.store
                    .signed_url(Method::GET, &path, self.expires)
                    .await?,
                Vec::new(),
            ),
            CacheMethod::Put => {
                let mut options = SignedUrlOptions::default();
                for (name, value) in &self.signed_put {
                    options = options.with_signed_header(name.clone(), value.clone());
                }
                let url = self
                    .store
                    .signed_url_opts(Method::PUT, &path, self.expires, &options)
                    .await?;
                let headers = self
                    .signed_put
                    .iter()
                    .chain(&self.plain_put)
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                (url, headers)
            }
        };
        Ok(PresignedRequest {
            url: url.to_string(),
            headers,
        })
    }
}

impl CacheUrlSigner for ObjectStoreSigner {
    fn presign<'a>(
        &'a self,
        key: &'a str,
        method: CacheMethod,
    ) -> BoxFuture<'a, Result<PresignedRequest, Box<dyn std::error::Error + Send + Sync>>> {
        Box::pin(self.sign(key, method))
    }
}
