//! HTTPS for the fake, as a cluster has it: a certificate authority made at start, a server
//! certificate for `127.0.0.1`/`localhost` signed by it, and client certificates signed by it
//! for users who authenticate with a certificate instead of a token (the `cert_file`/`key_file`
//! of gitlab-runner's configuration, `client-certificate-data` of a kubeconfig).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::shared::lock;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A key or certificate could not be made.
    #[error("failed to make a certificate for the fake cluster")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("failed to configure TLS for the fake cluster")]
    Config(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("failed to configure client certificate verification for the fake cluster")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// TLS was asked of a cluster started without it.
    #[error("the fake cluster was started without TLS (`FakeOptions::tls`)")]
    Disabled,
}

/// The cluster's certificate authority, and the users of the client certificates it issued.
pub(crate) struct Authority {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// Client certificate (DER) → user name (its common name).
    users: Arc<Mutex<HashMap<Vec<u8>, String>>>,
}

impl Authority {
    pub(crate) fn new() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name("runnel-fake-ca", &[]);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key)?;
        Ok(Self {
            ca_pem: certificate.pem(),
            ca_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
            users: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate for `user` in `groups` (PEM certificate, PEM key).
    pub(crate) fn client_certificate(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<(String, String), TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(user, groups);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.issuer)?;
        lock(&self.users).insert(certificate.der().to_vec(), user.to_owned());
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// The server side: a certificate for 127.0.0.1, client certificates verified against
    /// the CA but not required (a bearer token does as well), HTTP/1.1 only (WebSocket).
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params.distinguished_name = name("kube-apiserver", &[]);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let certificate = params.signed_by(&key, &self.issuer)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let chain = vec![certificate.der().clone(), self.ca_der.clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The users of issued client certificates, for the listener.
    pub(crate) fn users(&self) -> Arc<Mutex<HashMap<Vec<u8>, String>>> {
        self.users.clone()
    }
}

/// `CN=<user>, O=<group>…`, as the API server reads a client certificate's user and groups.
fn name(common: &str, groups: &[&str]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common);
    for group in groups {
        name.push(DnType::OrganizationName, *group);
    }
    name
}
