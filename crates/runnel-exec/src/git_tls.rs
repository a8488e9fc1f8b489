//! The GitLab server's TLS files for git: a GitLab with a self-signed certificate (the runner's
//! `tls-ca-file`) serves its repositories with it too.
//!
//! GitLab: gitlab-runner `shells/abstract.go` `writeGitSSLConfig`: for each of
//! `CI_SERVER_TLS_CA_FILE`, `CI_SERVER_TLS_CERT_FILE` and `CI_SERVER_TLS_KEY_FILE` the job has
//! (`common/build.go` `GetCITLSVariables`), `git config <where> http.<scheme://host>.sslCAInfo`
//! (`sslCert`, `sslKey`) `"$<variable>"`, where `<where>` is `--global` (no shared builds
//! directory) or the external config file included by the commands that talk to the server
//! (shared). It sets no `GIT_SSL_CAINFO`.

use crate::variables::JobVariables;

/// The job's TLS file variables and the `http.<url>.*` setting each one gives git.
const SETTINGS: [(&str, &str); 3] = [
    ("CI_SERVER_TLS_CA_FILE", "sslCAInfo"),
    ("CI_SERVER_TLS_CERT_FILE", "sslCert"),
    ("CI_SERVER_TLS_KEY_FILE", "sslKey"),
];

/// `scheme://host[:port]` of `url` without user information, path or query (gitlab-runner
/// `url_helpers.OnlySchemeAndHost`); `None` for a URL without a scheme.
pub(crate) fn scheme_and_host(url: &str) -> Option<String> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (!host.is_empty()).then(|| format!("{}{host}", &url[..scheme_end + 3]))
}

/// The TLS settings for a fetch of `repo_url`: `(variable, git key, content)` for each TLS
/// file variable the job has, the key `http.<scheme://host>.<setting>`. None for a remote
/// without a scheme.
pub(crate) fn settings<'a>(
    variables: &'a JobVariables,
    repo_url: &str,
) -> Vec<(&'static str, String, &'a str)> {
    let Some(host) = scheme_and_host(repo_url) else {
        return Vec::new();
    };
    SETTINGS
        .iter()
        .filter_map(|(variable, setting)| {
            let content = variables.get(variable).filter(|c| !c.is_empty())?;
            Some((*variable, format!("http.{host}.{setting}"), content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{scheme_and_host, settings};
    use crate::variables::JobVariables;

    #[test]
    fn scheme_and_host_drops_credentials_and_path() {
        assert_eq!(
            scheme_and_host("https://gitlab-ci-token:tok@gitlab.example:8443/g/p.git").as_deref(),
            Some("https://gitlab.example:8443")
        );
        assert_eq!(scheme_and_host("/srv/repo.git"), None);
    }

    #[test]
    fn each_tls_variable_gives_its_http_setting() {
        let variables = JobVariables::from_pairs(&[
            ("CI_SERVER_TLS_CA_FILE", "CHAIN"),
            ("CI_SERVER_TLS_KEY_FILE", "KEY"),
        ]);
        let found = settings(&variables, "https://x:y@gitlab.example/g/p.git");
        assert_eq!(
            found,
            [
                (
                    "CI_SERVER_TLS_CA_FILE",
                    "http.https://gitlab.example.sslCAInfo".to_owned(),
                    "CHAIN"
                ),
                (
                    "CI_SERVER_TLS_KEY_FILE",
                    "http.https://gitlab.example.sslKey".to_owned(),
                    "KEY"
                ),
            ]
        );
        assert!(settings(&variables, "/srv/repo.git").is_empty());
    }
}
