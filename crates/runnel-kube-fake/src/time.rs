//! Timestamps as the API server writes them (`metav1.Time`: RFC 3339, whole seconds, UTC).

use jiff::Timestamp;

/// Now, as `2026-01-02T03:04:05Z`.
pub(crate) fn now() -> String {
    format_seconds(Timestamp::now())
}

/// Now plus `seconds`, for `deletionTimestamp`.
pub(crate) fn in_seconds(seconds: i64) -> String {
    let now = Timestamp::now();
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(now);
    format_seconds(later)
}

/// A Docker timestamp (RFC 3339 with nanoseconds) as whole seconds; `None` for Docker's zero
/// time (`0001-01-01T00:00:00Z`, a container that never started or ended).
pub(crate) fn from_docker(text: &str) -> Option<String> {
    let timestamp: Timestamp = text.parse().ok()?;
    if timestamp.as_second() < 0 {
        return None;
    }
    Some(format_seconds(timestamp))
}

fn format_seconds(timestamp: Timestamp) -> String {
    // Go marshals `metav1.Time` truncated to the second.
    let whole = Timestamp::from_second(timestamp.as_second()).unwrap_or(timestamp);
    whole.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::from_docker;

    #[test]
    fn docker_times() {
        assert_eq!(
            from_docker("2026-12-07T01:22:43.123456789Z").as_deref(),
            Some("2026-12-07T01:22:43Z")
        );
        assert_eq!(from_docker("0001-01-01T00:00:00Z"), None);
        assert!(super::now().ends_with('Z'));
    }
}
