//! A git repository served over smart HTTP by running `git http-backend` as a CGI program, as
//! GitLab's Workhorse serves `/<project>.git/info/refs` and `/git-upload-pack` (GitLab:
//! gitlab-workhorse `internal/git/info-refs.go`, `internal/git/upload-pack.go`). Real git
//! clients clone and fetch from it, shallow fetches included.

use std::path::Path;
use std::process::Stdio;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

/// The `Authorization` header value of HTTP basic auth for `user:password`.
pub(crate) fn basic_authorization(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GitLab's answer to a git request without valid credentials.
pub(crate) fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password.\n",
    )
        .into_response();
    response.headers_mut().insert(
        "WWW-Authenticate",
        HeaderValue::from_static("Basic realm=\"GitLab\""),
    );
    response
}

/// Runs `git http-backend` for `rest` (`info/refs`, `git-upload-pack`, …) of the repository at
/// `repo` (a work tree or a bare repository) and turns its CGI output into a response.
pub(crate) async fn http_backend(
    repo: &Path,
    method: &str,
    rest: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_TRANSLATED", format!("{}/{rest}", repo.display()))
        .env("PATH_INFO", format!("/{rest}"))
        .env("REQUEST_METHOD", method)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "gitlab-ci-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut child) = command.spawn() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot run git http-backend",
        )
            .into_response();
    };
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let Ok(output) = child.wait_with_output().await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "git http-backend failed").into_response();
    };
    cgi_response(&output.stdout)
}

/// A response from CGI output: header lines (`Status:` among them), a blank line, the body.
fn cgi_response(output: &[u8]) -> Response {
    let (head, body) = match output.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&output[..at], &output[at + 4..]),
        None => match output.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&output[..at], &output[at + 2..]),
            None => return (StatusCode::BAD_GATEWAY, "malformed CGI output").into_response(),
        },
    };
    let mut response = body.to_vec().into_response();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok());
            if let Some(status) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                *response.status_mut() = status;
            }
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.trim()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::basic_authorization;

    #[test]
    fn basic_authorization_is_base64_of_user_colon_password() {
        assert_eq!(basic_authorization("a", "b"), "Basic YTpi");
        assert_eq!(basic_authorization("ab", "c"), "Basic YWI6Yw==");
        assert_eq!(
            basic_authorization("gitlab-ci-token", "x"),
            "Basic Z2l0bGFiLWNpLXRva2VuOng="
        );
    }
}
