//! A Git repository served over HTTPS with a certificate of a private CA, as a GitLab with a
//! self-signed certificate serves it: Git's "dumb" HTTP protocol (static files of a bare
//! repository after `git update-server-info`), enough for a clone or fetch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server: its base URL and the CA certificate (PEM) that signed its certificate.
pub(crate) struct HttpsRepo {
    pub(crate) url: String,
    pub(crate) ca_pem: String,
}

impl HttpsRepo {
    /// Serves the files under `root` on 127.0.0.1 until the test process exits.
    pub(crate) fn serve(root: &Path) -> Self {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("the server certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("the server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("the address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(accept(listener, acceptor, root));
        });
        Self {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: ca.pem(),
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    root: PathBuf,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    while let Ok((stream, _)) = listener.accept().await {
        let (acceptor, root) = (acceptor.clone(), root.clone());
        tokio::spawn(async move {
            // A client that refuses the certificate ends the handshake: nothing to serve.
            if let Ok(stream) = acceptor.accept(stream).await {
                let _ = respond(stream, &root).await;
            }
        });
    }
}

/// Answers one `GET` with the file it names (without its query), then closes.
async fn respond(
    mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    root: &Path,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await? == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let file = (!path.split('/').any(|part| part == ".."))
        .then(|| std::fs::read(root.join(path)).ok())
        .flatten();
    let (status, body) = match file {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", Vec::new()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
