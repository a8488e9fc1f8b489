//! The running session server: its address, certificate and sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use runnel_api::SessionInfo;
use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;

use super::job_session::JobSession;
use super::tls::{TlsListener, self_signed};
use super::websocket::exec;
use crate::config::SessionServer as SessionServerConfig;

/// gitlab-runner's `DefaultSessionTimeout` (`common/consts.go`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Why the session server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// `listen_address` cannot be bound.
    #[error("failed to listen on `{address}` for the session server")]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `advertise_address` (or `listen_address`) is not `host:port`.
    #[error("invalid session server address `{address}`: {reason}")]
    Address {
        /// The address.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The certificate could not be made.
    #[error("failed to make the session server's certificate for `{host}`")]
    Certificate {
        /// The host it is for.
        host: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The running session server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sessions: Mutex<HashMap<String, Arc<JobSession>>>,
    /// `https://<advertise_address>`.
    advertise: String,
    /// The certificate, PEM.
    certificate: String,
    timeout: Duration,
}

impl SessionServer {
    /// Binds `listen_address`, makes the certificate for the advertised host and serves until
    /// the returned handle is dropped.
    pub async fn start(
        config: &SessionServerConfig,
    ) -> Result<(Self, AbortOnDropHandle<()>), SessionError> {
        let listen = config.listen_address.clone().unwrap_or_default();
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|source| SessionError::Listen {
                address: listen.clone(),
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|source| SessionError::Listen {
                address: listen.clone(),
                source,
            })?;
        // gitlab-runner `setAdvertiseAddress`: the listen address when none is set (here the
        // bound one, so that port 0 advertises the port it got).
        let advertise = match config.advertise_address.as_deref().map(str::trim) {
            Some(address) if !address.is_empty() => address.to_owned(),
            _ => bound.to_string(),
        };
        if advertise.starts_with("https://") || advertise.starts_with("http://") {
            return Err(SessionError::Address {
                address: advertise,
                reason: "url not valid, scheme defined",
            });
        }
        let host = host_of(&advertise).ok_or_else(|| SessionError::Address {
            address: advertise.clone(),
            reason: "expected `host:port`",
        })?;
        let certified = self_signed(&host).map_err(|source| SessionError::Certificate {
            host: host.clone(),
            source,
        })?;
        let timeout = match config.session_timeout {
            Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs()),
            _ => DEFAULT_TIMEOUT,
        };
        let server = Self {
            inner: Arc::new(Inner {
                sessions: Mutex::new(HashMap::new()),
                advertise: format!("https://{advertise}"),
                certificate: certified.pem,
                timeout,
            }),
        };
        let router = Router::new()
            .route("/session/{id}/exec", get(exec))
            .with_state(server.clone());
        let listener = TlsListener::new(listener, certified.config).map_err(|source| {
            SessionError::Listen {
                address: listen.clone(),
                source,
            }
        })?;
        tracing::info!(address = %bound, advertise = %server.inner.advertise, "session server listening");
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!("the session server stopped: {err}");
            }
        });
        Ok((server, AbortOnDropHandle::new(task)))
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<JobSession>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for a job request, and the `session` the request advertises
    /// (gitlab-runner `commands/multi.go` `requestJob` makes one for every request).
    pub fn open(&self) -> (Arc<JobSession>, SessionInfo) {
        let session = Arc::new(JobSession::new(
            random_hex(),
            random_hex(),
            self.inner.timeout,
        ));
        let info = SessionInfo {
            url: format!("{}/session/{}", self.inner.advertise, session.id),
            certificate: self.inner.certificate.clone(),
            authorization: session.token.clone(),
        };
        self.sessions().insert(session.id.clone(), session.clone());
        (session, info)
    }

    /// Ends `session`: its terminal closes and its URL answers 404 from now on.
    pub fn close(&self, session: &JobSession) {
        self.sessions().remove(&session.id);
        session.end.cancel();
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<JobSession>> {
        self.sessions().get(id).cloned()
    }
}

/// The host of `host:port`, without the brackets of an IPv6 address (Go's
/// `net.SplitHostPort`).
fn host_of(address: &str) -> Option<String> {
    let (host, port) = address.rsplit_once(':')?;
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// 32 random bytes as hex (gitlab-runner `helpers.GenerateRandomUUID(32)`).
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    if let Err(err) = getrandom::fill(&mut bytes) {
        // Without randomness a session would be guessable: make it unusable instead.
        tracing::error!("no random bytes for a terminal session: {err}");
        return String::new();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_split_like_go() {
        assert_eq!(host_of("127.0.0.1:8093").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:8093").as_deref(), Some("::1"));
        assert_eq!(
            host_of("runner.example.com:443").as_deref(),
            Some("runner.example.com")
        );
        assert_eq!(host_of("runner.example.com"), None);
        assert_eq!(host_of(":8093"), None);
    }
}
