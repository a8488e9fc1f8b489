//! Connecting to the API server: an explicit `host` (with `ca_file`, `cert_file`/`key_file`,
//! `bearer_token`), else the kubeconfig (its `context`), else the pod's service account.
//!
//! GitLab: gitlab-runner `executors/kubernetes/util.go` `getKubeClientConfig`: `host` set means
//! the explicit configuration, otherwise the default loading rules (kubeconfig, in-cluster).

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use kube::{Client, Config};

use crate::settings::Connection;

/// The API server could not be reached or configured.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No kubeconfig and not inside a cluster, or a broken kubeconfig.
    #[error(
        "failed to load the Kubernetes configuration (kubeconfig or in-cluster service account)"
    )]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A certificate, key or CA file could not be read.
    #[error("failed to read `{path}`")]
    File {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `host` is not a URL.
    #[error("`host` is not a valid URL: {0:?}")]
    Host(String),
    /// The HTTP client could not be built (bad certificates, …).
    #[error("failed to create a Kubernetes client for {host}")]
    Client {
        /// The API server.
        host: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// The client configuration of `connection`; `bearer_token` replaces the configured one (a
/// job's allowed `KUBERNETES_BEARER_TOKEN`).
pub async fn client_config(
    connection: &Connection,
    bearer_token: Option<&str>,
) -> Result<Config, ConnectError> {
    let mut config = match &connection.host {
        Some(host) => explicit(connection, host).await?,
        None => {
            let options = KubeConfigOptions {
                context: connection.context.clone(),
                ..KubeConfigOptions::default()
            };
            match Kubeconfig::read() {
                Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| ConnectError::Config(Box::new(err)))?,
                Err(kubeconfig_error) => Config::incluster()
                    .map_err(|_| ConnectError::Config(Box::new(kubeconfig_error)))?,
            }
        }
    };
    if let Some(token) = bearer_token.or(connection.bearer_token.as_deref()) {
        config.auth_info.token = Some(token.to_owned().into());
    }
    Ok(config)
}

/// gitlab-runner's explicit configuration as a one-context kubeconfig, so kube-rs reads the
/// certificate files and builds TLS exactly as for a kubeconfig on disk.
async fn explicit(connection: &Connection, host: &str) -> Result<Config, ConnectError> {
    let rest = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"));
    let valid = rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with(['/', ':']));
    if !valid {
        return Err(ConnectError::Host(host.to_owned()));
    }
    for path in [
        &connection.ca_file,
        &connection.cert_file,
        &connection.key_file,
    ]
    .into_iter()
    .flatten()
    {
        std::fs::metadata(path).map_err(|source| ConnectError::File {
            path: path.display().to_string(),
            source,
        })?;
    }
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "runnel".to_owned(),
            cluster: Some(Cluster {
                server: Some(host.to_owned()),
                certificate_authority: path(&connection.ca_file),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "runnel".to_owned(),
            auth_info: Some(AuthInfo {
                client_certificate: path(&connection.cert_file),
                client_key: path(&connection.key_file),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "runnel".to_owned(),
            context: Some(Context {
                cluster: "runnel".to_owned(),
                user: Some("runnel".to_owned()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("runnel".to_owned()),
        ..Kubeconfig::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|err| ConnectError::Config(Box::new(err)))
}

/// A client for `config`, and the API server's address for error messages.
pub fn client(config: Config) -> Result<(Client, String), ConnectError> {
    let host = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| ConnectError::Client {
        host: host.clone(),
        source,
    })?;
    Ok((client, host))
}
