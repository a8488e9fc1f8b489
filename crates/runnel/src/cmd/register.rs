//! `runnel register`: gitlab-runner's flags, environment variables and prompts.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use runnel_runner::config::{
    CacheConfig, CustomConfig, DockerConfig, KubernetesConfig, RunnerConfig, SshConfig,
};
use runnel_runner::register::{
    Registration, is_authentication_token, load_template, merge_template, register,
};

use super::config_file::{ConfigFileArg, runtime};
use crate::user_error::UserError;

/// The executors `register` offers.
const EXECUTORS: &str = "shell, docker, docker-windows, docker+machine, docker-autoscaler, kubernetes, ssh, parallels, virtualbox, custom, instance";

/// Arguments of `runnel register` (gitlab-runner `commands/register.go` and the runner fields of
/// `common/config.go`, with the same environment variables).
#[derive(Debug, clap::Args)]
pub(crate) struct RegisterArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Ask nothing; a missing required value is an error.
    #[arg(short = 'n', long, env = "REGISTER_NON_INTERACTIVE")]
    non_interactive: bool,
    /// A config.toml whose single `[[runners]]` entry fills what the flags leave unset.
    #[arg(
        long = "template-config",
        env = "TEMPLATE_CONFIG_FILE",
        value_name = "FILE"
    )]
    template_config: Option<PathBuf>,
    /// Keep the runner on GitLab when the config file cannot be saved.
    #[arg(long, env = "REGISTER_LEAVE_RUNNER")]
    leave_runner: bool,
    /// The GitLab instance URL.
    #[arg(short = 'u', long, env = "CI_SERVER_URL")]
    url: Option<String>,
    /// The runner authentication token (glrt-…).
    #[arg(short = 't', long, env = "CI_SERVER_TOKEN")]
    token: Option<String>,
    /// A legacy registration token.
    #[arg(short = 'r', long, env = "REGISTRATION_TOKEN")]
    registration_token: Option<String>,
    /// The runner name (description); the host name by default.
    #[arg(long, visible_alias = "description", env = "RUNNER_NAME")]
    name: Option<String>,
    /// Comma-separated tags (legacy registration only).
    #[arg(long, env = "RUNNER_TAG_LIST")]
    tag_list: Option<String>,
    /// Pick jobs without tags (legacy registration only).
    #[arg(long, env = "REGISTER_RUN_UNTAGGED", num_args = 0..=1, default_missing_value = "true")]
    run_untagged: Option<bool>,
    /// Lock the runner to its project (legacy registration only; default true).
    #[arg(long, env = "REGISTER_LOCKED", num_args = 0..=1, default_missing_value = "true")]
    locked: Option<bool>,
    /// `not_protected` or `ref_protected` (legacy registration only).
    #[arg(long, env = "REGISTER_ACCESS_LEVEL")]
    access_level: Option<String>,
    /// Maximum job timeout in seconds (legacy registration only).
    #[arg(long, env = "REGISTER_MAXIMUM_TIMEOUT")]
    maximum_timeout: Option<u64>,
    /// Register paused (legacy registration only).
    #[arg(long, env = "REGISTER_PAUSED", num_args = 0..=1, default_missing_value = "true")]
    paused: Option<bool>,
    /// A note for maintainers (legacy registration only).
    #[arg(long, env = "REGISTER_MAINTENANCE_NOTE")]
    maintenance_note: Option<String>,
    /// The executor.
    #[arg(long, env = "RUNNER_EXECUTOR")]
    executor: Option<String>,
    /// The shell: bash, sh, pwsh.
    #[arg(long, env = "RUNNER_SHELL")]
    shell: Option<String>,
    /// Jobs in flight for this runner (0 = unlimited).
    #[arg(long, env = "RUNNER_LIMIT")]
    limit: Option<i64>,
    /// Trace size limit in KiB.
    #[arg(long, env = "RUNNER_OUTPUT_LIMIT")]
    output_limit: Option<i64>,
    /// Parallel job requests for this runner.
    #[arg(long, env = "RUNNER_REQUEST_CONCURRENCY")]
    request_concurrency: Option<i64>,
    /// Where builds are stored.
    #[arg(long, env = "RUNNER_BUILDS_DIR")]
    builds_dir: Option<String>,
    /// Where the cache is stored.
    #[arg(long, env = "RUNNER_CACHE_DIR")]
    cache_dir: Option<String>,
    /// Overrides the URL used to clone.
    #[arg(long, env = "CLONE_URL")]
    clone_url: Option<String>,
    /// `KEY=value` added to every job (repeatable).
    #[arg(long = "env", env = "RUNNER_ENV", value_delimiter = ',')]
    environment: Vec<String>,
    /// Runs before the sources are fetched.
    #[arg(long, env = "RUNNER_PRE_GET_SOURCES_SCRIPT")]
    pre_get_sources_script: Option<String>,
    /// Runs after the sources are fetched.
    #[arg(long, env = "RUNNER_POST_GET_SOURCES_SCRIPT")]
    post_get_sources_script: Option<String>,
    /// Runs before the script.
    #[arg(long, env = "RUNNER_PRE_BUILD_SCRIPT")]
    pre_build_script: Option<String>,
    /// Runs after the script.
    #[arg(long, env = "RUNNER_POST_BUILD_SCRIPT")]
    post_build_script: Option<String>,
    /// CA file for GitLab's certificate.
    #[arg(long = "tls-ca-file", env = "CI_SERVER_TLS_CA_FILE")]
    tls_ca_file: Option<String>,
    /// The default Docker image.
    #[arg(long, env = "DOCKER_IMAGE")]
    docker_image: Option<String>,
    /// Privileged Docker containers.
    #[arg(long, env = "DOCKER_PRIVILEGED", num_args = 0..=1, default_missing_value = "true")]
    docker_privileged: Option<bool>,
    /// Docker volumes (repeatable).
    #[arg(long, env = "DOCKER_VOLUMES", value_delimiter = ',')]
    docker_volumes: Vec<String>,
    /// Docker pull policy (repeatable).
    #[arg(long, env = "DOCKER_PULL_POLICY", value_delimiter = ',')]
    docker_pull_policy: Vec<String>,
    /// Kubernetes namespace.
    #[arg(long, env = "KUBERNETES_NAMESPACE")]
    kubernetes_namespace: Option<String>,
    /// Kubernetes default image.
    #[arg(long, env = "KUBERNETES_IMAGE")]
    kubernetes_image: Option<String>,
    /// SSH host.
    #[arg(long, env = "SSH_HOST")]
    ssh_host: Option<String>,
    /// SSH port.
    #[arg(long, env = "SSH_PORT")]
    ssh_port: Option<String>,
    /// SSH user.
    #[arg(long, env = "SSH_USER")]
    ssh_user: Option<String>,
    /// SSH password.
    #[arg(long, env = "SSH_PASSWORD")]
    ssh_password: Option<String>,
    /// SSH private key.
    #[arg(long, env = "SSH_IDENTITY_FILE")]
    ssh_identity_file: Option<String>,
    /// Custom executor run program.
    #[arg(long, env = "CUSTOM_RUN_EXEC")]
    custom_run_exec: Option<String>,
    /// Cache type: s3, gcs, azure.
    #[arg(long, env = "CACHE_TYPE")]
    cache_type: Option<String>,
    /// Share the cache between runners.
    #[arg(long, env = "CACHE_SHARED", num_args = 0..=1, default_missing_value = "true")]
    cache_shared: Option<bool>,
}

/// Reads answers to prompts.
struct Prompter {
    interactive: bool,
    input: std::io::StdinLock<'static>,
}

impl Prompter {
    /// Asks `question`; a given value is the default `[value]` that Enter accepts.
    fn ask(
        &mut self,
        question: &str,
        given: Option<String>,
        required: bool,
    ) -> anyhow::Result<Option<String>> {
        if !self.interactive {
            if required && given.as_deref().is_none_or(str::is_empty) {
                return Err(
                    UserError(format!("{question} is required with --non-interactive")).into(),
                );
            }
            return Ok(given);
        }
        loop {
            match &given {
                // gitlab-runner `askOnce`: the default stays on the answer's line.
                Some(value) if !value.is_empty() => print!("{question}\n[{value}]: "),
                _ => println!("{question}"),
            }
            std::io::stdout().flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                return Err(UserError(format!("no answer to `{question}` (end of input)")).into());
            }
            let answer = line.trim().to_owned();
            let value = if answer.is_empty() {
                given.clone()
            } else {
                Some(answer)
            };
            if !required || value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Ok(value);
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "runnel".into())
}

/// A non-empty template value, as the default of a prompt the flags left open.
fn from_template(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

pub(crate) fn run(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.config.path();
    // gitlab-runner merges the template before asking, so its values are the prompts' defaults
    // (gitlab-runner merge request 2561).
    let template = match &args.template_config {
        Some(path) => {
            tracing::info!(
                "Merging configuration from template file {:?}",
                path.display().to_string()
            );
            let (template, unknown_keys) = load_template(path)?;
            for key in &unknown_keys {
                tracing::warn!("{key}");
            }
            Some((path, template))
        }
        None => None,
    };
    let template_runner = template.as_ref().map(|(_, runner)| runner);
    let mut prompt = Prompter {
        interactive: !args.non_interactive,
        input: std::io::stdin().lock(),
    };
    let url = prompt
        .ask(
            "Enter the GitLab instance URL (for example, https://gitlab.com/):",
            args.url
                .clone()
                .or_else(|| template_runner.and_then(|t| from_template(&t.url))),
            true,
        )?
        .unwrap_or_default();
    // gitlab-runner `commands/register.go` `askRunner`: without `--token`, the token is asked
    // for as "the registration token", and one that is an authentication token (`glrt-…`) is
    // verified and only the runner's name is asked for next.
    let (token, registration_token) = match args.token.clone().filter(|t| !t.is_empty()) {
        Some(token) => (Some(token), None),
        None => {
            let answer = prompt.ask(
                "Enter the registration token:",
                args.registration_token.clone(),
                true,
            )?;
            if answer.as_deref().is_some_and(is_authentication_token) {
                (answer, None)
            } else {
                (None, answer)
            }
        }
    };
    let authentication = token.is_some();
    let mut registration = Registration {
        url,
        token,
        registration_token,
        run_untagged: args.run_untagged,
        locked: args.locked,
        access_level: args.access_level.clone(),
        maximum_timeout: args.maximum_timeout,
        paused: args.paused,
        leave_runner: args.leave_runner,
        ..Registration::default()
    };
    if authentication {
        registration.tag_list = args.tag_list.clone();
        registration.maintenance_note = args.maintenance_note.clone();
    }
    let name_question = if authentication {
        "Enter a name for the runner. This is stored only in the local config.toml file:"
    } else {
        "Enter a description for the runner:"
    };
    let name = prompt.ask(
        name_question,
        Some(
            args.name
                .clone()
                .or_else(|| template_runner.and_then(|t| from_template(&t.name)))
                .unwrap_or_else(hostname),
        ),
        false,
    )?;
    if !authentication {
        registration.tag_list = prompt.ask(
            "Enter tags for the runner (comma-separated):",
            args.tag_list.clone(),
            false,
        )?;
        registration.maintenance_note = prompt.ask(
            "Enter optional maintenance note for the runner:",
            args.maintenance_note.clone(),
            false,
        )?;
    }
    let executor = prompt
        .ask(
            &format!("Enter an executor: {EXECUTORS}:"),
            args.executor
                .clone()
                .or_else(|| template_runner.and_then(|t| from_template(&t.executor))),
            true,
        )?
        .unwrap_or_default();
    let mut runner = runner_config(&args, name.unwrap_or_default(), executor.clone());
    if executor.starts_with("docker") {
        let image = prompt.ask(
            "Enter the default Docker image (for example, ruby:3.3):",
            args.docker_image.clone().or_else(|| {
                template_runner
                    .and_then(|t| t.docker.as_ref())
                    .and_then(|d| d.image.clone())
            }),
            true,
        )?;
        runner.docker.get_or_insert_with(Default::default).image = image;
    }
    if let Some((path, template)) = &template {
        merge_template(&mut runner, template, path)?;
    }
    registration.runner = runner;
    let registered = runtime()?.block_on(register(&config_path, registration))?;
    // gitlab-runner `commands/register.go` `Execute`: through the logger, so on stderr and in
    // the `--log-format`.
    tracing::info!(
        "Runner registered successfully. Feel free to start it, but if it's running already the config should be automatically reloaded!"
    );
    tracing::info!(
        "Configuration (with the authentication token) was saved in {:?}",
        config_path.display().to_string()
    );
    if let Ok(loaded) = runnel_runner::config::load(&config_path) {
        let concurrent = loaded.config.concurrent();
        let limit = registered.limit().unwrap_or(0);
        // gitlab-runner `commands/register.go` `Execute`: two warnings, through the logger so
        // that `--log-format json` stays JSON.
        if limit > concurrent {
            tracing::warn!(
                "The specified runner job concurrency limit ({limit}) is larger than current global concurrency limit ({concurrent}). The global concurrent limit will not be increased and takes precedence."
            );
        }
        let requests = registered.request_concurrency.unwrap_or(0);
        if usize::try_from(requests).is_ok_and(|requests| requests > concurrent) {
            tracing::warn!(
                "The specified runner request concurrency ({requests}) is larger than the current global concurrent limit ({concurrent}). The global concurrent limit will not be increased and takes precedence."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runner_config(args: &RegisterArgs, name: String, executor: String) -> RunnerConfig {
    let mut runner = RunnerConfig {
        name,
        executor,
        shell: args.shell.clone(),
        limit: args.limit,
        output_limit: args.output_limit,
        request_concurrency: args.request_concurrency,
        builds_dir: args.builds_dir.clone(),
        cache_dir: args.cache_dir.clone(),
        clone_url: args.clone_url.clone(),
        environment: args.environment.clone(),
        pre_get_sources_script: args.pre_get_sources_script.clone(),
        post_get_sources_script: args.post_get_sources_script.clone(),
        pre_build_script: args.pre_build_script.clone(),
        post_build_script: args.post_build_script.clone(),
        tls_ca_file: args.tls_ca_file.clone(),
        ..RunnerConfig::default()
    };
    if args.docker_privileged.is_some()
        || !args.docker_volumes.is_empty()
        || !args.docker_pull_policy.is_empty()
    {
        runner.docker = Some(DockerConfig {
            privileged: args.docker_privileged,
            volumes: args.docker_volumes.clone(),
            pull_policy: (!args.docker_pull_policy.is_empty()).then(|| {
                runnel_runner::toml::Value::Array(
                    args.docker_pull_policy
                        .iter()
                        .cloned()
                        .map(runnel_runner::toml::Value::String)
                        .collect(),
                )
            }),
            ..DockerConfig::default()
        });
    }
    if args.kubernetes_namespace.is_some() || args.kubernetes_image.is_some() {
        runner.kubernetes = Some(KubernetesConfig {
            namespace: args.kubernetes_namespace.clone(),
            image: args.kubernetes_image.clone(),
            ..KubernetesConfig::default()
        });
    }
    if args.ssh_host.is_some() {
        runner.ssh = Some(SshConfig {
            host: args.ssh_host.clone(),
            port: args.ssh_port.clone(),
            user: args.ssh_user.clone(),
            password: args.ssh_password.clone(),
            identity_file: args.ssh_identity_file.clone(),
            ..SshConfig::default()
        });
    }
    if args.custom_run_exec.is_some() {
        runner.custom = Some(CustomConfig {
            run_exec: args.custom_run_exec.clone(),
            ..CustomConfig::default()
        });
    }
    if args.cache_type.is_some() || args.cache_shared.is_some() {
        runner.cache = Some(CacheConfig {
            kind: args.cache_type.clone(),
            shared: args.cache_shared,
            ..CacheConfig::default()
        });
    }
    runner
}
