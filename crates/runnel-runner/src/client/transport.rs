//! Sending one request to the coordinator with gitlab-runner's headers and its automatic
//! retries (`network/client.go`, `network/retry_requester.go`): statuses 408, 429, 500, 502,
//! 503, 504 and 512 or more, and network errors, are retried up to 5 attempts in total. The wait
//! is `RateLimit-ResetTime` (an HTTP date), else `Retry-After` (seconds), else an exponential
//! backoff from 100 ms, doubling, at most 60 s, with jitter.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::ClientError;
use crate::metrics::Metrics;

/// Attempts per request, the first included.
const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The `User-Agent` runnel sends, in gitlab-runner's layout
/// `gitlab-runner <version> (<branch>; <go version>; <os>/<arch>)`.
pub fn user_agent() -> String {
    format!(
        "runnel {} (main; rust; {}/{})",
        env!("CARGO_PKG_VERSION"),
        go_os(),
        go_arch()
    )
}

/// Go's name for this OS, which GitLab shows.
pub fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's name for this architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// A request id: a random UUID without dashes, as gitlab-runner's correlation id.
pub(crate) fn request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex::encode(bytes)
}

/// Which API call a request is, for metrics and logs (gitlab-runner's `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /runners`.
    RegisterRunner,
    /// `POST /runners/verify`.
    VerifyRunner,
    /// `DELETE /runners`, `DELETE /runners/managers`.
    UnregisterRunner,
    /// `POST /runners/reset_authentication_token`.
    ResetToken,
    /// `POST /jobs/request`.
    RequestJob,
    /// `PUT /jobs/:id`.
    UpdateJob,
    /// `PATCH /jobs/:id/trace`.
    PatchTrace,
    /// `POST /jobs/:id/artifacts`.
    UploadArtifacts,
    /// `GET /jobs/:id/artifacts`.
    DownloadArtifacts,
}

impl Endpoint {
    /// gitlab-runner's label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::RegisterRunner => "register_runner",
            Self::VerifyRunner => "verify_runner",
            Self::UnregisterRunner => "unregister_runner",
            Self::ResetToken => "reset_token",
            Self::RequestJob => "request_job",
            Self::UpdateJob => "update_job",
            Self::PatchTrace => "patch_trace",
            Self::UploadArtifacts => "upload_artifacts",
            Self::DownloadArtifacts => "download_artifacts",
        }
    }
}

/// Who a request is sent for, for metric labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLabels {
    pub(crate) runner: String,
    pub(crate) system_id: String,
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504) || status.as_u16() >= 512
}

/// Sends the request built by `build` (called again for each attempt, so bodies are fresh),
/// retrying as gitlab-runner does. Returns the last response, whatever its status.
pub(crate) async fn send(
    endpoint: Endpoint,
    labels: &RequestLabels,
    metrics: Option<&Metrics>,
    mut build: impl FnMut() -> RequestBuilder,
) -> Result<Response, ClientError> {
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 1;
    loop {
        let request = build()
            .header("User-Agent", user_agent())
            .header("X-Request-Id", request_id());
        let method = request
            .try_clone()
            .and_then(|r| r.build().ok())
            .map_or(Method::GET, |r| r.method().clone());
        let result = request.send().await;
        let status = result.as_ref().map(Response::status);
        if let Some(metrics) = metrics {
            let status_label = status
                .as_ref()
                .map_or("-1".into(), |s| s.as_u16().to_string());
            metrics.api_request(labels, endpoint.label(), &status_label, method.as_str());
        }
        let retry = match &result {
            Ok(response) => is_retryable(response.status()),
            Err(err) => err.is_connect() || err.is_timeout() || err.is_request(),
        };
        if !retry || attempt >= MAX_ATTEMPTS {
            return result.map_err(|source| ClientError::Network { endpoint, source });
        }
        let wait = result
            .as_ref()
            .ok()
            .and_then(server_wait)
            .unwrap_or_else(|| jitter(backoff));
        tracing::debug!(
            endpoint = endpoint.label(),
            attempt,
            ?status,
            ?wait,
            "retrying request"
        );
        tokio::time::sleep(wait.min(BACKOFF_MAX)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        attempt += 1;
    }
}

/// The wait the server asked for: `RateLimit-ResetTime` (an HTTP date) or `Retry-After`.
fn server_wait(response: &Response) -> Option<Duration> {
    let headers = response.headers();
    let reset = headers
        .get("RateLimit-ResetTime")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    if let Some(at) = reset {
        return Some(
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
        );
    }
    headers
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Parses an RFC 1123 date such as `Tue, 15 Nov 1994 08:12:31 GMT`.
fn parse_http_date(value: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let days = days_from_civil(year, i64::try_from(month).ok()? + 1, day);
    let secs = u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    base + base * u32::from(byte[0]) / 512
}

#[cfg(test)]
mod tests {
    use super::{days_from_civil, parse_http_date, request_id};

    #[test]
    fn http_dates_parse() {
        let at = parse_http_date("Thu, 01 Jan 1970 00:01:40 GMT").expect("valid date");
        assert_eq!(
            at.duration_since(std::time::UNIX_EPOCH)
                .expect("after epoch")
                .as_secs(),
            100
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn request_ids_are_dashless_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
