//! The settings of the Docker executor: gitlab-runner's `[runners.docker]` section, as plain data
//! the runner daemon fills from `config.toml` and `runnel exec` fills from its flags.
//!
//! GitLab: gitlab-runner `common/config.go` `DockerConfig` (key names, defaults, units).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// gitlab-runner's `DefaultWaitForServicesTimeout`: 30 seconds.
pub const DEFAULT_WAIT_FOR_SERVICES_TIMEOUT: Duration = Duration::from_secs(30);

/// `[runners.docker]`: where and how job containers run. Every field has gitlab-runner's default
/// when left at its `Default` value.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    /// `host`: the engine's address (`unix:///var/run/docker.sock`, `tcp://…`); `None` uses
    /// `DOCKER_HOST` or the local socket.
    pub host: Option<String>,
    /// `image`: the image of jobs that name none.
    pub image: Option<String>,
    /// `pull_policy`: tried in order; empty means `[always]`.
    pub pull_policy: Vec<PullPolicy>,
    /// `allowed_pull_policies`: empty means whatever `pull_policy` says.
    pub allowed_pull_policies: Vec<PullPolicy>,
    /// `allowed_images`: globs (`*` stops at `/`, `**` does not); empty allows every image.
    pub allowed_images: Vec<String>,
    /// `allowed_services`: as `allowed_images`, for `services:` (the runner's own
    /// [`services`](Self::services) are always allowed).
    pub allowed_services: Vec<String>,
    /// `privileged` (off by default).
    pub privileged: bool,
    /// `services_privileged`: whether service containers run privileged; `None` follows
    /// `privileged`.
    pub services_privileged: Option<bool>,
    /// `allowed_privileged_images`: with `privileged`, only job containers of a matching image
    /// (globs as `allowed_images`) run privileged; empty allows every image.
    pub allowed_privileged_images: Vec<String>,
    /// `allowed_privileged_services`: the same for service containers.
    pub allowed_privileged_services: Vec<String>,
    /// `[[services]]`: services started for every job, before the job's own `services:`.
    /// Their names and variables are expanded with the job's variables.
    pub services: Vec<runnel_api::Image>,
    /// `services_limit`: the most services (the runner's and the job's together) a job may
    /// have; `None` is no limit.
    pub services_limit: Option<usize>,
    /// `volumes`: `host:container[:mode]` binds, or a container path for a cache volume.
    pub volumes: Vec<String>,
    /// `cache_dir`: where cache volumes (container-only `volumes`) live on the host; `None` keeps
    /// them as Docker volumes.
    pub cache_dir: Option<PathBuf>,
    /// `disable_cache`: no cache volumes for container-only `volumes`.
    pub disable_cache: bool,
    /// `network_mode`: `bridge`, `host`, `none`, or a network name; `None` makes a network per job.
    pub network_mode: Option<String>,
    /// `memory`: `512m`, `2g`, … (Docker's units).
    pub memory: Option<String>,
    /// `memory_swap`.
    pub memory_swap: Option<String>,
    /// `memory_reservation`.
    pub memory_reservation: Option<String>,
    /// `cpus`: `1.5`.
    pub cpus: Option<String>,
    /// `cpuset_cpus`: `0,1`.
    pub cpuset_cpus: Option<String>,
    /// `user`: the user scripts run as in the job container; it wins over the job's
    /// `image:docker:user`.
    pub user: Option<String>,
    /// `allowed_users`: the users a job's `image:docker:user` may name; empty allows only
    /// `user` when that is set, else any user.
    pub allowed_users: Vec<String>,
    /// `hostname`: the job container's host name.
    pub hostname: Option<String>,
    /// `extra_hosts`: `host:ip` lines for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// `dns`.
    pub dns: Vec<String>,
    /// `dns_search`.
    pub dns_search: Vec<String>,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `security_opt`.
    pub security_opt: Vec<String>,
    /// `shm_size` in bytes.
    pub shm_size: Option<i64>,
    /// `wait_for_services_timeout`; `None` is 30 s, zero skips the wait.
    pub wait_for_services_timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a stage is stopped (cancel, timeout).
    pub stop_timeout: Duration,
    /// runnel's own: give the build directories back to this `uid:gid` when the job ends
    /// (`runnel exec` run by a user other than root, so files a root container wrote stay
    /// the user's). `None` leaves them as the container wrote them, as gitlab-runner does.
    pub builds_owner: Option<(u32, u32)>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            image: None,
            pull_policy: Vec::new(),
            allowed_pull_policies: Vec::new(),
            allowed_images: Vec::new(),
            allowed_services: Vec::new(),
            privileged: false,
            services_privileged: None,
            allowed_privileged_images: Vec::new(),
            allowed_privileged_services: Vec::new(),
            services: Vec::new(),
            services_limit: None,
            volumes: Vec::new(),
            cache_dir: None,
            disable_cache: false,
            network_mode: None,
            memory: None,
            memory_swap: None,
            memory_reservation: None,
            cpus: None,
            cpuset_cpus: None,
            user: None,
            allowed_users: Vec::new(),
            hostname: None,
            extra_hosts: Vec::new(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            security_opt: Vec::new(),
            shm_size: None,
            wait_for_services_timeout: None,
            stop_timeout: Duration::from_secs(10),
            builds_owner: None,
        }
    }
}

impl DockerConfig {
    /// The runner's pull policies: `pull_policy`, else `[always]`.
    pub fn pull_policies(&self) -> Vec<PullPolicy> {
        if self.pull_policy.is_empty() {
            vec![PullPolicy::Always]
        } else {
            self.pull_policy.clone()
        }
    }

    /// The allowed pull policies: `allowed_pull_policies`, else the runner's pull policies
    /// (gitlab-runner `GetAllowedPullPolicies`).
    pub fn allowed_pull_policies(&self) -> Vec<PullPolicy> {
        if self.allowed_pull_policies.is_empty() {
            self.pull_policies()
        } else {
            self.allowed_pull_policies.clone()
        }
    }

    /// The owner of `path` as a `builds_owner`, unless it is root (a root-owned tree needs no
    /// giving back).
    pub fn owner_unless_root(path: &std::path::Path) -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
    }

    /// Checks the values a user typed (sizes, CPUs) so a bad `config.toml` fails at load time.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("memory", &self.memory),
            ("memory_swap", &self.memory_swap),
            ("memory_reservation", &self.memory_reservation),
        ] {
            if let Some(value) = value {
                parse_size(value).ok_or_else(|| ConfigError::Invalid {
                    key,
                    value: value.clone(),
                    expected: "a size such as `512m` or `2g`",
                })?;
            }
        }
        if let Some(cpus) = &self.cpus {
            parse_nano_cpus(cpus).ok_or_else(|| ConfigError::Invalid {
                key: "cpus",
                value: cpus.clone(),
                expected: "a positive number such as `1.5`",
            })?;
        }
        Ok(())
    }
}

/// A value in `[runners.docker]` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value of the wrong form.
    #[error("`{key}` is `{value}`, expected {expected}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
}

/// When an image is pulled (gitlab-runner `common.DockerPullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Use the local image when there is one, else pull.
    IfNotPresent,
    /// Only use local images.
    Never,
}

impl PullPolicy {
    /// GitLab's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::IfNotPresent => "if-not-present",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "always" => Ok(Self::Always),
            "if-not-present" => Ok(Self::IfNotPresent),
            "never" => Ok(Self::Never),
            _ => Err(format!(
                "unknown pull policy `{text}`, expected `always`, `if-not-present` or `never`"
            )),
        }
    }
}

/// Formats a list of policies as gitlab-runner prints a Go slice: `[always if-not-present]`.
pub(crate) fn policy_list(policies: &[PullPolicy]) -> String {
    let names: Vec<&str> = policies.iter().map(|p| p.as_str()).collect();
    format!("[{}]", names.join(" "))
}

/// Parses a size in Docker's units (`units.RAMInBytes`): a number with an optional `b`, `k`,
/// `m`, `g`, `t` suffix (1024-based; a trailing `b` after the unit is allowed).
pub(crate) fn parse_size(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (number, scale) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1i64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    let number: f64 = number.trim().parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    Some((number * scale as f64) as i64)
}

/// Parses `cpus` (`1.5`) into nano-CPUs.
pub(crate) fn parse_nano_cpus(text: &str) -> Option<i64> {
    let cpus: f64 = text.trim().parse().ok()?;
    (cpus.is_finite() && cpus > 0.0).then_some((cpus * 1e9) as i64)
}

#[cfg(test)]
mod tests {
    use super::{DockerConfig, PullPolicy, parse_nano_cpus, parse_size};

    #[test]
    fn sizes_use_docker_units() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_nano_cpus("1.5"), Some(1_500_000_000));
        assert_eq!(parse_nano_cpus("0"), None);
    }

    #[test]
    fn pull_policies_default_to_always_and_allow_what_is_configured() {
        let config = DockerConfig::default();
        assert_eq!(config.pull_policies(), vec![PullPolicy::Always]);
        assert_eq!(config.allowed_pull_policies(), vec![PullPolicy::Always]);
        let config = DockerConfig {
            pull_policy: vec![PullPolicy::IfNotPresent],
            ..DockerConfig::default()
        };
        assert_eq!(
            config.allowed_pull_policies(),
            vec![PullPolicy::IfNotPresent]
        );
        assert!("sometimes".parse::<PullPolicy>().is_err());
        assert_eq!("If-Not-Present".parse(), Ok(PullPolicy::IfNotPresent));
    }

    #[test]
    fn bad_sizes_are_reported_with_their_key() {
        let config = DockerConfig {
            memory: Some("lots".into()),
            ..DockerConfig::default()
        };
        let err = config.validate().expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "`memory` is `lots`, expected a size such as `512m` or `2g`"
        );
    }
}
