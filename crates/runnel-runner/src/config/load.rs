//! Reading `config.toml`: the default path, parsing with positions, and warnings for keys
//! runnel does not know. Unknown keys are warnings, not errors, so a file written for a newer
//! gitlab-runner still loads.

use std::fmt;
use std::path::{Path, PathBuf};

use super::types::Config;

/// A position in a config file, 1-based; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub path: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl Position {
    fn at(path: &Path, source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self {
            path: path.to_owned(),
            line,
            column,
        }
    }
}

/// A key runnel does not know, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The dotted key path, e.g. `runners.0.docker.imagee`.
    pub key: String,
    /// Where the key is written, when it could be found again.
    pub position: Option<Position>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(position) => write!(f, "{position}: unknown key `{}` is ignored", self.key),
            None => write!(f, "unknown key `{}` is ignored", self.key),
        }
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a value of the wrong type.
    #[error("{position}: {message}")]
    Invalid {
        /// Where.
        position: Position,
        /// What is wrong, as the TOML parser says it.
        message: String,
    },
    /// The file could not be written.
    #[error("failed to write config file `{path}`")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runner to change is not in the file.
    #[error("no runner with that token in `{path}`")]
    NoSuchRunner {
        /// The file.
        path: PathBuf,
    },
}

/// A loaded config with the warnings found while reading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Keys that were ignored.
    pub unknown_keys: Vec<UnknownKey>,
}

/// The default `config.toml` path, as gitlab-runner's `commands/config_unix.go`:
/// `/etc/gitlab-runner/config.toml` for root, `~/.gitlab-runner/config.toml` otherwise, and
/// `config.toml` in the working directory when there is no home.
pub fn default_config_path() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/etc/gitlab-runner/config.toml");
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home)
            .join(".gitlab-runner")
            .join("config.toml"),
        _ => PathBuf::from("config.toml"),
    }
}

/// Reads and parses `path`. A missing file is an empty config, as gitlab-runner treats it for
/// `register`; `run` checks for runners itself.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(source) => parse(path, &source),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Loaded {
            config: Config::default(),
            unknown_keys: Vec::new(),
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses `source` as the contents of `path`. `url` and `token` are expanded from the
/// environment (`$VAR`, `${VAR}`), as gitlab-runner's `configfile` loader does.
pub fn parse(path: &Path, source: &str) -> Result<Loaded, ConfigError> {
    let invalid = |err: toml::de::Error| {
        let offset = err.span().map_or(0, |span| span.start);
        ConfigError::Invalid {
            position: Position::at(path, source, offset),
            message: err.message().trim_end().to_owned(),
        }
    };
    let deserializer = toml::Deserializer::parse(source).map_err(invalid)?;
    let mut ignored = Vec::new();
    let mut config: Config = serde_ignored::deserialize(deserializer, |key| {
        // serde_ignored writes `?` for an `Option` layer; it is not part of the key.
        let key = key.to_string();
        ignored.push(
            key.split('.')
                .filter(|segment| *segment != "?")
                .collect::<Vec<_>>()
                .join("."),
        );
    })
    .map_err(invalid)?;
    for runner in &mut config.runners {
        runner.url = expand_env(&runner.url);
        runner.token = expand_env(&runner.token);
    }
    let document = toml_edit::Document::parse(source.to_owned()).ok();
    let unknown_keys = ignored
        .into_iter()
        .map(|key| {
            let position = document
                .as_ref()
                .and_then(|doc| key_offset(doc, &key))
                .map(|offset| Position::at(path, source, offset));
            UnknownKey { key, position }
        })
        .collect();
    Ok(Loaded {
        config,
        unknown_keys,
    })
}

/// Finds the byte offset of the key at a dotted path such as `runners.0.docker.foo`.
fn key_offset(document: &toml_edit::Document<String>, dotted: &str) -> Option<usize> {
    enum Node<'a> {
        Item(&'a toml_edit::Item),
        Table(&'a toml_edit::Table),
    }
    let mut node = Node::Table(document.as_table());
    let mut segments = dotted.split('.').peekable();
    while let Some(segment) = segments.next() {
        if let Ok(index) = segment.parse::<usize>() {
            node = match node {
                Node::Item(toml_edit::Item::ArrayOfTables(tables)) => {
                    Node::Table(tables.get(index)?)
                }
                _ => return None,
            };
            continue;
        }
        let table: &dyn toml_edit::TableLike = match node {
            Node::Item(item) => item.as_table_like()?,
            Node::Table(table) => table,
        };
        let (key, value) = table.get_key_value(segment)?;
        if segments.peek().is_none() {
            return key.span().map(|span| span.start);
        }
        node = Node::Item(value);
    }
    None
}

/// Expands `$VAR` and `${VAR}` from the process environment (Go `os.ExpandEnv`: an unset
/// variable is empty).
fn expand_env(value: &str) -> String {
    if !value.contains('$') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if consumed == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(&std::env::var(name).unwrap_or_default());
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{ConfigError, parse};

    /// A config as gitlab-runner 17 writes and documents it: every key the runner issue lists,
    /// and the zero values `register` writes (`network_mtu = 0`, the Kubernetes
    /// `*_overwrite_allowed = ""`), with one typo.
    const GITLAB_RUNNER_CONFIG: &str = r#"concurrent = 4
check_interval = 3
log_level = "info"
log_format = "runner"
listen_address = "127.0.0.1:9252"
connection_max_age = "15m0s"
shutdown_timeout = 30

[session_server]
  session_timeout = 1800

[[runners]]
  name = "build-1"
  url = "https://gitlab.example.com/"
  id = 42
  token = "glrt-t1_AbCdEfGhIjKlMnOp"
  token_obtained_at = 2026-01-02T03:04:05Z
  token_expires_at = 0001-01-01T00:00:00Z
  executor = "docker"
  shell = "bash"
  builds_dir = "/builds"
  cache_dir = "/cache"
  limit = 2
  request_concurrency = 2
  output_limit = 8192
  clone_url = "https://gitlab.internal"
  environment = ["A=1"]
  pre_get_sources_script = "echo pre-get"
  pre_build_script = "echo pre"
  post_build_script = "echo post"
  [runners.custom_build_dir]
  [runners.cache]
    Type = "s3"
    Shared = true
    MaxUploadedArchiveSize = 0
    [runners.cache.s3]
      ServerAddress = "s3.example.com"
      BucketName = "cache"
    [runners.cache.gcs]
    [runners.cache.azure]
  [runners.docker]
    tls_verify = false
    image = "alpine:3"
    privileged = false
    disable_entrypoint_overwrite = false
    oom_kill_disable = false
    disable_cache = false
    pull_policy = ["always", "if-not-present"]
    volumes = ["/cache"]
    shm_size = 0
    network_mtu = 0
    imagee = "typo"

[[runners]]
  name = "k8s"
  url = "https://gitlab.example.com/"
  token = "glrt-k8s"
  executor = "kubernetes"
  [runners.kubernetes]
    host = ""
    bearer_token_overwrite_allowed = false
    image = ""
    namespace = ""
    namespace_overwrite_allowed = ""
    namespace_per_job = false
    node_selector_overwrite_allowed = ""
    node_tolerations_overwrite_allowed = ""
    pod_labels_overwrite_allowed = ""
    service_account_overwrite_allowed = ""
    helper_memory_limit_overwrite_max_allowed = "1Gi"
    [runners.kubernetes.init_permissions_container_security_context]
    [runners.kubernetes.build_container_security_context]
    [runners.kubernetes.volumes]
    [runners.kubernetes.dns_config]

[[runners]]
  name = "ssh"
  url = "https://gitlab.example.com/"
  token = "glrt-ssh"
  executor = "ssh"
  [runners.ssh]
    host = "build.example.com"
    port = "22"
    user = "ci"
    identity_file = "/etc/ci/key"

[[runners]]
  name = "custom"
  url = "https://gitlab.example.com/"
  token = "glrt-custom"
  executor = "custom"
  [runners.custom]
    prepare_exec = "/ci/prepare"
    run_exec = "/ci/run"
    cleanup_exec = "/ci/cleanup"
"#;

    #[test]
    fn gitlab_runner_config_loads_and_unknown_keys_name_their_line() {
        let loaded = parse(Path::new("config.toml"), GITLAB_RUNNER_CONFIG).expect("valid config");
        assert_eq!(loaded.config.concurrent(), 4);
        let runner = &loaded.config.runners[0];
        assert_eq!(runner.limit(), Some(2));
        assert_eq!(runner.short_token(), "AbCdEfGhI");
        assert_eq!(runner.cache.as_ref().and_then(|c| c.shared), Some(true));
        let warnings: Vec<String> = loaded
            .unknown_keys
            .iter()
            .map(ToString::to_string)
            .collect();
        let typo = GITLAB_RUNNER_CONFIG
            .lines()
            .position(|line| line.contains("imagee"))
            .expect("the fixture has a typo")
            + 1;
        assert_eq!(
            warnings,
            [format!(
                "config.toml:{typo}:5: unknown key `runners.0.docker.imagee` is ignored"
            )]
        );
        let config = &loaded.config;
        assert_eq!(config.log_format.as_deref(), Some("runner"));
        assert_eq!(config.listen_address.as_deref(), Some("127.0.0.1:9252"));
        assert_eq!(config.shutdown_timeout, Some(30));
        assert_eq!(runner.request_concurrency, Some(2));
        assert_eq!(runner.output_limit, Some(8192));
        assert_eq!(runner.clone_url.as_deref(), Some("https://gitlab.internal"));
        assert_eq!(runner.post_build_script.as_deref(), Some("echo post"));
        assert_eq!(runner.docker.as_ref().and_then(|d| d.network_mtu), Some(0));
        let names: Vec<&str> = config.runners.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["build-1", "k8s", "ssh", "custom"]);
        assert!(config.runners[1].kubernetes.is_some());
        assert_eq!(
            config.runners[2]
                .ssh
                .as_ref()
                .and_then(|s| s.host.as_deref()),
            Some("build.example.com")
        );
        assert_eq!(
            config.runners[3]
                .custom
                .as_ref()
                .and_then(|c| c.run_exec.as_deref()),
            Some("/ci/run")
        );
    }

    #[test]
    fn wrong_type_names_file_line_and_column() {
        let err = parse(Path::new("c.toml"), "concurrent = \"four\"\n").expect_err("invalid");
        let ConfigError::Invalid { position, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((position.line, position.column), (1, 14));
    }
}
