//! The session server's TLS: a self-signed certificate for the advertised host, made at
//! start-up (gitlab-runner `helpers/certificate/x509.go`; GitLab pins it from the job
//! request's `session.certificate`), and a listener that does each handshake on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_util::task::AbortOnDropHandle;

/// How long a client may take for the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A certificate and the server configuration that presents it.
pub(super) struct Certified {
    /// The certificate, PEM, as the job request advertises it.
    pub(super) pem: String,
    pub(super) config: Arc<rustls::ServerConfig>,
}

/// Makes a self-signed certificate for `host` (an IP address or a DNS name).
pub(super) fn self_signed(
    host: &str,
) -> Result<Certified, Box<dyn std::error::Error + Send + Sync>> {
    let certified = rcgen::generate_simple_self_signed(vec![host.to_owned()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // gitlab-runner: `MinVersion: tls.VersionTLS12`.
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Certified {
        pem: certified.cert.pem(),
        config: Arc::new(config),
    })
}

/// Accepts TLS connections; a slow or failed handshake holds up no other client.
pub(super) struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accepting: AbortOnDropHandle<()>,
}

impl TlsListener {
    pub(super) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, accepted) = mpsc::channel(16);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, address) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::debug!("session server: failed to accept a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, address)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%address, "session server: TLS handshake failed: {err}");
                        }
                        Err(_) => {
                            tracing::debug!(%address, "session server: TLS handshake timed out")
                        }
                    }
                });
            }
        });
        Ok(Self {
            accepted,
            local,
            _accepting: AbortOnDropHandle::new(accepting),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accepting task is gone only when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
