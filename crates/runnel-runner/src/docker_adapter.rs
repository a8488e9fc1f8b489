//! Runs payloads with `runnel-exec`'s Docker executor (`executor = "docker"`), and picks the
//! executor of each `[[runners]]` entry ([`RunnerExecutors`]).
//!
//! GitLab: gitlab-runner `common/config.go` (`DockerConfig` keys and defaults,
//! `GetWaitForServicesTimeout`, `GetPullPolicies`, `GetServicesLimit`, `Service`) and
//! `executors/docker` (image and services from the payload, the runner's `image` as the
//! fallback, the runner's `[[services]]` before the job's).

use std::time::Duration;

use runnel_api::{FailureReason, FeaturesInfo, Image, JobPayload, JobVariable};
use runnel_exec::docker::{ConfigError, DockerConfig as ExecDockerConfig, PullPolicy};

use crate::config::{DockerConfig, DockerService, RunnerConfig};
use crate::exec_adapter::{KILL_GRACE, ShellJobExecutor, exec_outcome};
use crate::executor::{ExecFuture, ExecOutcome, ExecStatus, JobContext, JobExecutor, StartUp};

/// A `[runners.docker]` section runnel cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerSettingsError {
    /// `pull_policy` or `allowed_pull_policies` names an unknown policy or is not a string
    /// or a list of strings.
    #[error("`runners.docker.{key}`: {message}")]
    PullPolicy {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A size or CPU count of the wrong form.
    #[error("`runners.docker.{0}")]
    Invalid(String),
    /// A `[[runners.docker.services]]` entry without a `name`.
    #[error("`runners.docker.services[{index}]` has no `name`")]
    ServiceName {
        /// The entry's index, from 0.
        index: usize,
    },
}

impl From<ConfigError> for DockerSettingsError {
    fn from(err: ConfigError) -> Self {
        // `ConfigError` renders as "`key` is …"; keep its text after our prefix.
        Self::Invalid(err.to_string().trim_start_matches('`').to_owned())
    }
}

/// The `runnel-exec` Docker settings of a `[[runners]]` entry: its `[runners.docker]` (absent
/// means every default), with relative directories resolved by `dirs`.
pub fn docker_settings(
    runner: &RunnerConfig,
    dirs: &ShellJobExecutor,
) -> Result<ExecDockerConfig, DockerSettingsError> {
    let default = DockerConfig::default();
    let docker = runner.docker.as_ref().unwrap_or(&default);
    let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let settings = ExecDockerConfig {
        host: nonempty(&docker.host),
        image: nonempty(&docker.image),
        pull_policy: pull_policies("pull_policy", docker.pull_policy.as_ref())?,
        allowed_pull_policies: docker
            .allowed_pull_policies
            .iter()
            .map(|p| parse_policy("allowed_pull_policies", p))
            .collect::<Result<_, _>>()?,
        allowed_images: docker.allowed_images.clone(),
        allowed_services: docker.allowed_services.clone(),
        privileged: docker.privileged.unwrap_or(false),
        services_privileged: docker.services_privileged,
        allowed_privileged_images: docker.allowed_privileged_images.clone(),
        allowed_privileged_services: docker.allowed_privileged_services.clone(),
        services: runner_services(&docker.services)?,
        // gitlab-runner `GetServicesLimit`: unset or negative is no limit.
        services_limit: docker
            .services_limit
            .and_then(|limit| usize::try_from(limit).ok()),
        volumes: docker.volumes.clone(),
        cache_dir: nonempty(&docker.cache_dir).map(|dir| dirs.resolve(&dir)),
        disable_cache: docker.disable_cache.unwrap_or(false),
        network_mode: nonempty(&docker.network_mode),
        memory: nonempty(&docker.memory),
        memory_swap: nonempty(&docker.memory_swap),
        memory_reservation: nonempty(&docker.memory_reservation),
        cpus: nonempty(&docker.cpus),
        cpuset_cpus: nonempty(&docker.cpuset_cpus),
        user: nonempty(&docker.user),
        allowed_users: docker.allowed_users.clone(),
        hostname: nonempty(&docker.hostname),
        extra_hosts: docker.extra_hosts.clone(),
        dns: docker.dns.clone(),
        dns_search: docker.dns_search.clone(),
        cap_add: docker.cap_add.clone(),
        cap_drop: docker.cap_drop.clone(),
        security_opt: docker.security_opt.clone(),
        shm_size: docker.shm_size.filter(|size| *size > 0),
        wait_for_services_timeout: wait_for_services_timeout(docker.wait_for_services_timeout),
        stop_timeout: KILL_GRACE,
        builds_owner: None,
    };
    settings.validate()?;
    Ok(settings)
}

/// `[[runners.docker.services]]` as the image definitions the executor starts before the job's
/// services (gitlab-runner `Service.ToImageDefinition`: `environment` entries become internal
/// variables; an entry without `=` is skipped, as gitlab-runner's `parseVariable` error is).
fn runner_services(services: &[DockerService]) -> Result<Vec<Image>, DockerSettingsError> {
    services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            if service.name.trim().is_empty() {
                return Err(DockerSettingsError::ServiceName { index });
            }
            let variables = service
                .environment
                .iter()
                .filter_map(|entry| entry.split_once('='))
                .map(|(key, value)| JobVariable {
                    internal: true,
                    ..JobVariable::new(key, value)
                })
                .collect();
            Ok(Image {
                name: service.name.trim().to_owned(),
                alias: service.alias.clone().unwrap_or_default(),
                command: service.command.clone(),
                entrypoint: service.entrypoint.clone(),
                variables,
                ..Image::default()
            })
        })
        .collect()
}

/// gitlab-runner `GetWaitForServicesTimeout`: 0 (or unset) is the 30 s default, a negative
/// value disables the wait.
fn wait_for_services_timeout(seconds: Option<i64>) -> Option<Duration> {
    match seconds {
        None | Some(0) => None,
        Some(s) if s < 0 => Some(Duration::ZERO),
        Some(s) => Some(Duration::from_secs(s.unsigned_abs())),
    }
}

fn parse_policy(key: &'static str, text: &str) -> Result<PullPolicy, DockerSettingsError> {
    text.parse()
        .map_err(|message| DockerSettingsError::PullPolicy { key, message })
}

/// `pull_policy`: a string or a list of strings (gitlab-runner `StringOrArray`).
fn pull_policies(
    key: &'static str,
    value: Option<&toml::Value>,
) -> Result<Vec<PullPolicy>, DockerSettingsError> {
    match value {
        None => Ok(Vec::new()),
        Some(toml::Value::String(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(toml::Value::String(text)) => Ok(vec![parse_policy(key, text)?]),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => parse_policy(key, text),
                other => Err(DockerSettingsError::PullPolicy {
                    key,
                    message: format!("expected a string, found `{other}`"),
                }),
            })
            .collect(),
        Some(other) => Err(DockerSettingsError::PullPolicy {
            key,
            message: format!("expected a string or a list of strings, found `{other}`"),
        }),
    }
}

/// The `runnel-exec` Docker executor behind the daemon. Directories are the shell executor's
/// (the containers see the build directories at their host paths).
#[derive(Debug, Clone, Default)]
pub struct DockerJobExecutor {
    /// Resolves `builds_dir`/`cache_dir` and builds the job context.
    pub dirs: ShellJobExecutor,
}

impl DockerJobExecutor {
    /// An executor resolving relative directories against the current directory.
    pub fn new() -> Self {
        Self::default()
    }
}

impl JobExecutor for DockerJobExecutor {
    fn supports(&self, name: &str) -> bool {
        name == "docker"
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        crate::executor::container_features(self.dirs.features(runner))
    }

    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        Box::pin(async move {
            // Each engine with the short tokens of the runners that use it.
            let mut engines: Vec<(ExecDockerConfig, Vec<String>)> = Vec::new();
            for runner in runners.iter().filter(|r| self.supports(&r.executor)) {
                match docker_settings(runner, &self.dirs) {
                    Ok(settings) => match engines.iter_mut().find(|e| e.0.host == settings.host) {
                        Some((_, tokens)) => tokens.push(runner.short_token()),
                        None => engines.push((settings, vec![runner.short_token()])),
                    },
                    Err(err) => tracing::error!(name = %runner.name, "{err}"),
                }
            }
            for (engine, tokens) in engines {
                let host = engine.host.as_deref().unwrap_or("the local engine");
                match runnel_exec::docker::remove_leftovers(&engine, &tokens).await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(
                            host,
                            removed,
                            "removed containers and networks left by an earlier runnel"
                        );
                    }
                    Err(err) => {
                        tracing::warn!(host, error = %crate::trace_patch::error_chain(&err), "cannot remove leftovers of an earlier runnel");
                    }
                }
            }
        })
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        let settings = docker_settings(&ctx.runner, &self.dirs);
        let mut exec_ctx = self.dirs.exec_context(&ctx);
        exec_ctx.cache =
            crate::cache::job_cache_store(&ctx.runner, exec_ctx.cache_dir.clone(), &payload);
        let trace = ctx.trace.clone();
        Box::pin(async move {
            let settings = match settings {
                Ok(settings) => settings,
                Err(err) => {
                    trace.write(format!("\x1b[31;1mERROR: {err}\x1b[0;m\n").as_bytes());
                    return ExecOutcome {
                        status: ExecStatus::Failed,
                        failure_reason: Some(FailureReason::RunnerSystemFailure),
                        exit_code: None,
                    };
                }
            };
            let mut executor = runnel_exec::docker::DockerExecutor::new(settings);
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            exec_outcome(runnel_exec::run_job_with(&mut executor, payload, exec_ctx, events).await)
        })
    }
}

/// The executors of `runnel run`: each `[[runners]]` entry's jobs go to the executor its
/// `executor` names (`shell`, `docker`, `custom`, and `kubernetes` with the `kubernetes`
/// feature).
#[derive(Debug, Clone, Default)]
pub struct RunnerExecutors {
    /// `executor = "shell"`.
    pub shell: ShellJobExecutor,
    /// `executor = "docker"`.
    pub docker: DockerJobExecutor,
    /// `executor = "custom"`.
    pub custom: crate::custom_adapter::CustomJobExecutor,
    /// `executor = "ssh"`, `"virtualbox"`, `"parallels"`.
    pub remote: crate::ssh_adapter::RemoteJobExecutor,
    /// `executor = "kubernetes"`.
    #[cfg(feature = "kubernetes")]
    pub kubernetes: crate::kube_adapter::KubeJobExecutor,
}

impl RunnerExecutors {
    /// Both executors, resolving relative directories against the current directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn pick(&self, name: &str) -> &dyn JobExecutor {
        #[cfg(feature = "kubernetes")]
        if self.kubernetes.supports(name) {
            return &self.kubernetes;
        }
        if self.docker.supports(name) {
            &self.docker
        } else if self.custom.supports(name) {
            &self.custom
        } else if self.remote.supports(name) {
            &self.remote
        } else {
            &self.shell
        }
    }
}

impl JobExecutor for RunnerExecutors {
    fn supports(&self, name: &str) -> bool {
        #[cfg(feature = "kubernetes")]
        if self.kubernetes.supports(name) {
            return true;
        }
        self.shell.supports(name)
            || self.docker.supports(name)
            || self.custom.supports(name)
            || self.remote.supports(name)
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        self.pick(&runner.executor).features(runner)
    }

    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        Box::pin(async move {
            self.docker.start_up(runners).await;
            self.custom.start_up(runners).await;
            self.remote.start_up(runners).await;
            #[cfg(feature = "kubernetes")]
            self.kubernetes.start_up(runners).await;
        })
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        self.pick(&ctx.runner.executor).execute(payload, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::{DockerSettingsError, docker_settings};
    use crate::config::RunnerConfig;
    use crate::exec_adapter::ShellJobExecutor;
    use runnel_exec::docker::PullPolicy;
    use std::path::PathBuf;
    use std::time::Duration;

    fn runner(docker: &str) -> RunnerConfig {
        let text = format!(
            "[[runners]]\nname = \"r\"\nurl = \"http://x\"\ntoken = \"t\"\nexecutor = \"docker\"\n[runners.docker]\n{docker}\n"
        );
        let config: crate::config::Config = toml::from_str(&text).expect("config");
        config.runners.into_iter().next().expect("a runner")
    }

    #[test]
    fn docker_advertises_the_shell_features_plus_image_and_services() {
        use crate::executor::JobExecutor as _;
        let runner = runner("image = \"alpine\"");
        let shell = ShellJobExecutor::default().features(&runner);
        let docker = super::DockerJobExecutor::new().features(&runner);
        assert!(!shell.image && !shell.services, "{shell:?}");
        assert!(docker.image && docker.services, "{docker:?}");
        assert!(docker.service_variables && docker.service_multiple_aliases);
        assert_eq!(docker.artifacts, shell.artifacts);
        assert_eq!(docker.cancelable, shell.cancelable);
    }

    fn dirs() -> ShellJobExecutor {
        ShellJobExecutor {
            working_dir: PathBuf::from("/srv/runner"),
            user: None,
        }
    }

    #[test]
    fn docker_section_keys_fill_the_executor_settings() {
        let runner = runner(
            r#"image = "alpine:3.20"
pull_policy = ["if-not-present", "never"]
allowed_pull_policies = ["never"]
allowed_images = ["alpine:*"]
privileged = true
volumes = ["/cache", "/srv/data:/data:ro"]
cache_dir = "docker-cache"
disable_cache = true
network_mode = "host"
memory = "512m"
cpus = "1.5"
user = "nobody"
extra_hosts = ["db:10.0.0.2"]
dns = ["1.1.1.1"]
cap_add = ["NET_ADMIN"]
cap_drop = ["ALL"]
security_opt = ["no-new-privileges"]
shm_size = 1048576
wait_for_services_timeout = -1"#,
        );
        let settings = docker_settings(&runner, &dirs()).expect("valid");
        assert_eq!(settings.image.as_deref(), Some("alpine:3.20"));
        assert_eq!(
            settings.pull_policy,
            vec![PullPolicy::IfNotPresent, PullPolicy::Never]
        );
        assert_eq!(settings.allowed_pull_policies, vec![PullPolicy::Never]);
        assert_eq!(settings.allowed_images, vec!["alpine:*"]);
        assert!(settings.privileged);
        assert_eq!(settings.volumes, vec!["/cache", "/srv/data:/data:ro"]);
        assert_eq!(
            settings.cache_dir,
            Some(PathBuf::from("/srv/runner/docker-cache"))
        );
        assert!(settings.disable_cache);
        assert_eq!(settings.network_mode.as_deref(), Some("host"));
        assert_eq!(settings.memory.as_deref(), Some("512m"));
        assert_eq!(settings.cpus.as_deref(), Some("1.5"));
        assert_eq!(settings.user.as_deref(), Some("nobody"));
        assert_eq!(settings.extra_hosts, vec!["db:10.0.0.2"]);
        assert_eq!(settings.dns, vec!["1.1.1.1"]);
        assert_eq!(settings.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(settings.cap_drop, vec!["ALL"]);
        assert_eq!(settings.security_opt, vec!["no-new-privileges"]);
        assert_eq!(settings.shm_size, Some(1_048_576));
        assert_eq!(settings.wait_for_services_timeout, Some(Duration::ZERO));
    }

    #[test]
    fn pull_policy_may_be_a_single_string_and_defaults_stay_gitlabs() {
        let settings = docker_settings(&runner("pull_policy = \"never\""), &dirs()).expect("ok");
        assert_eq!(settings.pull_policy, vec![PullPolicy::Never]);
        assert_eq!(settings.wait_for_services_timeout, None);
        assert!(!settings.privileged);
        let settings =
            docker_settings(&runner("wait_for_services_timeout = 5"), &dirs()).expect("ok");
        assert_eq!(
            settings.wait_for_services_timeout,
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn unknown_pull_policy_and_bad_sizes_are_errors_naming_the_key() {
        let err =
            docker_settings(&runner("pull_policy = \"sometimes\""), &dirs()).expect_err("invalid");
        assert!(matches!(err, DockerSettingsError::PullPolicy { .. }));
        assert_eq!(
            err.to_string(),
            "`runners.docker.pull_policy`: unknown pull policy `sometimes`, expected `always`, `if-not-present` or `never`"
        );
        let err = docker_settings(&runner("memory = \"lots\""), &dirs()).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "`runners.docker.memory` is `lots`, expected a size such as `512m` or `2g`"
        );
    }

    #[test]
    fn runner_services_become_image_definitions_with_internal_variables() {
        let configured = runner(
            r#"allowed_services = ["redis:*"]
allowed_privileged_images = ["docker:*-dind"]
allowed_privileged_services = ["docker:*-dind"]
services_privileged = false
allowed_users = ["app"]
services_limit = 2
[[runners.docker.services]]
name = "postgres:16"
alias = "db, pg"
command = ["postgres", "-c", "fsync=off"]
entrypoint = ["docker-entrypoint.sh"]
environment = ["POSTGRES_PASSWORD=secret=1", "IGNORED"]
[[runners.docker.services]]
name = "$REGISTRY/cache:7""#,
        );
        let settings = docker_settings(&configured, &dirs()).expect("valid");
        assert_eq!(settings.allowed_services, vec!["redis:*"]);
        assert_eq!(settings.allowed_privileged_images, vec!["docker:*-dind"]);
        assert_eq!(settings.allowed_privileged_services, vec!["docker:*-dind"]);
        assert_eq!(settings.services_privileged, Some(false));
        assert_eq!(settings.allowed_users, vec!["app"]);
        assert_eq!(settings.services_limit, Some(2));
        let [postgres, cache] = settings.services.as_slice() else {
            panic!("two services: {:?}", settings.services);
        };
        assert_eq!(postgres.name, "postgres:16");
        assert_eq!(postgres.aliases(), ["db", "pg"]);
        assert_eq!(postgres.command, ["postgres", "-c", "fsync=off"]);
        assert_eq!(postgres.entrypoint, ["docker-entrypoint.sh"]);
        let variables: Vec<(&str, &str, bool)> = postgres
            .variables
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str(), v.internal))
            .collect();
        assert_eq!(variables, [("POSTGRES_PASSWORD", "secret=1", true)]);
        // Names are expanded per job, by the executor.
        assert_eq!(cache.name, "$REGISTRY/cache:7");
        // A negative limit is no limit, as in gitlab-runner.
        let settings = docker_settings(&runner("services_limit = -1"), &dirs()).expect("ok");
        assert_eq!(settings.services_limit, None);
    }

    #[test]
    fn runner_service_without_a_name_is_an_error_and_unknown_keys_are_reported() {
        let err = docker_settings(
            &runner("[[runners.docker.services]]\nalias = \"db\""),
            &dirs(),
        )
        .expect_err("invalid");
        assert_eq!(err, DockerSettingsError::ServiceName { index: 0 });
        assert_eq!(
            err.to_string(),
            "`runners.docker.services[0]` has no `name`"
        );
        let text = "[[runners]]\nname = \"r\"\nurl = \"http://x\"\ntoken = \"t\"\nexecutor = \"docker\"\n[runners.docker]\n[[runners.docker.services]]\nname = \"redis\"\naliass = \"cache\"\n";
        let loaded =
            crate::config::parse(std::path::Path::new("config.toml"), text).expect("loads");
        let unknown: Vec<String> = loaded
            .unknown_keys
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            unknown,
            ["config.toml:9:1: unknown key `runners.0.docker.services.0.aliass` is ignored"]
        );
    }
}
