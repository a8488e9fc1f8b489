//! The S3 servers of the distributed cache tests, started by `scripts/start-s3.sh`: moto on
//! `$RUNNEL_TEST_S3` (default `127.0.0.1:9310`), which takes any credentials, and s3rver on
//! `$RUNNEL_TEST_S3_AUTH` (default `127.0.0.1:9311`), which refuses an unknown access key, and
//! s3s-fs on `$RUNNEL_TEST_S3_SIGV4` (default `127.0.0.1:9312`), which verifies signatures. With
//! `CI=true` a missing server panics; elsewhere the test prints `SKIPPED: …` and returns.

use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A reachable S3 server.
#[derive(Debug, Clone)]
pub struct S3Server {
    /// `host:port`.
    pub address: String,
}

/// The S3 server, or `None` (after a `SKIPPED:` line) when it does not answer outside CI.
pub fn s3_server() -> Option<S3Server> {
    server("RUNNEL_TEST_S3", "127.0.0.1:9310", "S3 server")
}

/// The credential-checking S3 server (s3rver): its one access key is [`AUTH_ACCESS_KEY`] and
/// its bucket [`AUTH_BUCKET`]. `None` as for [`s3_server`].
pub fn s3_auth_server() -> Option<S3Server> {
    server(
        "RUNNEL_TEST_S3_AUTH",
        "127.0.0.1:9311",
        "credential-checking S3 server (s3rver)",
    )
}

/// The access key (and secret key) the credential-checking server knows.
pub const AUTH_ACCESS_KEY: &str = "S3RVER";
/// The bucket of the credential-checking server.
pub const AUTH_BUCKET: &str = "runnel-auth";

/// The signature-checking S3 server (s3s-fs): it verifies V4 signatures, pre-signed URLs
/// included, with the one key pair [`SIGV4_ACCESS_KEY`] / [`SIGV4_SECRET_KEY`], and has the
/// bucket [`SIGV4_BUCKET`]. `None` as for [`s3_server`].
pub fn s3_sigv4_server() -> Option<S3Server> {
    server(
        "RUNNEL_TEST_S3_SIGV4",
        "127.0.0.1:9312",
        "signature-checking S3 server (s3s-fs)",
    )
}

/// The access key of the signature-checking server.
pub const SIGV4_ACCESS_KEY: &str = "S3SFS";
/// The secret key of the signature-checking server.
pub const SIGV4_SECRET_KEY: &str = "s3s-fs-secret";
/// The bucket of the signature-checking server.
pub const SIGV4_BUCKET: &str = "runnel-sigv4";

fn server(variable: &str, default: &str, what: &str) -> Option<S3Server> {
    let address = std::env::var(variable).unwrap_or_else(|_| default.into());
    let reachable = address
        .parse()
        .ok()
        .is_some_and(|socket| TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(S3Server { address });
    }
    let reason = format!("no {what} on {address}; scripts/start-s3.sh starts one");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{reason}");
    }
    println!("SKIPPED: {reason}");
    None
}

impl S3Server {
    /// Creates a bucket with a name no other test uses (moto takes unsigned requests).
    pub async fn create_bucket(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let response = reqwest::Client::new()
            .put(format!("http://{}/{name}", self.address))
            .send()
            .await
            .expect("the S3 server answers");
        assert!(
            response.status().is_success(),
            "create bucket {name}: {}",
            response.status()
        );
        name
    }

    /// The object names in `bucket`.
    pub async fn list(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::get(format!("http://{}/{bucket}", self.address))
            .await
            .expect("the S3 server answers")
            .text()
            .await
            .expect("a listing");
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// A `[runners.cache]` section for `bucket` (access-key authentication, plain HTTP).
    pub fn cache_section(&self, bucket: &str, extra: &str) -> String {
        self.cache_section_with_keys(
            bucket,
            extra,
            "AKIARUNNELTEST",
            "runnel-secret-key-do-not-print",
        )
    }

    /// [`S3Server::cache_section`] with the given access and secret key.
    pub fn cache_section_with_keys(
        &self,
        bucket: &str,
        extra: &str,
        access_key: &str,
        secret_key: &str,
    ) -> String {
        format!(
            "  [runners.cache]\n    Type = \"s3\"\n{extra}\n    [runners.cache.s3]\n      ServerAddress = \"{}\"\n      AccessKey = \"{access_key}\"\n      SecretKey = \"{secret_key}\"\n      BucketName = \"{bucket}\"\n      Insecure = true\n",
            self.address
        )
    }
}
