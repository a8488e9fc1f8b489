//! The typed form of gitlab-runner's `config.toml`: the global keys, `[[runners]]` and the
//! executor and cache sections. Key names are gitlab-runner's (`common/config.go`,
//! `cache/cacheconfig/cacheconfig.go`), including its dashes (`tls-ca-file`) and the CamelCase
//! of the cache sections. Defaults are applied by the accessor methods, not by serde, so a
//! rewritten file never gains keys the user did not write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Worker slots: the most jobs this process runs at once. gitlab-runner writes 1 in a new file.
    pub concurrent: Option<i64>,
    /// Seconds between two rounds over all `[[runners]]`; 0 or less means 3.
    pub check_interval: Option<i64>,
    /// `debug`, `info`, `warn`, `error`, `fatal` or `panic`.
    pub log_level: Option<String>,
    /// `runner`, `text` or `json`.
    pub log_format: Option<String>,
    /// `host:port` of the metrics server; the port defaults to 9252.
    pub listen_address: Option<String>,
    /// Seconds to wait for aborted jobs to report on SIGTERM/SIGINT (default 30).
    pub shutdown_timeout: Option<i64>,
    /// Sentry DSN (accepted, not used).
    pub sentry_dsn: Option<String>,
    /// TLS connection recycle age, a Go duration (accepted, not used).
    pub connection_max_age: Option<String>,
    /// Set by `run --user` in gitlab-runner (accepted, not used).
    pub user: Option<String>,
    /// Labels merged into each runner's `labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `[session_server]`: the web terminal (see [`crate::session`]).
    pub session_server: Option<SessionServer>,
    /// The registered runners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<RunnerConfig>,
}

impl Config {
    /// `concurrent`, 1 when unset.
    pub fn concurrent(&self) -> usize {
        usize::try_from(self.concurrent.unwrap_or(1))
            .unwrap_or(1)
            .max(1)
    }

    /// `check_interval` in seconds; gitlab-runner uses 3 for an unset, zero or negative value.
    pub fn check_interval_secs(&self) -> u64 {
        match self.check_interval {
            Some(secs) if secs > 0 => secs.unsigned_abs(),
            _ => 3,
        }
    }

    /// `shutdown_timeout` in seconds, 30 when unset.
    pub fn shutdown_timeout_secs(&self) -> u64 {
        match self.shutdown_timeout {
            Some(secs) if secs > 0 => secs.unsigned_abs(),
            _ => 30,
        }
    }
}

/// `[session_server]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionServer {
    /// Where the session server listens.
    pub listen_address: Option<String>,
    /// The address advertised to GitLab.
    pub advertise_address: Option<String>,
    /// Seconds a terminal may outlive its job.
    pub session_timeout: Option<i64>,
}

/// One `[[runners]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerConfig {
    /// The local description.
    #[serde(default)]
    pub name: String,
    /// The GitLab root URL.
    #[serde(default)]
    pub url: String,
    /// The runner id from register/verify.
    pub id: Option<i64>,
    /// The runner authentication token.
    #[serde(default)]
    pub token: String,
    /// When `token` was obtained.
    pub token_obtained_at: Option<toml::value::Datetime>,
    /// When `token` expires; `0001-01-01T00:00:00Z` means never.
    pub token_expires_at: Option<toml::value::Datetime>,
    /// CA file for the GitLab connection.
    #[serde(rename = "tls-ca-file")]
    pub tls_ca_file: Option<String>,
    /// Client certificate.
    #[serde(rename = "tls-cert-file")]
    pub tls_cert_file: Option<String>,
    /// Client key.
    #[serde(rename = "tls-key-file")]
    pub tls_key_file: Option<String>,
    /// `shell`, `docker`, `kubernetes`, `ssh`, `custom`, …
    #[serde(default)]
    pub executor: String,
    /// `bash`, `sh`, `pwsh`, `powershell`.
    pub shell: Option<String>,
    /// Where projects are checked out.
    pub builds_dir: Option<String>,
    /// Where local cache archives are kept.
    pub cache_dir: Option<String>,
    /// Jobs in flight for this entry; 0 is unlimited.
    pub limit: Option<i64>,
    /// `POST /jobs/request` calls in flight for this entry (default 1).
    pub request_concurrency: Option<i64>,
    /// Do not re-poll at once after receiving a job.
    pub strict_check_interval: Option<bool>,
    /// The trace size limit in KiB (default 4096).
    pub output_limit: Option<i64>,
    /// `KEY=value` entries added to every job's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Runs before the sources are fetched.
    pub pre_get_sources_script: Option<String>,
    /// Runs after the sources are fetched.
    pub post_get_sources_script: Option<String>,
    /// Runs before the user script, in the same shell.
    pub pre_build_script: Option<String>,
    /// Runs after the user script, in the same shell.
    pub post_build_script: Option<String>,
    /// Replaces scheme and host of the repository URL for cloning.
    pub clone_url: Option<String>,
    /// Forbid `CI_DEBUG_TRACE`.
    pub debug_trace_disabled: Option<bool>,
    /// Add `safe.directory` for the project directory.
    pub safe_directory_checkout: Option<bool>,
    /// Clean `.git/config` and hooks between jobs.
    pub clean_git_config: Option<bool>,
    /// Preparation timeout, a Go duration.
    pub prepare_timeout: Option<String>,
    /// `get_sources` timeout, a Go duration.
    pub get_sources_timeout: Option<String>,
    /// Unhealthy requests before the entry is paused (default 3).
    pub unhealthy_requests_limit: Option<i64>,
    /// How long an unhealthy entry is paused, a Go duration (default 60m).
    pub unhealthy_interval: Option<String>,
    /// Retries of the final job update (default 10).
    pub job_status_final_update_retry_limit: Option<i64>,
    /// `[runners.feature_flags]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_flags: BTreeMap<String, bool>,
    /// Sent as `info.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `[runners.custom_build_dir]`.
    pub custom_build_dir: Option<CustomBuildDir>,
    /// `[runners.artifact]`.
    pub artifact: Option<ArtifactConfig>,
    /// `[runners.cache]`.
    pub cache: Option<CacheConfig>,
    /// `[runners.docker]`.
    pub docker: Option<super::executors::DockerConfig>,
    /// `[runners.kubernetes]`.
    pub kubernetes: Option<super::executors::KubernetesConfig>,
    /// `[runners.ssh]`.
    pub ssh: Option<super::executors::SshConfig>,
    /// `[runners.virtualbox]`.
    pub virtualbox: Option<super::executors::VirtualBoxConfig>,
    /// `[runners.parallels]`.
    pub parallels: Option<super::executors::ParallelsConfig>,
    /// `[runners.custom]`.
    pub custom: Option<super::executors::CustomConfig>,
    /// `[runners.referees]` (accepted, not used).
    pub referees: Option<toml::Value>,
    /// `[runners.monitoring]` (accepted, not used).
    pub monitoring: Option<toml::Value>,
    /// `[runners.machine]` (accepted, not used: no docker+machine executor).
    pub machine: Option<toml::Value>,
    /// `[runners.autoscaler]` (accepted, not used).
    pub autoscaler: Option<toml::Value>,
}

impl RunnerConfig {
    /// `limit`: `None` is unlimited.
    pub fn limit(&self) -> Option<usize> {
        match self.limit {
            Some(limit) if limit > 0 => usize::try_from(limit).ok(),
            _ => None,
        }
    }

    /// `request_concurrency`, at least 1.
    pub fn request_concurrency(&self) -> usize {
        usize::try_from(self.request_concurrency.unwrap_or(1))
            .unwrap_or(1)
            .max(1)
    }

    /// `output_limit` in bytes (gitlab-runner: 4096 KiB when unset or 0).
    pub fn output_limit_bytes(&self) -> u64 {
        match self.output_limit {
            Some(kib) if kib > 0 => kib.unsigned_abs() * 1024,
            _ => 4096 * 1024,
        }
    }

    /// `unhealthy_requests_limit`, 3 when unset.
    pub fn unhealthy_requests_limit(&self) -> u32 {
        match self.unhealthy_requests_limit {
            Some(limit) if limit > 0 => u32::try_from(limit).unwrap_or(u32::MAX),
            _ => 3,
        }
    }

    /// The first 9 characters of the token after its prefix, as gitlab-runner's
    /// `helpers/shorten_token.go`: the name used in logs and metrics labels.
    pub fn short_token(&self) -> String {
        short_token(&self.token)
    }
}

/// Shortens a token as gitlab-runner's `helpers.ShortenToken`: strips `glrt-` (with an optional
/// `t1_`…`t3_` partition), `glrtr-`, `glcbt-` or a `GR1348941`-style prefix, then keeps 9
/// characters.
pub fn short_token(token: &str) -> String {
    let mut rest = token;
    for prefix in ["glrtr-", "glrt-", "glcbt-"] {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            rest = stripped;
            break;
        }
    }
    for partition in ["t1_", "t2_", "t3_"] {
        if let Some(stripped) = rest.strip_prefix(partition) {
            rest = stripped;
            break;
        }
    }
    let bytes = rest.as_bytes();
    if bytes.len() > 9
        && bytes[0] == b'G'
        && bytes[1] == b'R'
        && bytes[2..9].iter().all(u8::is_ascii_hexdigit)
    {
        rest = &rest[9..];
    }
    rest.chars().take(9).collect()
}

/// `[runners.custom_build_dir]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomBuildDir {
    /// Allow `GIT_CLONE_PATH`.
    pub enabled: Option<bool>,
}

/// `[runners.artifact]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactConfig {
    /// Upload timeout, a Go duration.
    pub upload_timeout: Option<String>,
    /// Response header timeout, a Go duration.
    pub response_header_timeout: Option<String>,
}

/// `[runners.cache]` (CamelCase keys, as gitlab-runner's `cacheconfig.Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheConfig {
    /// `s3`, `gcs` or `azure`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Object name prefix.
    pub path: Option<String>,
    /// Share the cache between runners.
    pub shared: Option<bool>,
    /// Largest archive uploaded, in bytes.
    pub max_uploaded_archive_size: Option<i64>,
    /// `[runners.cache.s3]`.
    #[serde(rename = "s3")]
    pub s3: Option<CacheS3>,
    /// `[runners.cache.gcs]`.
    #[serde(rename = "gcs")]
    pub gcs: Option<CacheGcs>,
    /// `[runners.cache.azure]`.
    #[serde(rename = "azure")]
    pub azure: Option<CacheAzure>,
}

/// `[runners.cache.s3]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheS3 {
    /// Endpoint `host[:port]`.
    pub server_address: Option<String>,
    /// Access key id.
    pub access_key: Option<String>,
    /// Secret key.
    pub secret_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Bucket.
    pub bucket_name: Option<String>,
    /// Region.
    pub bucket_location: Option<String>,
    /// Plain HTTP.
    pub insecure: Option<bool>,
    /// `iam` or `access-key`.
    pub authentication_type: Option<String>,
    /// `S3`, `KMS` or `DSSE-KMS`.
    pub server_side_encryption: Option<String>,
    /// KMS key id.
    #[serde(rename = "ServerSideEncryptionKeyID")]
    pub server_side_encryption_key_id: Option<String>,
    /// Dual-stack endpoints.
    pub dual_stack: Option<bool>,
    /// Path-style addressing.
    pub path_style: Option<bool>,
    /// Transfer acceleration.
    pub accelerate: Option<bool>,
    /// Role to assume.
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    /// Role to assume for uploads.
    #[serde(rename = "UploadRoleARN")]
    pub upload_role_arn: Option<String>,
}

/// `[runners.cache.gcs]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheGcs {
    /// Service account JSON file.
    pub credentials_file: Option<String>,
    /// Access id.
    #[serde(rename = "AccessID")]
    pub access_id: Option<String>,
    /// Private key.
    pub private_key: Option<String>,
    /// Bucket.
    pub bucket_name: Option<String>,
    /// Universe domain.
    pub universe_domain: Option<String>,
}

/// `[runners.cache.azure]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheAzure {
    /// Account name.
    pub account_name: Option<String>,
    /// Account key.
    pub account_key: Option<String>,
    /// Container.
    pub container_name: Option<String>,
    /// Storage domain.
    pub storage_domain: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::short_token;

    #[test]
    fn short_token_strips_gitlab_prefixes_and_keeps_nine_characters() {
        assert_eq!(short_token("glrt-t1_AbCdEfGhIjKl"), "AbCdEfGhI");
        assert_eq!(short_token("glrt-AbCdEfGhIjKl"), "AbCdEfGhI");
        assert_eq!(short_token("glrtr-xyz123456789"), "xyz123456");
        assert_eq!(short_token("GR1348941abcdefghijk"), "abcdefghi");
        assert_eq!(short_token("plain"), "plain");
    }
}
