//! The `/metrics` endpoint: a minimal HTTP/1.1 server on `listen_address`, as gitlab-runner's
//! metrics server in `commands/multi.go` (`serveMetrics`, `restrictHTTPMethods`): `GET` and
//! `HEAD` of `/metrics` answer the exposition, other methods 405 and other paths 404. It must
//! not serve anything but the metrics (runnel has no `/debug` endpoints).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CONTENT_TYPE, Metrics};

/// The `Content-Type` of the 404 and 405 answers, as Go's `net/http` sends them.
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

impl Metrics {
    /// Serves `GET /metrics` on `listener` until the task is dropped. Other paths are 404 and
    /// other methods 405, as gitlab-runner's metrics server.
    pub async fn serve(self: std::sync::Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let Ok(read) = stream.read(&mut buffer).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buffer[..read]);
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
}
