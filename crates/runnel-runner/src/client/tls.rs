//! The TLS files of a `[[runners]]` entry and the job variables made of them.
//!
//! GitLab: gitlab-runner `network/client.go` (`tls-ca-file`, `tls-cert-file`, `tls-key-file`,
//! else `<config dir>/certs/<host>.crt`, `<host>.auth.crt`, `<host>.auth.key`; the CA chain a job
//! gets is the `tls-ca-file` content) and `common/build.go` `GetCITLSVariables`
//! (`CI_SERVER_TLS_CA_FILE`, and `CI_SERVER_TLS_CERT_FILE` + `CI_SERVER_TLS_KEY_FILE` when both
//! are set: internal file variables, the key not public).

use std::path::{Path, PathBuf};

use runnel_api::JobVariable;

use crate::config::RunnerConfig;

/// The TLS files a runner entry uses to talk to its GitLab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates (PEM).
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// The client key (PEM).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The configured files, else those of the certificate directory that exist.
    pub fn of(runner: &RunnerConfig, config_dir: &Path) -> Self {
        let host = reqwest::Url::parse(&runner.url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let certs = config_dir.join("certs");
        let pick = |configured: &Option<String>, fallback: String| -> Option<PathBuf> {
            match configured.as_deref().filter(|p| !p.is_empty()) {
                Some(path) => Some(PathBuf::from(path)),
                None => Some(certs.join(fallback)).filter(|p| !host.is_empty() && p.is_file()),
            }
        };
        Self {
            ca: pick(&runner.tls_ca_file, format!("{host}.crt")),
            cert: pick(&runner.tls_cert_file, format!("{host}.auth.crt")),
            key: pick(&runner.tls_key_file, format!("{host}.auth.key")),
        }
    }

    /// The job variables of these files: `CI_SERVER_TLS_CA_FILE` with the CA chain, and the
    /// client certificate and key when both are readable. A file that cannot be read gives no
    /// variable (the API client already refused it).
    pub fn job_variables(&self) -> Vec<JobVariable> {
        let read = |path: &Option<PathBuf>| {
            path.as_deref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .filter(|text| !text.is_empty())
        };
        let file = |key: &str, value: String, public: bool| JobVariable {
            public,
            internal: true,
            file: true,
            ..JobVariable::new(key, value)
        };
        let mut variables = Vec::new();
        if let Some(chain) = read(&self.ca) {
            variables.push(file("CI_SERVER_TLS_CA_FILE", chain, true));
        }
        if let (Some(cert), Some(key)) = (read(&self.cert), read(&self.key)) {
            variables.push(file("CI_SERVER_TLS_CERT_FILE", cert, true));
            variables.push(file("CI_SERVER_TLS_KEY_FILE", key, false));
        }
        variables
    }
}

#[cfg(test)]
mod tests {
    use super::TlsFiles;
    use crate::config::RunnerConfig;

    #[test]
    fn ca_chain_and_client_pair_become_internal_file_variables() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs");
        std::fs::write(certs.join("gitlab.example.crt"), "CHAIN").expect("ca");
        let runner = RunnerConfig {
            url: "https://gitlab.example/".into(),
            ..RunnerConfig::default()
        };
        let files = TlsFiles::of(&runner, dir.path());
        let vars = files.job_variables();
        assert_eq!(vars.len(), 1, "no client pair: {vars:?}");
        assert_eq!(vars[0].key, "CI_SERVER_TLS_CA_FILE");
        assert_eq!(vars[0].value, "CHAIN");
        assert!(vars[0].file && vars[0].internal && vars[0].public);

        std::fs::write(dir.path().join("c.pem"), "CERT").expect("cert");
        std::fs::write(dir.path().join("k.pem"), "KEY").expect("key");
        let runner = RunnerConfig {
            tls_cert_file: Some(dir.path().join("c.pem").display().to_string()),
            tls_key_file: Some(dir.path().join("k.pem").display().to_string()),
            ..runner
        };
        let vars = TlsFiles::of(&runner, dir.path()).job_variables();
        let keys: Vec<_> = vars.iter().map(|v| (v.key.as_str(), v.public)).collect();
        assert_eq!(
            keys,
            [
                ("CI_SERVER_TLS_CA_FILE", true),
                ("CI_SERVER_TLS_CERT_FILE", true),
                ("CI_SERVER_TLS_KEY_FILE", false)
            ]
        );
    }

    #[test]
    fn no_tls_files_no_variables() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runner = RunnerConfig {
            url: "https://gitlab.example/".into(),
            ..RunnerConfig::default()
        };
        assert!(TlsFiles::of(&runner, dir.path()).job_variables().is_empty());
    }
}
