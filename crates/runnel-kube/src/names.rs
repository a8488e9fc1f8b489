//! Names and labels of what the executor creates: the pod and secret names, label values,
//! service host names, and runnel's own labels the leftover sweep selects on.
//!
//! GitLab: gitlab-runner `executors/kubernetes/util.go` (`sanitizeLabel`,
//! `generateNameForK8sResources`), `helpers/container/services` (`SplitNameAndVersion`: default
//! aliases) and `helpers/dns` (DNS-1123).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use runnel_api::Image;

/// Every object runnel creates carries `runnel.dev/managed=true`.
pub const MANAGED_LABEL: &str = "runnel.dev/managed";
/// The short token of the runner that created it: the sweep removes only its own runners'.
pub const RUNNER_LABEL: &str = "runnel.dev/runner";
/// The job id.
pub const JOB_LABEL: &str = "runnel.dev/job";

/// gitlab-runner `sanitizeLabel`: characters outside `[A-Za-z0-9._-]` become `_`, at most 63
/// characters, starting and ending with an alphanumeric one.
pub(crate) fn sanitize_label(value: &str) -> String {
    let replaced: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    replaced
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Whether `name` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn valid_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn valid_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(valid_dns_label)
}

/// A DNS-1123 name from `base` with a random suffix (gitlab-runner
/// `generateNameForK8sResources`): lower case, invalid characters as `-`, at most 63.
pub(crate) fn unique_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = [0u8; 4];
    let random = if getrandom::fill(&mut seed).is_ok() {
        u64::from(u32::from_le_bytes(seed))
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed)
    };
    let suffix = format!("{:08x}", random & 0xffff_ffff);
    let mut name: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63 - suffix.len() - 1);
    let name = name.trim_matches('-');
    format!("{name}-{suffix}")
}

/// The host names a service answers to: gitlab-runner's defaults from the image name
/// (`tutum/wordpress:latest` → `tutum__wordpress`, `tutum-wordpress`), then its `alias`.
pub(crate) fn service_aliases(service: &Image, image: &str) -> Vec<String> {
    let mut aliases = Vec::new();
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].rfind(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    if !name.is_empty() {
        let service_name = match name.split_once('/') {
            Some((first, rest)) if first.contains(':') => {
                format!("{}/{rest}", first.split(':').next().unwrap_or(first))
            }
            _ => name.to_owned(),
        };
        aliases.push(service_name.replace('/', "__"));
        let dashed = service_name.replace('/', "-");
        if dashed != aliases[0] {
            aliases.push(dashed);
        }
    }
    for alias in service.aliases() {
        if !aliases.iter().any(|a| a == alias) {
            aliases.push(alias.to_owned());
        }
    }
    aliases
}

/// Whether `name` matches the glob `pattern` as gitlab-runner's `doublestar.Match` does
/// (`allowed_images`, `allowed_services`).
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .is_ok_and(|glob| glob.compile_matcher().is_match(name))
}

#[cfg(test)]
mod tests {
    use super::{sanitize_label, service_aliases, unique_name, valid_dns_label};
    use runnel_api::Image;

    #[test]
    fn labels_are_sanitized_like_gitlab_runner() {
        assert_eq!(sanitize_label("group/sub project"), "group_sub_project");
        assert_eq!(sanitize_label("-x-"), "x");
        assert_eq!(sanitize_label(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn unique_names_are_dns_labels() {
        let name = unique_name("runner-ABC_def-project-1-concurrent-0");
        assert!(valid_dns_label(&name), "{name}");
        assert!(name.starts_with("runner-abc-def-project-1-concurrent-0-"));
        let long = unique_name(&"x".repeat(100));
        assert!(valid_dns_label(&long) && long.len() <= 63, "{long}");
    }

    #[test]
    fn service_aliases_are_gitlab_runner_defaults_then_alias() {
        let service = Image {
            alias: "db,pg".to_owned(),
            ..Image::default()
        };
        assert_eq!(
            service_aliases(&service, "registry:5000/tutum/postgres:15"),
            [
                "registry__tutum__postgres",
                "registry-tutum-postgres",
                "db",
                "pg"
            ]
        );
    }
}
