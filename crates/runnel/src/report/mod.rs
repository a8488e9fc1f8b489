//! What `runnel exec` shows: the console reporter (live, coloured lines and a final table) and
//! the `--json` document. Both consume the same [`runnel_local::Event`]s and
//! [`runnel_local::JobRecord`]s from runnel-local's driver.

mod console;
mod json;

use std::time::Duration;

pub(crate) use console::Console;
pub(crate) use json::Json;

/// Seconds with two decimals, as the table and `--json` show durations.
pub(crate) fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100.0).round() / 100.0
}

/// Quotes a job name for a shell command line when needed.
pub(crate) fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
