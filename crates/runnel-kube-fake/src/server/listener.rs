//! The TCP side of the fault switches: a listener whose connections can all be cut at once
//! (each connection remembers the cut generation it was born in and fails every read and
//! write after a newer cut), so "the API server went away" reaches open watches, logs and
//! keep-alive connections, not only new ones. With TLS it also does the handshake and
//! remembers the user of a verified client certificate.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::shared::lock;

/// TLS of the listener: the acceptor, and the users of the client certificates it trusts.
pub(crate) struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub users: Arc<Mutex<HashMap<Vec<u8>, String>>>,
}

/// Accepts connections (TLS ones when `tls` is set) that die at the next cut.
pub(crate) struct CutListener {
    pub inner: TcpListener,
    pub cut: Arc<AtomicU64>,
    pub tls: Option<Tls>,
}

/// How long a client may take for the TLS handshake before it is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

impl axum::serve::Listener for CutListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                // Out of file descriptors or a reset before accept: try again shortly.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let born = self.cut.load(Ordering::SeqCst);
            let stream = CutStream {
                inner: stream,
                cut: self.cut.clone(),
                born,
            };
            let Some(tls) = &self.tls else {
                return (
                    Connection {
                        stream: Stream::Plain(stream),
                        user: None,
                    },
                    addr,
                );
            };
            // A client that fails the handshake (plain HTTP, an untrusted certificate) is
            // dropped, as the real server drops it.
            let Ok(Ok(secured)) =
                tokio::time::timeout(HANDSHAKE, tls.acceptor.accept(stream)).await
            else {
                continue;
            };
            let user = secured
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| lock(&tls.users).get(leaf.as_ref()).cloned());
            return (
                Connection {
                    stream: Stream::Tls(Box::new(secured)),
                    user,
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Who is on the other end: the user of a verified client certificate, if any.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub user: Option<String>,
}

impl Connected<IncomingStream<'_, CutListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CutListener>) -> Self {
        Peer {
            user: stream.io().user.clone(),
        }
    }
}

/// An accepted connection.
pub(crate) struct Connection {
    stream: Stream,
    user: Option<String>,
}

enum Stream {
    Plain(CutStream),
    Tls(Box<tokio_rustls::server::TlsStream<CutStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection that fails once the cut generation moves past the one it was born in.
pub(crate) struct CutStream {
    inner: TcpStream,
    cut: Arc<AtomicU64>,
    born: u64,
}

impl CutStream {
    fn check(&self) -> io::Result<()> {
        if self.cut.load(Ordering::SeqCst) == self.born {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the fake API server cut the connection",
            ))
        }
    }
}

impl AsyncRead for CutStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
