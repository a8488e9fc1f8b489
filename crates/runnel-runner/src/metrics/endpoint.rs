//! The `/metrics` endpoint: a minimal HTTP/1.1 server on `listen_address`, as gitlab-runner's
//! metrics server in `commands/multi.go` (`serveMetrics`, `restrictHTTPMethods`): `GET` and
//! `HEAD` of `/metrics` answer the exposition, other methods 405 and other paths 404. It must
//! not serve anything but the metrics (runnel has no `/debug` endpoints).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CONTENT_TYPE, Metrics};

/// The `Content-Type` of the 404 and 405 answers, as Go's `net/http` sends them.
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// The longest request head read; the request line comes first, so this is plenty.
const MAX_HEAD: usize = 8192;

/// The first and the longest wait after a failed `accept` (Go's `http.Server.Serve`: 5 ms,
/// doubling up to 1 s), so that running out of file descriptors does not spin a core.
const ACCEPT_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(5);
const ACCEPT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);

impl Metrics {
    /// Serves `GET /metrics` on `listener` until the task is dropped. Other paths are 404 and
    /// other methods 405, as gitlab-runner's metrics server.
    pub async fn serve(self: std::sync::Arc<Self>, listener: tokio::net::TcpListener) {
        let mut retry = ACCEPT_RETRY_FIRST;
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => {
                    retry = ACCEPT_RETRY_FIRST;
                    stream
                }
                Err(err) => {
                    tracing::debug!(%err, ?retry, "metrics server: failed to accept a connection");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(ACCEPT_RETRY_MAX);
                    continue;
                }
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let path = path.split('?').next().unwrap_or("");
                let (status, content_type, body) = match (method, path) {
                    ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, metrics.encode()),
                    // Go's `http.Error` and `http.NotFound`, as gitlab-runner answers.
                    (_, "/metrics") => (
                        "405 Method Not Allowed",
                        PLAIN_TEXT,
                        "Method Not Allowed\n".to_owned(),
                    ),
                    _ => (
                        "404 Not Found",
                        PLAIN_TEXT,
                        "404 page not found\n".to_owned(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    if method == "HEAD" { "" } else { &body }
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Reads the request head: until the blank line that ends it, the end of the stream, or
/// [`MAX_HEAD`] bytes. One `read` is not enough: a client may send the head in pieces.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::metrics::text_format;
    use crate::metrics::{CONTENT_TYPE, Metrics, RunnerLabels};

    async fn request(port: u16, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_text_0_0_4_and_refuses_other_paths_and_methods() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let metrics = Arc::new(Metrics::new());
        metrics.job_received(&RunnerLabels {
            runner: "abc".into(),
            runner_name: "r".into(),
            system_id: "s_1".into(),
        });
        let server = tokio::spawn(metrics.serve(listener));
        let response = request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}")),
            "{head}"
        );
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        text_format::parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        assert!(body.contains("gitlab_runner_jobs_total{"), "{body}");
        let head_only = request(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head_only.ends_with("\r\n\r\n"), "{head_only}");
        let post = request(port, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.ends_with("\r\n\r\nMethod Not Allowed\n"), "{post}");
        let other = request(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
        server.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_head_sent_in_pieces_is_read_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(Arc::new(Metrics::new()).serve(listener));
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(b"GE").await.expect("write");
        // Let the server accept and read the first piece before the rest is sent.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        stream
            .write_all(b"T /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        server.abort();
    }
}
