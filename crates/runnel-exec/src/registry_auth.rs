//! Registry credentials for image pulls, resolved as gitlab-runner's `helpers/docker/auth`
//! `ResolveConfigs` does. Three sources, the first one naming a registry wins:
//!
//! 1. the job's `DOCKER_AUTH_CONFIG` variable (a Docker `config.json` document),
//! 2. the runner user's `~/.docker/config.json` (or the legacy `~/.dockercfg`),
//! 3. the job payload's `credentials` of type `registry` (GitLab's own registry).
//!
//! Each source may name credential helpers (`credsStore`, `credHelpers`): they run as Docker's
//! `docker-credential-<name>` programs do (`list`, `get` with the server on stdin).
//!
//! The Docker executor picks the entry for an image by its path (`registry/group/image`, then
//! each parent); the Kubernetes executor puts them all in a `kubernetes.io/dockercfg` secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use runnel_api::Credentials;
use serde::{Deserialize, Serialize};

/// Docker's default registry, the one an image without a registry host comes from.
const DEFAULT_REGISTRY: &str = "docker.io";

/// One registry's credentials, with Docker's `AuthConfig` JSON names (as the `.dockercfg`
/// document of a Kubernetes image-pull secret wants them).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// The user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// The password or token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `base64(username:password)`; decoded into the two fields above when read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    /// The e-mail address (legacy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The registry as the source named it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An identity token instead of a password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token for the registry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// A registry's credentials and where they came from (`$DOCKER_AUTH_CONFIG`, a file, or
/// `job payload (GitLab Registry)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInfo {
    /// Where the credentials came from.
    pub source: String,
    /// The credentials.
    pub auth: AuthConfig,
}

/// Credentials by registry path (`registry.example.com`, `docker.io`, `host:5000/group`).
pub type RegistryAuths = BTreeMap<String, RegistryInfo>;

/// One source's credentials, by the registry as it names it.
type Configs = BTreeMap<String, AuthConfig>;

/// What a Docker `config.json` holds that matters here.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthConfig>,
    #[serde(default, rename = "credsStore")]
    creds_store: String,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

/// The credentials of every source that could be read, and why the others could not.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Credentials by registry path.
    pub auths: RegistryAuths,
    /// One line for each source that was skipped (bad JSON, a failing credential helper), naming
    /// it.
    pub skipped: Vec<String>,
}

/// The words of the one error that stops the resolution (gitlab-runner `errPathTraversal`).
const TRAVERSAL: &str = "path traversal is not allowed";

/// Resolves every registry's credentials for a job (see the module doc). `home` is the runner
/// user's home directory. As gitlab-runner's `ResolveConfigs`: a source that cannot be read is
/// skipped (see [`Resolved::skipped`]), the others still count; only a credential helper named
/// by a path is an error. A source that is absent is nothing.
pub fn resolve(
    docker_auth_config: Option<&str>,
    home: Option<&Path>,
    credentials: &[Credentials],
) -> Result<Resolved, String> {
    let helpers = Helpers {
        path: std::env::var_os("PATH"),
    };
    resolve_with(&helpers, docker_auth_config, home, credentials)
}

fn resolve_with(
    helpers: &Helpers,
    docker_auth_config: Option<&str>,
    home: Option<&Path>,
    credentials: &[Credentials],
) -> Result<Resolved, String> {
    let mut resolved = Resolved::default();
    let mut skip = |err: String| {
        if err.ends_with(TRAVERSAL) {
            return Err(err);
        }
        resolved.skipped.push(err);
        Ok(())
    };
    let mut found = Vec::new();
    if let Some(document) = docker_auth_config.filter(|d| !d.trim().is_empty()) {
        match read_config(document, helpers) {
            Ok(configs) => found.push(("$DOCKER_AUTH_CONFIG".to_owned(), configs)),
            Err(err) => skip(format!("$DOCKER_AUTH_CONFIG: {err}"))?,
        }
    }
    match home.map(|home| home_config(home, helpers)).transpose() {
        Ok(Some(Some((file, configs)))) => found.push((file.display().to_string(), configs)),
        Ok(_) => {}
        Err(err) => skip(err)?,
    }
    let mut auths = RegistryAuths::new();
    for (source, configs) in found {
        add(&mut auths, &source, configs);
    }
    let payload = credentials
        .iter()
        .filter(|c| c.kind == "registry")
        .map(|c| {
            let auth = AuthConfig {
                username: c.username.clone(),
                password: c.password.clone(),
                serveraddress: c.url.clone(),
                ..AuthConfig::default()
            };
            (c.url.clone(), auth)
        })
        .collect();
    add(&mut auths, "job payload (GitLab Registry)", payload);
    resolved.auths = auths;
    Ok(resolved)
}

/// The credentials for `image`: the entry for its path, else for each parent path
/// (gitlab-runner `ResolveConfigForImage`).
pub fn for_image<'a>(auths: &'a RegistryAuths, image: &str) -> Option<&'a RegistryInfo> {
    let mut path = image_path(image);
    loop {
        if let Some(info) = auths.get(&path) {
            return Some(info);
        }
        path.truncate(path.rfind('/')?);
    }
}

fn add(auths: &mut RegistryAuths, source: &str, configs: BTreeMap<String, AuthConfig>) {
    for (registry, auth) in configs {
        auths
            .entry(registry_path(&registry))
            .or_insert_with(|| RegistryInfo {
                source: source.to_owned(),
                auth,
            });
    }
}

/// `~/.docker/config.json`, else `~/.dockercfg`; `None` when neither exists.
fn home_config(home: &Path, helpers: &Helpers) -> Result<Option<(PathBuf, Configs)>, String> {
    let modern = home.join(".docker").join("config.json");
    let legacy = home.join(".dockercfg");
    for file in [modern, legacy] {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let configs = if file.ends_with(".dockercfg") {
                    read_legacy(&text)
                } else {
                    read_config(&text, helpers)
                };
                let configs = configs.map_err(|e| format!("{}: {e}", file.display()))?;
                return Ok(Some((file, configs)));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(format!("{}: {err}", file.display())),
        }
    }
    Ok(None)
}

/// A `config.json` document: its `auths`, then what its credential helpers know.
fn read_config(text: &str, helpers: &Helpers) -> Result<BTreeMap<String, AuthConfig>, String> {
    let config: ConfigFile =
        serde_json::from_str(text).map_err(|e| format!("not a Docker config document: {e}"))?;
    let mut auths = BTreeMap::new();
    for (server, auth) in config.auths {
        auths.insert(server.clone(), decoded(auth, &server)?);
    }
    if !config.creds_store.is_empty() {
        let helper = helper_name(&config.creds_store)?;
        for server in helpers.list(helper)? {
            auths.insert(server.clone(), helpers.get(helper, &server)?);
        }
    }
    for (server, helper) in &config.cred_helpers {
        auths.insert(server.clone(), helpers.get(helper_name(helper)?, server)?);
    }
    Ok(auths)
}

/// The legacy `~/.dockercfg`: the `auths` map without its wrapper.
fn read_legacy(text: &str) -> Result<BTreeMap<String, AuthConfig>, String> {
    let entries: BTreeMap<String, AuthConfig> =
        serde_json::from_str(text).map_err(|e| format!("not a .dockercfg document: {e}"))?;
    entries
        .into_iter()
        .map(|(server, auth)| Ok((server.clone(), decoded(auth, &server)?)))
        .collect()
}

/// Docker's `configfile` reading: `auth` becomes user and password, the key the server.
fn decoded(mut auth: AuthConfig, server: &str) -> Result<AuthConfig, String> {
    if !auth.auth.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| format!("the `auth` of `{server}` is not base64"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("the `auth` of `{server}` is not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| format!("the `auth` of `{server}` is not `user:password`"))?;
        auth.username = user.to_owned();
        auth.password = password.trim_matches('\0').to_owned();
        auth.auth.clear();
    }
    auth.serveraddress = server.to_owned();
    Ok(auth)
}

/// A helper name must not be a path (gitlab-runner refuses path traversal).
fn helper_name(name: &str) -> Result<&str, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("credential helper `{name}`: {TRAVERSAL}"));
    }
    Ok(name)
}

/// Docker's credential helpers, `docker-credential-<name>` programs found on `path`.
struct Helpers {
    path: Option<std::ffi::OsString>,
}

impl Helpers {
    /// `docker-credential-<helper> list`: the servers it has credentials for.
    fn list(&self, helper: &str) -> Result<Vec<String>, String> {
        let out = self.run(helper, "list", "")?;
        let servers: BTreeMap<String, String> = serde_json::from_str(&out)
            .map_err(|e| format!("docker-credential-{helper} list: {e}"))?;
        Ok(servers.into_keys().collect())
    }

    /// `docker-credential-<helper> get` for `server`.
    fn get(&self, helper: &str, server: &str) -> Result<AuthConfig, String> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let out = self.run(helper, "get", server)?;
        let answer: Answer = serde_json::from_str(&out)
            .map_err(|e| format!("docker-credential-{helper} get {server}: {e}"))?;
        let mut auth = AuthConfig {
            serveraddress: server.to_owned(),
            ..AuthConfig::default()
        };
        // Docker's convention: the user `<token>` means the secret is an identity token.
        if answer.username == "<token>" {
            auth.identitytoken = answer.secret;
        } else {
            auth.username = answer.username;
            auth.password = answer.secret;
        }
        Ok(auth)
    }

    fn run(&self, helper: &str, verb: &str, input: &str) -> Result<String, String> {
        let program = format!("docker-credential-{helper}");
        let mut command = Command::new(&program);
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        let mut child = command
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program} {verb}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program} {verb}: {e}"))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout);
            return Err(format!(
                "{program} {verb}: {} ({})",
                said.trim(),
                out.status
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// gitlab-runner `convertToRegistryPath`: `https://index.docker.io/v1/` → `docker.io`,
/// `Registry.Example.com/group/` → `registry.example.com/group`, a tag dropped.
fn registry_path(reference: &str) -> String {
    let lower = reference.to_ascii_lowercase();
    if let Some(rest) = ["https://", "http://"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &reference[p.len()..]))
    {
        let host = rest
            .split('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        return if host == "index.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            host
        };
    }
    let mut path = reference.trim_end_matches('/');
    if let (Some(colon), Some(slash)) = (path.rfind(':'), path.rfind('/'))
        && colon > slash
    {
        path = &path[..colon];
    }
    lower_host(path)
}

/// gitlab-runner `dockerImageNamePath`: the image's path without its tag, with `docker.io/`
/// in front of a Docker Hub name.
fn image_path(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    let (dir, name) = match image.rfind('/') {
        Some(i) => (&image[..=i], &image[i + 1..]),
        None => ("", image),
    };
    let name = name.split(':').next().unwrap_or(name);
    let path = format!("{dir}{name}");
    let first = image.split('/').next().unwrap_or_default();
    let hub = !image.contains('/')
        || (!first.contains('.') && !first.contains(':') && first != "localhost");
    if hub {
        lower_host(&format!("{DEFAULT_REGISTRY}/{path}"))
    } else if first == "index.docker.io" {
        lower_host(path.trim_start_matches("index."))
    } else {
        lower_host(&path)
    }
}

fn lower_host(path: &str) -> String {
    match path.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", host.to_ascii_lowercase()),
        None => path.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(url: &str, user: &str) -> Credentials {
        Credentials {
            kind: "registry".into(),
            url: url.into(),
            username: user.into(),
            password: "secret".into(),
        }
    }

    #[test]
    fn registry_paths_are_normalised_as_gitlab_runner_does() {
        assert_eq!(registry_path("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(
            registry_path("http://Registry.Example.com/v2/"),
            "registry.example.com"
        );
        assert_eq!(
            registry_path("Registry.Example.com/Group/"),
            "registry.example.com/Group"
        );
        assert_eq!(
            registry_path("host:5000/group/image:1.0"),
            "host:5000/group/image"
        );
        assert_eq!(registry_path("host:5000"), "host:5000");
    }

    #[test]
    fn image_paths_name_docker_hub_and_drop_tags() {
        assert_eq!(image_path("python:3.11"), "docker.io/python");
        assert_eq!(
            image_path("library/python:3.11"),
            "docker.io/library/python"
        );
        assert_eq!(image_path("index.docker.io/a/b:1"), "docker.io/a/b");
        assert_eq!(image_path("Host:5000/g/i:2"), "host:5000/g/i");
        assert_eq!(image_path("localhost/i"), "localhost/i");
        assert_eq!(image_path("reg.io/i@sha256:abc"), "reg.io/i");
    }

    #[test]
    fn docker_auth_config_wins_over_the_payload_and_auth_is_decoded() {
        let document = r#"{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}}"#;
        let auths = resolve(
            Some(document),
            None,
            &[
                credential("registry.example.com", "gitlab-ci-token"),
                credential("gitlab.example.com:5050", "gitlab-ci-token"),
            ],
        )
        .expect("resolves")
        .auths;
        let ours = &auths["registry.example.com"];
        assert_eq!(ours.source, "$DOCKER_AUTH_CONFIG");
        assert_eq!(
            (ours.auth.username.as_str(), ours.auth.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(ours.auth.auth, "");
        assert_eq!(
            auths["gitlab.example.com:5050"].source,
            "job payload (GitLab Registry)"
        );
        let found = for_image(&auths, "registry.example.com/group/app:1").expect("found");
        assert_eq!(found.auth.username, "user");
        assert!(for_image(&auths, "python:3.11").is_none());
    }

    #[test]
    fn the_home_config_comes_between_the_variable_and_the_payload() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(home.path().join(".docker")).expect("mkdir");
        std::fs::write(
            home.path().join(".docker/config.json"),
            r#"{"auths": {"https://index.docker.io/v1/": {"username": "hub", "password": "p"}}}"#,
        )
        .expect("write");
        let auths = resolve(
            None,
            Some(home.path()),
            &[credential("docker.io", "payload")],
        )
        .expect("resolves")
        .auths;
        assert_eq!(auths["docker.io"].auth.username, "hub");
        let found = for_image(&auths, "python:3.11").expect("docker hub");
        assert!(
            found.source.ends_with(".docker/config.json"),
            "{}",
            found.source
        );
    }

    #[test]
    fn unreadable_sources_are_skipped_and_named_and_only_helper_paths_are_errors() {
        // gitlab-runner `ResolveConfigs`: an unreadable source is skipped, the others count.
        let payload = [credential("registry.example.com", "gitlab-ci-token")];
        let resolved = resolve(Some("{not json"), None, &payload).expect("skips the variable");
        assert!(resolved.auths.contains_key("registry.example.com"));
        assert_eq!(resolved.skipped.len(), 1, "{:?}", resolved.skipped);
        assert!(
            resolved.skipped[0].starts_with("$DOCKER_AUTH_CONFIG: not a Docker config document"),
            "{:?}",
            resolved.skipped
        );
        let bad_auth = r#"{"auths": {"r.io": {"auth": "!!"}}}"#;
        let resolved = resolve(Some(bad_auth), None, &[]).expect("skips the variable");
        assert!(
            resolved.skipped[0].contains("the `auth` of `r.io` is not base64"),
            "{:?}",
            resolved.skipped
        );
        // Only a helper named by a path stops it, as gitlab-runner's `errPathTraversal`.
        let err = resolve(Some(r#"{"credsStore": "../evil"}"#), None, &[]).expect_err("path");
        assert!(err.contains("path traversal is not allowed"), "{err}");
    }

    #[test]
    fn credential_helpers_are_asked_for_their_servers() {
        let bin = tempfile::tempdir().expect("tempdir");
        let helper = bin.path().join("docker-credential-runneltest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread -r server\ncase $1 in\n  list) echo '{\"store.io\":\"u\"}';;\n  get) printf '{\"ServerURL\":\"%s\",\"Username\":\"u-%s\",\"Secret\":\"s\"}' \"$server\" \"$server\";;\nesac\n",
        )
        .expect("write");
        let mut perms = std::fs::metadata(&helper).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&helper, perms).expect("chmod");
        let helpers = Helpers {
            path: Some(format!("{}:/usr/bin:/bin", bin.path().display()).into()),
        };
        let document =
            r#"{"credsStore": "runneltest", "credHelpers": {"helper.io": "runneltest"}}"#;
        let auths = resolve_with(&helpers, Some(document), None, &[])
            .expect("resolves")
            .auths;
        let names: Vec<_> = auths.keys().map(String::as_str).collect();
        assert_eq!(names, ["helper.io", "store.io"]);
        assert_eq!(auths["store.io"].auth.username, "u-store.io");
        assert_eq!(auths["helper.io"].auth.password, "s");
        let missing = r#"{"credHelpers": {"x.io": "absent-helper"}}"#;
        let resolved = resolve_with(&helpers, Some(missing), None, &[]).expect("skipped");
        assert!(resolved.auths.is_empty());
        assert!(
            resolved.skipped[0].contains("docker-credential-absent-helper get"),
            "{:?}",
            resolved.skipped
        );
    }
}
