//! `register`, `verify`, `unregister` and `list`: the runner's lifecycle on the coordinator and
//! in `config.toml` (gitlab-runner `commands/register.go`, `commands/verify.go`,
//! `commands/unregister.go`, `commands/list.go`).

use std::path::Path;

use runnel_api::{RegisterRunnerRequest, RunnerToken, VersionInfo};

use crate::client::{ClientError, Coordinator, http_client, http_client_for};
use crate::config::{
    ConfigEditor, ConfigError, RunnerConfig, UnknownKey, load, parse, short_token,
};
use crate::system_id;

/// What `runnel register` was told.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The GitLab root URL.
    pub url: String,
    /// A runner authentication token (`glrt-…`) or an existing runner token.
    pub token: Option<String>,
    /// A legacy registration token.
    pub registration_token: Option<String>,
    /// Comma-separated tags (legacy flow only).
    pub tag_list: Option<String>,
    /// Pick jobs without tags (legacy flow only; forced on when there are no tags).
    pub run_untagged: Option<bool>,
    /// Lock to the project (legacy flow only; default true).
    pub locked: Option<bool>,
    /// `not_protected` or `ref_protected` (legacy flow only).
    pub access_level: Option<String>,
    /// Maximum job timeout in seconds (legacy flow only).
    pub maximum_timeout: Option<u64>,
    /// Register paused (legacy flow only).
    pub paused: Option<bool>,
    /// Maintenance note (legacy flow only).
    pub maintenance_note: Option<String>,
    /// Keep the runner on GitLab when the config file cannot be saved (`--leave-runner`);
    /// by default it is removed again, as gitlab-runner does.
    pub leave_runner: bool,
    /// The new `[[runners]]` entry: name, executor and executor settings. `url`, `id`, `token`
    /// and the token times are filled in by registration.
    pub runner: RunnerConfig,
}

/// Why a lifecycle command failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Neither `--token` nor `--registration-token`.
    #[error("a runner token is required: pass `--token` (glrt-…) or `--registration-token`")]
    NoToken,
    /// Server-owned settings given with an authentication token.
    #[error(
        "{flags} cannot be set here for a runner created with an authentication token (glrt-…): set them on the runner in GitLab"
    )]
    ServerOwnedFlags {
        /// The flags.
        flags: String,
    },
    /// The config file failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The coordinator call failed.
    #[error("failed to register the runner")]
    Client(#[from] ClientError),
    /// No runner matched the selection.
    #[error("no runner in `{path}` matches {selection}")]
    NoMatch {
        /// The config file.
        path: String,
        /// The selection.
        selection: String,
    },
    /// The `--template-config` file could not be read or parsed.
    #[error("failed to load configuration template file `{path}`")]
    TemplateLoad {
        /// The template file.
        path: String,
        /// The cause.
        #[source]
        source: ConfigError,
    },
    /// The template has no `[[runners]]` entry, or more than one.
    #[error(
        "configuration template `{path}` must contain exactly one [[runners]] entry, found {found}"
    )]
    TemplateRunners {
        /// The template file.
        path: String,
        /// How many entries it has.
        found: usize,
    },
    /// The merged entry is not a valid runner (a key has another type in the template).
    #[error("failed to merge configuration template `{path}` into the new runner")]
    TemplateMerge {
        /// The template file.
        path: String,
        /// What the TOML encoder or decoder says.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Whether `token` is a runner authentication token (`glrt-…`), as gitlab-runner's
/// `tokenIsRunnerToken` (`commands/register.go`).
pub fn is_authentication_token(token: &str) -> bool {
    token.starts_with("glrt-")
}

/// The directory of `config.toml`, where gitlab-runner's `certs/` directory lives.
pub(crate) fn config_dir(config_path: &Path) -> std::path::PathBuf {
    config_path
        .parent()
        .map_or_else(|| ".".into(), Path::to_path_buf)
}

fn version_info(executor: &str) -> VersionInfo {
    VersionInfo {
        name: "runnel".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        platform: crate::client::go_os().into(),
        architecture: crate::client::go_arch().into(),
        executor: executor.into(),
        ..VersionInfo::default()
    }
}

/// gitlab-runner's warning on a registration with a registration token
/// (`commands/register.go`).
pub const LEGACY_REGISTRATION_DEPRECATION: &str = "Support for registration tokens and runner parameters in the 'register' command has been deprecated in GitLab Runner 15.6 and will be replaced with support for authentication tokens. For more information, see https://docs.gitlab.com/ee/ci/runners/new_creation_workflow";

/// Registers a runner and appends it to the config file. Returns the new entry. Logs
/// gitlab-runner's `Verifying runner... is valid` or, for a registration token, its deprecation
/// warning and `Registering runner... succeeded`, each with the `runner` short token.
pub async fn register(
    config_path: &Path,
    registration: Registration,
) -> Result<RunnerConfig, RegisterError> {
    let system_id = system_id::load_or_create(config_path);
    let mut runner = registration.runner.clone();
    runner.url = registration.url.clone();
    let http = http_client_for(&http_client()?, &runner, &config_dir(config_path))?;
    let info = version_info(&runner.executor);
    // gitlab-runner (`commands/register.go`, `askRunner`) takes an authentication token given
    // as the registration token (`-r`, `REGISTRATION_TOKEN`, the prompt) as an authentication
    // token: it is verified, never sent to `POST /api/v4/runners`.
    let authentication = registration
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            registration
                .registration_token
                .clone()
                .filter(|t| is_authentication_token(t))
        });
    if let Some(token) = authentication {
        reject_server_owned_flags(&registration)?;
        let short = short_token(&token);
        let coordinator = Coordinator::new(
            http.clone(),
            &registration.url,
            RunnerToken::new(token),
            system_id.clone(),
        )?;
        let answer = coordinator.verify(Some(info)).await?;
        // gitlab-runner `network/gitlab.go` `VerifyRunner`, logged with the runner's short token.
        tracing::info!(runner = %short, "Verifying runner... is valid");
        runner.id = answer.id.and_then(|id| i64::try_from(id).ok());
        runner.token = answer.token.expose().to_owned();
        runner.token_expires_at = answer.token_expires_at.as_deref().and_then(parse_datetime);
    } else if let Some(token) = registration
        .registration_token
        .clone()
        .filter(|t| !t.is_empty())
    {
        let short = short_token(&token);
        let tag_list = registration.tag_list.clone().unwrap_or_default();
        let request = RegisterRunnerRequest {
            token: RunnerToken::new(token.clone()),
            description: runner.name.clone(),
            maintenance_note: registration.maintenance_note.clone().unwrap_or_default(),
            // gitlab-runner: run_untagged is forced on when the tag list is empty.
            run_untagged: registration.run_untagged.unwrap_or(false) || tag_list.trim().is_empty(),
            tag_list,
            locked: registration.locked.unwrap_or(true),
            access_level: registration.access_level.clone().unwrap_or_default(),
            maximum_timeout: registration.maximum_timeout.unwrap_or(0),
            paused: registration.paused.unwrap_or(false),
            info,
        };
        let coordinator = Coordinator::new(
            http.clone(),
            &registration.url,
            RunnerToken::new(token),
            system_id.clone(),
        )?;
        // gitlab-runner `commands/register.go` `doLegacyRegisterRunner` warns before
        // `POST /api/v4/runners`, then `network/gitlab.go` `RegisterRunner` logs the outcome.
        tracing::warn!("{LEGACY_REGISTRATION_DEPRECATION}");
        let answer = coordinator.register(&request).await?;
        tracing::info!(runner = %short, "Registering runner... succeeded");
        runner.id = answer.id.and_then(|id| i64::try_from(id).ok());
        runner.token = answer.token.expose().to_owned();
        runner.token_expires_at = answer.token_expires_at.as_deref().and_then(parse_datetime);
    } else {
        return Err(RegisterError::NoToken);
    }
    runner.token_obtained_at = parse_datetime(&now_rfc3339());
    settle_executor_sections(&mut runner);
    let saved = ConfigEditor::open(config_path).and_then(|mut editor| {
        editor.add_runner(&runner);
        editor.save()
    });
    if let Err(err) = saved {
        if !registration.leave_runner {
            remove_again(http, &registration.url, &runner, system_id).await;
        }
        return Err(err.into());
    }
    Ok(runner)
}

/// Keeps only the executor sections the runner's executor reads, and gives a Docker runner its
/// `/cache` volume, as gitlab-runner's `askExecutorOptions` and `askDocker` do
/// (`commands/register.go`): flags or a template may fill sections for other executors.
fn settle_executor_sections(runner: &mut RunnerConfig) {
    let executor = runner.executor.as_str();
    let docker = matches!(
        executor,
        "docker" | "docker+machine" | "docker-autoscaler" | "docker-windows"
    );
    if !docker {
        runner.docker = None;
    }
    if executor != "docker+machine" {
        runner.machine = None;
    }
    if executor != "kubernetes" {
        runner.kubernetes = None;
    }
    if !matches!(executor, "ssh" | "parallels" | "virtualbox") {
        runner.ssh = None;
    }
    if executor != "virtualbox" {
        runner.virtualbox = None;
    }
    if executor != "parallels" {
        runner.parallels = None;
    }
    if executor != "custom" {
        runner.custom = None;
    }
    runner.referees = None;
    if !docker {
        return;
    }
    let windows = executor == "docker-windows";
    let docker = runner.docker.get_or_insert_with(Default::default);
    // gitlab-runner: a volume whose last `:` part is `/cache` already is the cache volume;
    // on Windows, any volume that mentions `c:\cache`.
    let has_cache = docker.volumes.iter().any(|volume| {
        if windows {
            volume.contains(WINDOWS_CACHE_DIR)
        } else {
            volume.rsplit(':').next() == Some("/cache")
        }
    });
    if windows && !has_cache {
        docker.volumes.push(WINDOWS_CACHE_DIR.into());
    } else if !windows && !has_cache && docker.disable_cache != Some(true) {
        docker.volumes.push("/cache".into());
    }
}

/// gitlab-runner's `defaultDockerWindowCacheDir`.
const WINDOWS_CACHE_DIR: &str = "c:\\cache";

/// Removes a runner that was just registered but could not be saved. gitlab-runner
/// (`commands/register.go`, `unregisterRunner`) deletes the runner manager for an authentication
/// token and the runner for a legacy one; [`Coordinator::unregister`] picks the same endpoint.
async fn remove_again(http: reqwest::Client, url: &str, runner: &RunnerConfig, system_id: String) {
    let token = RunnerToken::new(runner.token.clone());
    let removed = match Coordinator::new(http, url, token, system_id) {
        Ok(coordinator) => coordinator.unregister().await,
        Err(err) => Err(err),
    };
    match removed {
        Ok(()) => tracing::warn!(
            runner = %runner.short_token(),
            "the configuration was not saved, so the runner was removed from GitLab again (`--leave-runner` keeps it)"
        ),
        Err(err) => tracing::error!(
            runner = %runner.short_token(),
            "the configuration was not saved, and removing the runner from GitLab again failed: {}",
            crate::trace_patch::error_chain(&err)
        ),
    }
}

/// Reads a `--template-config` file: its single `[[runners]]` entry, without the token and the
/// values registration sets, and the keys runnel ignored in it (gitlab-runner
/// `commands/register.go`, `configTemplate.MergeTo`).
pub fn load_template(path: &Path) -> Result<(RunnerConfig, Vec<UnknownKey>), RegisterError> {
    let display = path.display().to_string();
    // Unlike config.toml, a missing template is an error.
    let source = std::fs::read_to_string(path).map_err(|source| RegisterError::TemplateLoad {
        path: display.clone(),
        source: ConfigError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    let loaded = parse(path, &source).map_err(|source| RegisterError::TemplateLoad {
        path: display.clone(),
        source,
    })?;
    let mut runners = loaded.config.runners;
    if runners.len() != 1 {
        return Err(RegisterError::TemplateRunners {
            path: display,
            found: runners.len(),
        });
    }
    let mut template = runners.remove(0);
    template.token = String::new();
    template.id = None;
    template.token_obtained_at = None;
    template.token_expires_at = None;
    Ok((template, loaded.unknown_keys))
}

/// Fills what `runner` leaves unset from `template`, as gitlab-runner's `mergo.Merge` does:
/// a value `runner` has wins, tables merge key by key, and an empty string or list counts as
/// unset. Unlike Go, a flag set to `false` or `0` also wins, because runnel knows it was given.
pub fn merge_template(
    runner: &mut RunnerConfig,
    template: &RunnerConfig,
    template_path: &Path,
) -> Result<(), RegisterError> {
    let merge_error =
        |source: Box<dyn std::error::Error + Send + Sync>| RegisterError::TemplateMerge {
            path: template_path.display().to_string(),
            source,
        };
    let to_table = |config: &RunnerConfig| match toml::Value::try_from(config) {
        Ok(toml::Value::Table(table)) => Ok(table),
        Ok(_) => Err(merge_error("a runner is not a table".into())),
        Err(err) => Err(merge_error(err.into())),
    };
    let mut merged = to_table(runner)?;
    fill_unset(&mut merged, to_table(template)?);
    *runner = toml::Value::Table(merged)
        .try_into()
        .map_err(|err: toml::de::Error| merge_error(err.into()))?;
    Ok(())
}

fn fill_unset(target: &mut toml::Table, template: toml::Table) {
    for (key, value) in template {
        match target.get_mut(&key) {
            None => {
                target.insert(key, value);
            }
            Some(toml::Value::Table(inner)) => {
                if let toml::Value::Table(template_inner) = value {
                    fill_unset(inner, template_inner);
                }
            }
            Some(existing) if is_unset(existing) => *existing = value,
            Some(_) => {}
        }
    }
}

fn is_unset(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(text) => text.is_empty(),
        toml::Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn reject_server_owned_flags(registration: &Registration) -> Result<(), RegisterError> {
    let given: Vec<&str> = [
        ("--tag-list", registration.tag_list.is_some()),
        ("--run-untagged", registration.run_untagged.is_some()),
        ("--locked", registration.locked.is_some()),
        ("--access-level", registration.access_level.is_some()),
        ("--maximum-timeout", registration.maximum_timeout.is_some()),
        ("--paused", registration.paused.is_some()),
        (
            "--maintenance-note",
            registration.maintenance_note.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        Ok(())
    } else {
        Err(RegisterError::ServerOwnedFlags {
            flags: given.join(", "),
        })
    }
}

/// The result of verifying one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The coordinator knows the runner.
    Valid,
    /// The coordinator answered 403.
    Removed,
    /// The check failed for another reason (message).
    Error(String),
}

/// Verifies every runner in the config that `select` accepts; with `delete`, removes the ones
/// the coordinator no longer knows. Returns (name, short token, result) per runner.
pub async fn verify(
    config_path: &Path,
    mut select: impl FnMut(&RunnerConfig) -> bool,
    delete: bool,
) -> Result<Vec<(String, String, Verified)>, RegisterError> {
    let config = load(config_path)?.config;
    let system_id = system_id::load_or_create(config_path);
    let http = http_client()?;
    let mut results = Vec::new();
    let mut removed = Vec::new();
    for runner in config.runners.iter().filter(|r| select(r)) {
        let client = http_client_for(&http, runner, &config_dir(config_path));
        let result = match client.and_then(|http| {
            Coordinator::new(
                http,
                &runner.url,
                RunnerToken::new(runner.token.clone()),
                system_id.clone(),
            )
        }) {
            Ok(coordinator) => match coordinator
                .verify(Some(version_info(&runner.executor)))
                .await
            {
                Ok(_) => Verified::Valid,
                Err(ClientError::Forbidden { .. }) => Verified::Removed,
                Err(err) => Verified::Error(crate::trace_patch::error_chain(&err)),
            },
            Err(err) => Verified::Error(err.to_string()),
        };
        log_verified(runner, &result);
        if result == Verified::Removed {
            removed.push(runner.token.clone());
        }
        results.push((runner.name.clone(), runner.short_token(), result));
    }
    if delete && !removed.is_empty() {
        let mut editor = ConfigEditor::open(config_path)?;
        editor.remove_runners(|_, token| removed.iter().any(|t| t == token));
        editor.save()?;
    }
    Ok(results)
}

/// Logs a verification as gitlab-runner's `VerifyRunner` (`network/gitlab.go`): an
/// authentication token is `is valid` or `is not valid` (info), a legacy token `is alive` (info)
/// or `is removed` (error); any other failure is `failed` (error) with its `status`.
fn log_verified(runner: &RunnerConfig, result: &Verified) {
    let short = runner.short_token();
    let created = is_authentication_token(&runner.token);
    match result {
        Verified::Valid if created => {
            tracing::info!(runner = %short, "Verifying runner... is valid")
        }
        Verified::Valid => tracing::info!(runner = %short, "Verifying runner... is alive"),
        Verified::Removed if created => {
            tracing::info!(runner = %short, "Verifying runner... is not valid");
        }
        Verified::Removed => tracing::error!(runner = %short, "Verifying runner... is removed"),
        Verified::Error(status) => {
            tracing::error!(runner = %short, status = %status, "Verifying runner... failed");
        }
    }
}

/// Which runners `unregister` acts on.
#[derive(Debug, Clone)]
pub enum Selection {
    /// `--name`.
    Name(String),
    /// `--url` and `--token`.
    UrlToken(String, String),
    /// `--all-runners`.
    All,
}

/// Unregisters the selected runners and removes them from the config. Runners the coordinator
/// refuses stay in the file and are reported.
pub async fn unregister(
    config_path: &Path,
    selection: &Selection,
) -> Result<Vec<(String, Result<(), String>)>, RegisterError> {
    let config = load(config_path)?.config;
    let system_id = system_id::load_or_create(config_path);
    let http = http_client()?;
    let matches = |runner: &RunnerConfig| match selection {
        Selection::Name(name) => &runner.name == name,
        Selection::UrlToken(url, token) => {
            &runner.token == token && runner.url.trim_end_matches('/') == url.trim_end_matches('/')
        }
        Selection::All => true,
    };
    let selected: Vec<&RunnerConfig> = config.runners.iter().filter(|r| matches(r)).collect();
    if selected.is_empty() {
        let selection = match selection {
            Selection::Name(name) => format!("`--name {name}`"),
            Selection::UrlToken(url, token) => {
                format!("`--url {url}` and token {}", short_token(token))
            }
            Selection::All => "`--all-runners`".into(),
        };
        return Err(RegisterError::NoMatch {
            path: config_path.display().to_string(),
            selection,
        });
    }
    let mut results = Vec::new();
    let mut removed = Vec::new();
    for runner in selected {
        let outcome = async {
            let http = http_client_for(&http, runner, &config_dir(config_path))?;
            let coordinator = Coordinator::new(
                http,
                &runner.url,
                RunnerToken::new(runner.token.clone()),
                system_id.clone(),
            )?;
            coordinator.unregister().await
        }
        .await;
        // gitlab-runner `network/gitlab.go` `UnregisterRunnerManager` (authentication tokens)
        // and `UnregisterRunner`.
        let what = if is_authentication_token(&runner.token) {
            "Unregistering runner manager from GitLab"
        } else {
            "Unregistering runner from GitLab"
        };
        match outcome {
            Ok(()) => {
                tracing::info!(runner = %runner.short_token(), "{what} succeeded");
                removed.push(runner.token.clone());
                results.push((runner.name.clone(), Ok(())));
            }
            Err(err) => {
                let status = crate::trace_patch::error_chain(&err);
                tracing::error!(runner = %runner.short_token(), status = %status, "{what} failed");
                results.push((runner.name.clone(), Err(status)));
            }
        }
    }
    if !removed.is_empty() {
        let mut editor = ConfigEditor::open(config_path)?;
        editor.remove_runners(|_, token| removed.iter().any(|t| t == token));
        editor.save()?;
    }
    Ok(results)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339_utc(secs)
}

/// A time given in seconds since the epoch as Go's `time.RFC3339` writes a UTC time, to the
/// second (`2026-11-28T00:23:54Z`): the format of `token_obtained_at`, and of the `time` key
/// of logrus's text and JSON formatters, which gitlab-runner uses with their default layout.
pub fn rfc3339_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parse_datetime(value: &str) -> Option<toml::value::Datetime> {
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{
        RegisterError, civil_from_days, load_template, merge_template, rfc3339_utc,
        settle_executor_sections,
    };
    use crate::config::{CacheConfig, DockerConfig, KubernetesConfig, RunnerConfig, SshConfig};

    #[test]
    fn template_fills_unset_values_and_set_values_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("template.toml");
        std::fs::write(
            &path,
            "[[runners]]\nname = \"t\"\ntoken = \"dropped\"\nid = 7\nexecutor = \"docker\"\nlimit = 3\n\
             environment = [\"T=1\"]\n[runners.docker]\nimage = \"alpine\"\nprivileged = true\n\
             [runners.cache]\nType = \"s3\"\n",
        )
        .expect("write");
        let (template, unknown) = load_template(&path).expect("template");
        assert!(unknown.is_empty());
        assert_eq!((template.token.as_str(), template.id), ("", None));
        let mut runner = RunnerConfig {
            executor: "shell".into(),
            limit: Some(0),
            docker: Some(DockerConfig {
                privileged: Some(false),
                ..DockerConfig::default()
            }),
            cache: Some(CacheConfig::default()),
            ..RunnerConfig::default()
        };
        merge_template(&mut runner, &template, &path).expect("merge");
        assert_eq!(runner.name, "t");
        assert_eq!(runner.executor, "shell");
        assert_eq!(runner.limit, Some(0));
        assert_eq!(runner.environment, ["T=1"]);
        assert!(runner.token.is_empty());
        let docker = runner.docker.expect("docker");
        assert_eq!(docker.image.as_deref(), Some("alpine"));
        assert_eq!(docker.privileged, Some(false));
        assert_eq!(runner.cache.and_then(|c| c.kind).as_deref(), Some("s3"));
    }

    #[test]
    fn only_the_executors_own_section_is_kept_and_one_cache_volume_added() {
        let docker = DockerConfig {
            volumes: vec!["/srv/cache:/cache".into()],
            ..DockerConfig::default()
        };
        let mut runner = RunnerConfig {
            executor: "docker".into(),
            docker: Some(docker.clone()),
            kubernetes: Some(KubernetesConfig::default()),
            ssh: Some(SshConfig::default()),
            ..RunnerConfig::default()
        };
        settle_executor_sections(&mut runner);
        assert!(runner.kubernetes.is_none() && runner.ssh.is_none());
        assert_eq!(
            runner.docker.map(|d| d.volumes).unwrap_or_default(),
            ["/srv/cache:/cache"]
        );

        let mut runner = RunnerConfig {
            executor: "shell".into(),
            docker: Some(docker),
            ..RunnerConfig::default()
        };
        settle_executor_sections(&mut runner);
        assert!(runner.docker.is_none());

        let mut runner = RunnerConfig {
            executor: "docker".into(),
            ..RunnerConfig::default()
        };
        settle_executor_sections(&mut runner);
        assert_eq!(
            runner.docker.map(|d| d.volumes).unwrap_or_default(),
            ["/cache"]
        );
    }

    #[test]
    fn a_template_needs_exactly_one_runner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("template.toml");
        std::fs::write(&path, "concurrent = 2\n").expect("write");
        let err = load_template(&path).expect_err("no runner");
        assert!(
            matches!(err, RegisterError::TemplateRunners { found: 0, .. }),
            "{err}"
        );
        let err = load_template(Path::new("/nonexistent/template.toml")).expect_err("missing");
        assert!(matches!(err, RegisterError::TemplateLoad { .. }), "{err}");
    }

    #[test]
    fn rfc3339_utc_is_go_rfc3339_to_the_second() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_825_434), "2026-11-28T00:23:54Z");
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    }

    #[cfg(feature = "test-support")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_delete_removes_only_the_selected_runner_gitlab_forgot() {
        let fake = crate::test_support::FakeGitLab::start().await;
        let (kept, gone) = (fake.create_runner(), fake.create_runner());
        fake.delete_runner(&gone);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let url = fake.url();
        std::fs::write(
            &config,
            format!(
                "[[runners]]\nname = \"kept\"\nurl = \"{url}\"\ntoken = \"{kept}\"\nexecutor = \"shell\"\n\
                 [[runners]]\nname = \"gone\"\nurl = \"{url}\"\ntoken = \"{gone}\"\nexecutor = \"shell\"\n"
            ),
        )
        .expect("write");
        let results = super::verify(&config, |r| r.name == "gone", true)
            .await
            .expect("verify");
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].2, super::Verified::Removed);
        let text = std::fs::read_to_string(&config).expect("read");
        assert!(text.contains(&kept) && !text.contains(&gone), "{text}");
    }
}
