//! Signed URLs of the GCS and Azure signers, checked offline: host, object path, the signature
//! scheme's query parameters and the upload headers. (S3 is exercised end to end against moto.)

use std::time::Duration;

use runnel_exec::{CacheMethod, CacheUrlSigner, PresignedRequest};

use super::cache_setup;
use crate::config::{CacheAzure, CacheConfig, CacheGcs};

/// An RSA key made for these tests only (`openssl genpkey -algorithm RSA`).
const TEST_KEY: &str = include_str!("testdata/gcs-test-key.pem");
/// Azurite's published development account key.
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

async fn presign(config: &CacheConfig, method: CacheMethod) -> PresignedRequest {
    let setup = cache_setup(config, "tok123456", 7, Duration::from_secs(3600))
        .expect("a valid config")
        .expect("a remote cache");
    setup
        .signer
        .presign("venv-non_protected", method)
        .await
        .expect("signed")
}

fn query(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn gcs(domain: Option<&str>) -> CacheConfig {
    CacheConfig {
        kind: Some("gcs".into()),
        gcs: Some(CacheGcs {
            access_id: Some("cache@project.iam.gserviceaccount.com".into()),
            private_key: Some(TEST_KEY.into()),
            bucket_name: Some("runner-cache".into()),
            universe_domain: domain.map(str::to_owned),
            ..CacheGcs::default()
        }),
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn gcs_urls_are_v4_signed_with_the_access_id() {
    for method in [CacheMethod::Get, CacheMethod::Put] {
        let request = presign(&gcs(None), method).await;
        assert_eq!(
            request.clean_url(),
            "https://storage.googleapis.com/runner-cache/runner/tok123456/project/7/venv-non_protected"
        );
        assert_eq!(
            query(&request.url, "X-Goog-Algorithm").as_deref(),
            Some("GOOG4-RSA-SHA256")
        );
        let credential = query(&request.url, "X-Goog-Credential").unwrap_or_default();
        assert!(
            credential.starts_with("cache%40project.iam.gserviceaccount.com%2F"),
            "{credential}"
        );
        assert_eq!(
            query(&request.url, "X-Goog-Expires").as_deref(),
            Some("3600")
        );
        let signature = query(&request.url, "X-Goog-Signature").unwrap_or_default();
        // RSA-2048: 256 bytes, hex.
        assert_eq!(signature.len(), 512, "{signature}");
        assert!(request.headers.is_empty());
    }
}

#[tokio::test]
async fn gcs_universe_domain_changes_the_host() {
    let request = presign(&gcs(Some("example-universe.com")), CacheMethod::Get).await;
    assert!(
        request
            .clean_url()
            .starts_with("https://storage.example-universe.com/runner-cache/"),
        "{}",
        request.clean_url()
    );
}

fn azure(domain: Option<&str>) -> CacheConfig {
    CacheConfig {
        kind: Some("azure".into()),
        shared: Some(true),
        azure: Some(CacheAzure {
            account_name: Some("devstoreaccount1".into()),
            account_key: Some(AZURITE_KEY.into()),
            container_name: Some("cache".into()),
            storage_domain: domain.map(str::to_owned),
        }),
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn azure_urls_carry_a_service_sas_and_uploads_a_blob_type() {
    let get = presign(&azure(None), CacheMethod::Get).await;
    assert_eq!(
        get.clean_url(),
        "https://devstoreaccount1.blob.core.windows.net/cache/project/7/venv-non_protected"
    );
    assert_eq!(query(&get.url, "sr").as_deref(), Some("b"));
    assert_eq!(query(&get.url, "sp").as_deref(), Some("r"));
    assert!(query(&get.url, "sig").is_some_and(|s| !s.is_empty()));
    let put = presign(&azure(Some("blob.core.chinacloudapi.cn")), CacheMethod::Put).await;
    assert!(
        put.clean_url()
            .starts_with("https://devstoreaccount1.blob.core.chinacloudapi.cn/cache/"),
        "{}",
        put.clean_url()
    );
    assert!(
        query(&put.url, "sp").is_some_and(|p| p.contains('w')),
        "{}",
        put.url
    );
    assert_eq!(
        put.headers,
        [("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())]
    );
}

#[test]
fn missing_keys_and_unknown_types_are_named() {
    let mut config = azure(None);
    if let Some(azure) = config.azure.as_mut() {
        azure.account_key = None;
    }
    let err = cache_setup(&config, "t", 1, Duration::from_secs(60)).map(|_| ());
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("[runners.cache.azure] AccountKey is required".to_owned())
    );
    config.kind = Some("ftp".into());
    let err = cache_setup(&config, "t", 1, Duration::from_secs(60)).map(|_| ());
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("[runners.cache] Type `ftp` is not one of `s3`, `gcs`, `azure`".to_owned())
    );
    config.kind = None;
    assert!(matches!(
        cache_setup(&config, "t", 1, Duration::from_secs(60)),
        Ok(None)
    ));
}
