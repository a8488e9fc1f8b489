//! `[runners.cache.s3]` → an object_store `AmazonS3` and the headers to sign into upload URLs.
//! The rules are gitlab-runner's `cache/cacheconfig` and `cache/s3v2/s3.go`.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::signer::{HeaderName, HeaderValue};

use super::signer::CacheSetupError;
use crate::config::CacheS3;

/// The AWS endpoint that counts as "no custom endpoint" (gitlab-runner `DEFAULT_AWS_S3_ENDPOINT`).
const AWS_ENDPOINT: &str = "https://s3.amazonaws.com";

/// `AuthenticationType`, as gitlab-runner's `CacheS3Config.AuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthType {
    AccessKey,
    Iam,
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(super) fn auth_type(s3: &CacheS3) -> Result<AuthType, CacheSetupError> {
    match nonempty(&s3.authentication_type).map(str::to_ascii_lowercase) {
        Some(kind) if kind == "access-key" => Ok(AuthType::AccessKey),
        Some(kind) if kind == "iam" => Ok(AuthType::Iam),
        Some(kind) => Err(CacheSetupError::Invalid {
            key: "AuthenticationType",
            message: format!("`{kind}` is neither `access-key` nor `iam`"),
        }),
        None if nonempty(&s3.server_address).is_none()
            || nonempty(&s3.access_key).is_none()
            || nonempty(&s3.secret_key).is_none() =>
        {
            Ok(AuthType::Iam)
        }
        None => Ok(AuthType::AccessKey),
    }
}

/// `ServerAddress` as a URL: `https` unless `Insecure`, canonical ports dropped
/// (gitlab-runner `GetEndpoint`).
pub(super) fn endpoint(s3: &CacheS3) -> Option<String> {
    let address = nonempty(&s3.server_address)?;
    let scheme = if s3.insecure == Some(true) {
        "http"
    } else {
        "https"
    };
    let address = match address.rsplit_once(':') {
        Some((host, port))
            if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") =>
        {
            host
        }
        _ => address,
    };
    Some(format!("{scheme}://{address}"))
}

/// Whether the endpoint takes `<bucket>.<host>` URLs (minio-go `s3utils.IsVirtualHostSupported`):
/// only AWS and Google endpoints, and not for a dotted bucket over https.
fn virtual_host_supported(endpoint: &str, bucket: &str) -> bool {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    if scheme == "https" && bucket.contains('.') {
        return false;
    }
    let host = rest.split([':', '/']).next().unwrap_or_default();
    host.ends_with("amazonaws.com")
        || host.ends_with("amazonaws.com.cn")
        || host == "storage.googleapis.com"
}

/// The bucket's base URL and whether it is virtual-hosted, as the AWS SDK builds it for
/// gitlab-runner's options: a custom endpoint ignores `DualStack` and `Accelerate`.
pub(super) fn bucket_endpoint(s3: &CacheS3, bucket: &str, region: &str) -> (String, bool) {
    match endpoint(s3).filter(|e| e != AWS_ENDPOINT) {
        Some(custom) => {
            let path_style = s3
                .path_style
                .unwrap_or_else(|| !virtual_host_supported(&custom, bucket));
            if path_style {
                (custom, false)
            } else {
                let (scheme, host) = custom.split_once("://").unwrap_or(("https", &custom));
                (format!("{scheme}://{bucket}.{host}"), true)
            }
        }
        None => {
            let dual_stack = s3.dual_stack.unwrap_or(true);
            let host = match (s3.accelerate == Some(true), dual_stack) {
                (true, true) => "s3-accelerate.dualstack.amazonaws.com".to_owned(),
                (true, false) => "s3-accelerate.amazonaws.com".to_owned(),
                (false, true) => format!("s3.dualstack.{region}.amazonaws.com"),
                (false, false) => format!("s3.{region}.amazonaws.com"),
            };
            let https = |host: &str| format!("https://{host}");
            let path_style = s3
                .path_style
                .unwrap_or_else(|| !virtual_host_supported(&https(&host), bucket));
            if path_style {
                (https(&host), false)
            } else {
                (https(&format!("{bucket}.{host}")), true)
            }
        }
    }
}

/// The server-side encryption headers of uploads (gitlab-runner `EncryptionType`): they are
/// signed, so the job side must send them as they are.
pub(super) fn encryption_headers(
    s3: &CacheS3,
    warnings: &mut Vec<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let kind = match nonempty(&s3.server_side_encryption).map(str::to_ascii_uppercase) {
        None => return Vec::new(),
        Some(kind) => kind,
    };
    let algorithm = match kind.as_str() {
        "S3" | "AES256" => "AES256",
        "KMS" | "AWS:KMS" => "aws:kms",
        "DSSE-KMS" | "AWS:KMS:DSSE" => "aws:kms:dsse",
        other => {
            warnings.push(format!(
                "[runners.cache.s3] unknown ServerSideEncryption value: {other}"
            ));
            return Vec::new();
        }
    };
    let mut headers = vec![(
        HeaderName::from_static("x-amz-server-side-encryption"),
        HeaderValue::from_static(algorithm),
    )];
    if algorithm != "AES256"
        && let Some(id) = nonempty(&s3.server_side_encryption_key_id)
    {
        match HeaderValue::from_str(id) {
            Ok(value) => headers.push((
                HeaderName::from_static("x-amz-server-side-encryption-aws-kms-key-id"),
                value,
            )),
            Err(_) => warnings.push(
                "[runners.cache.s3] ServerSideEncryptionKeyID is not a valid header value".into(),
            ),
        }
    }
    headers
}

/// The store for `s3`, with the signed upload headers and warnings for keys runnel reads but
/// does not implement.
pub(super) fn build(
    s3: &CacheS3,
    warnings: &mut Vec<String>,
) -> Result<(AmazonS3, Vec<(HeaderName, HeaderValue)>), CacheSetupError> {
    let bucket = nonempty(&s3.bucket_name).ok_or(CacheSetupError::Missing {
        section: "s3",
        key: "BucketName",
    })?;
    // gitlab-runner: the Minio SDK defaulted to us-east-1, kept for compatibility.
    let region = nonempty(&s3.bucket_location).unwrap_or("us-east-1");
    let mut builder = match auth_type(s3)? {
        AuthType::AccessKey => {
            let mut builder = AmazonS3Builder::new()
                .with_access_key_id(nonempty(&s3.access_key).unwrap_or_default())
                .with_secret_access_key(nonempty(&s3.secret_key).unwrap_or_default());
            if let Some(token) = nonempty(&s3.session_token) {
                builder = builder.with_token(token);
            }
            builder
        }
        // The AWS default chain: environment, web identity, ECS, instance metadata.
        AuthType::Iam => AmazonS3Builder::from_env(),
    };
    let (url, virtual_hosted) = bucket_endpoint(s3, bucket, region);
    builder = builder
        .with_bucket_name(bucket)
        .with_region(region)
        .with_endpoint(url)
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_allow_http(s3.insecure == Some(true));
    for (key, value) in [
        ("RoleARN", &s3.role_arn),
        ("UploadRoleARN", &s3.upload_role_arn),
    ] {
        if nonempty(value).is_some() {
            warnings.push(format!(
                "[runners.cache.s3] {key} is not implemented by runnel and is ignored"
            ));
        }
    }
    let headers = encryption_headers(s3, warnings);
    let store = builder
        .build()
        .map_err(|source| CacheSetupError::Store { kind: "s3", source })?;
    Ok((store, headers))
}

#[cfg(test)]
mod tests {
    use super::{AuthType, auth_type, bucket_endpoint, encryption_headers, endpoint};
    use crate::config::CacheS3;

    fn s3() -> CacheS3 {
        CacheS3 {
            bucket_name: Some("runner-cache".into()),
            ..CacheS3::default()
        }
    }

    #[test]
    fn endpoints_follow_insecure_and_drop_canonical_ports() {
        let mut config = s3();
        config.server_address = Some("minio.local:443".into());
        assert_eq!(endpoint(&config).as_deref(), Some("https://minio.local"));
        config.insecure = Some(true);
        config.server_address = Some("127.0.0.1:9000".into());
        assert_eq!(endpoint(&config).as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn custom_endpoints_are_path_style_unless_told_otherwise() {
        let mut config = s3();
        config.server_address = Some("127.0.0.1:9000".into());
        config.insecure = Some(true);
        assert_eq!(
            bucket_endpoint(&config, "runner-cache", "us-east-1"),
            ("http://127.0.0.1:9000".into(), false)
        );
        config.path_style = Some(false);
        assert_eq!(
            bucket_endpoint(&config, "runner-cache", "us-east-1"),
            ("http://runner-cache.127.0.0.1:9000".into(), true)
        );
    }

    #[test]
    fn aws_urls_use_dual_stack_by_default_and_accelerate_when_asked() {
        let mut config = s3();
        assert_eq!(
            bucket_endpoint(&config, "runner-cache", "eu-west-1"),
            (
                "https://runner-cache.s3.dualstack.eu-west-1.amazonaws.com".into(),
                true
            )
        );
        config.dual_stack = Some(false);
        config.server_address = Some("s3.amazonaws.com".into());
        assert_eq!(
            bucket_endpoint(&config, "runner-cache", "eu-west-1"),
            (
                "https://runner-cache.s3.eu-west-1.amazonaws.com".into(),
                true
            )
        );
        config.accelerate = Some(true);
        assert_eq!(
            bucket_endpoint(&config, "runner-cache", "eu-west-1"),
            (
                "https://runner-cache.s3-accelerate.amazonaws.com".into(),
                true
            )
        );
        // A dotted bucket cannot be a host name under https.
        config.accelerate = None;
        assert_eq!(
            bucket_endpoint(&config, "a.b", "eu-west-1"),
            ("https://s3.eu-west-1.amazonaws.com".into(), false)
        );
    }

    #[test]
    fn authentication_type_defaults_as_gitlab_runner() {
        let mut config = s3();
        assert_eq!(auth_type(&config).ok(), Some(AuthType::Iam));
        config.server_address = Some("s3.local".into());
        config.access_key = Some("id".into());
        config.secret_key = Some("secret".into());
        assert_eq!(auth_type(&config).ok(), Some(AuthType::AccessKey));
        config.authentication_type = Some("IAM".into());
        assert_eq!(auth_type(&config).ok(), Some(AuthType::Iam));
        config.authentication_type = Some("token".into());
        assert!(auth_type(&config).is_err());
    }

    #[test]
    fn server_side_encryption_becomes_signed_headers() {
        let mut config = s3();
        let mut warnings = Vec::new();
        config.server_side_encryption = Some("KMS".into());
        config.server_side_encryption_key_id = Some("alias/cache".into());
        let headers: Vec<(String, String)> = encryption_headers(&config, &mut warnings)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-amz-server-side-encryption".into(), "aws:kms".into()),
                (
                    "x-amz-server-side-encryption-aws-kms-key-id".into(),
                    "alias/cache".into()
                )
            ]
        );
        config.server_side_encryption = Some("rot13".into());
        assert!(encryption_headers(&config, &mut warnings).is_empty());
        assert_eq!(warnings.len(), 1);
    }
}
