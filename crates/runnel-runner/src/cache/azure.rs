//! `[runners.cache.azure]` → an object_store `MicrosoftAzure` that makes service SAS URLs with
//! the account key (gitlab-runner `cache/azure`): `https://<AccountName>.<StorageDomain>/
//! <ContainerName>/<object>`, the storage domain defaulting to `blob.core.windows.net`. Uploads
//! send `x-ms-blob-type: BlockBlob`, as gitlab-runner's upload headers say.

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::signer::{HeaderName, HeaderValue};

use super::signer::CacheSetupError;
use crate::config::CacheAzure;

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The account's blob endpoint.
pub(super) fn endpoint(account: &str, azure: &CacheAzure) -> String {
    let domain = nonempty(&azure.storage_domain).unwrap_or("blob.core.windows.net");
    format!("https://{account}.{domain}")
}

/// The headers every upload must carry.
pub(super) fn upload_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![(
        HeaderName::from_static("x-ms-blob-type"),
        HeaderValue::from_static("BlockBlob"),
    )]
}

pub(super) fn build(azure: &CacheAzure) -> Result<MicrosoftAzure, CacheSetupError> {
    let missing = |key| CacheSetupError::Missing {
        section: "azure",
        key,
    };
    let account = nonempty(&azure.account_name).ok_or(missing("AccountName"))?;
    let key = nonempty(&azure.account_key).ok_or(missing("AccountKey"))?;
    let container = nonempty(&azure.container_name).ok_or(missing("ContainerName"))?;
    MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_access_key(key)
        .with_container_name(container)
        .with_endpoint(endpoint(account, azure))
        .build()
        .map_err(|source| CacheSetupError::Store {
            kind: "azure",
            source,
        })
}
