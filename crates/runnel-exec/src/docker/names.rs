//! Names of what the Docker executor creates: service host names (GitLab's alias rules),
//! container and network names, and labels.
//!
//! GitLab: gitlab-runner `executors/docker/docker.go` `splitServiceAndVersion` (aliases) and
//! `executors/docker/internal/labels/labels.go` (labels).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use runnel_api::Image;

use crate::executor::PreparedJob;

/// The label every object runnel creates carries (`dev.runnel.managed=true`): what the
/// leftover checks and `remove_leftovers` filter on.
pub const MANAGED_LABEL: &str = "dev.runnel.managed";
/// The label with the job id (`dev.runnel.job=<id>`).
pub const JOB_LABEL: &str = "dev.runnel.job";
/// gitlab-runner's label prefix.
const GITLAB_PREFIX: &str = "com.gitlab.gitlab-runner";
/// gitlab-runner's label with the runner's short token, which scopes the start-up sweep.
pub(crate) const RUNNER_ID_LABEL: &str = "com.gitlab.gitlab-runner.runner.id";

/// A service image name split as gitlab-runner does: the name without tag, digest or registry
/// port (`registry:5000/tutum/wordpress:latest` → `registry/tutum/wordpress`) and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceName {
    pub(crate) service: String,
    pub(crate) version: String,
}

impl ServiceName {
    pub(crate) fn parse(image: &str) -> Option<Self> {
        let (without_digest, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (image, None),
        };
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match without_digest[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                (&without_digest[..at], Some(&without_digest[at + 1..]))
            }
            None => (without_digest, None),
        };
        if name.is_empty() {
            return None;
        }
        // A registry port in the first component is not part of the host name.
        let service = match name.split_once('/') {
            Some((first, rest)) if first.contains(':') => {
                let host = first.split(':').next().unwrap_or(first);
                format!("{host}/{rest}")
            }
            _ => name.to_owned(),
        };
        let version = tag.or(digest).unwrap_or("latest").to_owned();
        Some(Self { service, version })
    }

    /// GitLab's default host names: `/` → `__`, and the RFC 1123 form `/` → `-` when it differs.
    pub(crate) fn default_aliases(&self) -> Vec<String> {
        let mut aliases = vec![self.service.replace('/', "__")];
        let dashed = self.service.replace('/', "-");
        if dashed != aliases[0] {
            aliases.push(dashed);
        }
        aliases
    }
}

/// Every host name a service answers to: the defaults, then `alias:` (split on spaces and commas).
pub(crate) fn service_aliases(service: &Image, expanded_name: &str) -> Vec<String> {
    let mut aliases = ServiceName::parse(expanded_name)
        .map(|name| name.default_aliases())
        .unwrap_or_default();
    for alias in service.aliases() {
        if !aliases.iter().any(|a| a == alias) {
            aliases.push(alias.to_owned());
        }
    }
    aliases
}

/// A prefix unique to one job run: `runnel-<job id>-<random>`.
pub(crate) fn unique_prefix(job_id: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("runnel-{job_id}-{:08x}", mixed & 0xffff_ffff)
}

/// A name made safe for a container name: `[a-zA-Z0-9_.-]`.
pub(crate) fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// gitlab-runner's labels plus runnel's own, for a container of `kind` (`build`, `service`).
pub(crate) fn labels(
    job: &PreparedJob,
    kind: &str,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let payload = &job.payload;
    let var = |key: &str| job.variables.get(key).unwrap_or_default().to_owned();
    let mut labels = HashMap::new();
    let mut gitlab = |key: &str, value: String| {
        labels.insert(format!("{GITLAB_PREFIX}.{key}"), value);
    };
    gitlab("job.id", payload.id.0.to_string());
    gitlab("job.url", var("CI_JOB_URL"));
    gitlab("job.sha", payload.git_info.sha.clone());
    gitlab("job.before_sha", payload.git_info.before_sha.clone());
    gitlab("job.ref", payload.git_info.ref_name.clone());
    gitlab("job.timeout", var("CI_JOB_TIMEOUT"));
    gitlab("project.id", payload.job_info.project_id.to_string());
    gitlab("pipeline.id", var("CI_PIPELINE_ID"));
    gitlab("runner.id", var("CI_RUNNER_SHORT_TOKEN"));
    gitlab("runner.local_id", "0".to_owned());
    gitlab("managed", "true".to_owned());
    gitlab("type", kind.to_owned());
    for (key, value) in extra {
        gitlab(key, (*value).to_owned());
    }
    labels.insert(MANAGED_LABEL.to_owned(), "true".to_owned());
    labels.insert(JOB_LABEL.to_owned(), payload.id.0.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use runnel_api::Image;

    use super::{ServiceName, service_aliases, slug};

    fn aliases(name: &str) -> Vec<String> {
        ServiceName::parse(name)
            .expect("a valid name")
            .default_aliases()
    }

    #[test]
    fn service_aliases_follow_gitlab_rules() {
        assert_eq!(
            aliases("tutum/wordpress:latest"),
            ["tutum__wordpress", "tutum-wordpress"]
        );
        assert_eq!(aliases("postgres:15"), ["postgres"]);
        assert_eq!(aliases("python"), ["python"]);
        assert_eq!(
            aliases("registry.example.com:5000/group/app:1.0"),
            [
                "registry.example.com__group__app",
                "registry.example.com-group-app"
            ]
        );
        assert_eq!(aliases("mysql@sha256:abcd"), ["mysql"]);
    }

    #[test]
    fn versions_default_to_latest() {
        let name = ServiceName::parse("redis").expect("valid");
        assert_eq!(name.version, "latest");
        let name = ServiceName::parse("localhost:5000/redis:7").expect("valid");
        assert_eq!(
            (name.service.as_str(), name.version.as_str()),
            ("localhost/redis", "7")
        );
    }

    #[test]
    fn explicit_aliases_come_after_the_defaults() {
        let service = Image {
            name: "python:3.11-slim".into(),
            alias: "web, api".into(),
            ..Image::default()
        };
        assert_eq!(
            service_aliases(&service, &service.name),
            ["python", "web", "api"]
        );
    }

    #[test]
    fn slugs_are_container_name_safe() {
        assert_eq!(slug("tutum/wordpress:latest"), "tutum_wordpress_latest");
    }
}
