//! The S3 server of the distributed cache tests: moto, started by `scripts/start-s3.sh` on
//! `$RUNNEL_TEST_S3` (default `127.0.0.1:9310`). With `CI=true` a missing server panics;
//! elsewhere the test prints `SKIPPED: …` and returns.

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
    let address = std::env::var("RUNNEL_TEST_S3").unwrap_or_else(|_| "127.0.0.1:9310".into());
    let reachable = address
        .parse()
        .ok()
        .is_some_and(|socket| TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(S3Server { address });
    }
    let reason = format!("no S3 server on {address}; scripts/start-s3.sh starts one");
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
        format!(
            "  [runners.cache]\n    Type = \"s3\"\n{extra}\n    [runners.cache.s3]\n      ServerAddress = \"{}\"\n      AccessKey = \"AKIARUNNELTEST\"\n      SecretKey = \"runnel-secret-key-do-not-print\"\n      BucketName = \"{bucket}\"\n      Insecure = true\n",
            self.address
        )
    }
}
