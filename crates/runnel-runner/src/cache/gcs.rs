//! `[runners.cache.gcs]` → an object_store `GoogleCloudStorage` that signs V4 URLs with the
//! service account's private key (gitlab-runner `cache/gcs`): from `CredentialsFile`, else from
//! `AccessID` + `PrivateKey`, else from the environment's application default credentials or
//! the metadata server (then signing goes through IAM `signBlob`).

use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};

use super::signer::CacheSetupError;
use crate::config::CacheGcs;

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The service account key JSON object_store reads, made from `AccessID` and `PrivateKey`.
fn key_json(access_id: &str, private_key: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "client_email": access_id,
        "private_key": private_key,
        "private_key_id": "",
    })
    .to_string()
}

/// The base URL of the XML API: `https://storage.googleapis.com`, or
/// `https://storage.<UniverseDomain>`.
pub(super) fn base_url(gcs: &CacheGcs) -> String {
    match nonempty(&gcs.universe_domain) {
        Some(domain) => format!("https://storage.{domain}"),
        None => "https://storage.googleapis.com".to_owned(),
    }
}

pub(super) fn build(gcs: &CacheGcs) -> Result<GoogleCloudStorage, CacheSetupError> {
    let bucket = nonempty(&gcs.bucket_name).ok_or(CacheSetupError::Missing {
        section: "gcs",
        key: "BucketName",
    })?;
    let mut builder = GoogleCloudStorageBuilder::new()
        .with_bucket_name(bucket)
        .with_base_url(&base_url(gcs));
    if let Some(file) = nonempty(&gcs.credentials_file) {
        builder = builder.with_service_account_path(file);
    } else if let (Some(id), Some(key)) = (nonempty(&gcs.access_id), nonempty(&gcs.private_key)) {
        builder = builder.with_service_account_key(key_json(id, key));
    }
    builder.build().map_err(|source| CacheSetupError::Store {
        kind: "gcs",
        source,
    })
}
