//! A TCP proxy in front of the fake GitLab that can be taken down and brought back on the same
//! address, so tests see what a runner sees when GitLab goes away: cut connections, then
//! refused ones.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[derive(Debug, Default)]
struct State {
    tasks: Option<JoinSet<()>>,
}

/// The proxy.
#[derive(Debug)]
pub(crate) struct Proxy {
    address: SocketAddr,
    backend: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    pub(crate) async fn start(backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("local address");
        let proxy = Self {
            address,
            backend,
            state: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    fn serve(&self, listener: TcpListener) {
        let backend = self.backend;
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accepted = connections.clone();
        tasks.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut set = accepted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                set.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        // Dropping the connection set aborts every proxied connection.
        tasks.spawn(async move {
            let _keep = connections;
            std::future::pending::<()>().await;
        });
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tasks = Some(tasks);
    }

    pub(crate) async fn down(&self) {
        let tasks = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tasks
            .take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    pub(crate) async fn up(&self) {
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}
