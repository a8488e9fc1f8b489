//! Automatic runner token rotation (gitlab-runner `commands/multi.go`): a token with an expiry
//! is reset at `token_obtained_at + 0.75 × (token_expires_at − token_obtained_at)` with
//! `POST /runners/reset_authentication_token`, earliest first, and the new token is written
//! into `config.toml` in place (comments and unknown keys kept); the reload then applies it.
//! `FF_DISABLE_AUTOMATIC_TOKEN_ROTATION = true` in `[runners.feature_flags]` turns it off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runnel_api::RunnerToken;
use tokio::sync::watch;

use crate::client::{Coordinator, http_client_for};
use crate::config::{Config, ConfigEditor, RunnerConfig};
use crate::register::config_dir;
use crate::trace_patch::error_chain;

/// Seconds since the epoch of a TOML datetime; `None` for local or date-only values and for
/// gitlab-runner's zero time `0001-01-01T00:00:00Z`.
fn unix_seconds(at: &toml::value::Datetime) -> Option<i64> {
    let date = at.date?;
    let time = at.time?;
    if date.year <= 1 {
        return None;
    }
    let days = crate::client::days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let mut secs = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second.unwrap_or(0));
    if let Some(toml::value::Offset::Custom { minutes }) = at.offset {
        secs -= i64::from(minutes) * 60;
    }
    Some(secs)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// When `runner`'s token should be rotated (unix seconds), if it expires at all.
pub fn rotation_due(runner: &RunnerConfig) -> Option<i64> {
    if runner
        .feature_flags
        .get("FF_DISABLE_AUTOMATIC_TOKEN_ROTATION")
        == Some(&true)
    {
        return None;
    }
    let expires = unix_seconds(runner.token_expires_at.as_ref()?)?;
    let obtained = runner
        .token_obtained_at
        .as_ref()
        .and_then(unix_seconds)
        .unwrap_or_else(now);
    Some(obtained + (expires - obtained) * 3 / 4)
}

fn datetime(secs: i64) -> Option<toml::value::Datetime> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::register::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
    .parse()
    .ok()
}

/// Rotates tokens as they come due, until `config` closes.
pub async fn rotate_tokens(
    config_path: PathBuf,
    mut config: watch::Receiver<Arc<Config>>,
    http: reqwest::Client,
    system_id: String,
) {
    loop {
        let snapshot = config.borrow_and_update().clone();
        let next = snapshot
            .runners
            .iter()
            .filter_map(|runner| Some((rotation_due(runner)?, runner.clone())))
            .min_by_key(|(due, _)| *due);
        let wait = next
            .as_ref()
            .map_or(Duration::from_secs(24 * 3600), |(due, _)| {
                Duration::from_secs(u64::try_from(due - now()).unwrap_or(0))
            });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = config.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        }
        let Some((_, runner)) = next else { continue };
        if let Err(err) = rotate(&config_path, &runner, &http, &system_id).await {
            tracing::error!(runner = %runner.short_token(), "failed to rotate the runner token: {err}");
            // Retry later rather than in a tight loop.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                changed = config.changed() => if changed.is_err() { return; },
            }
        } else {
            // Wait for the reload of the rewritten file before planning the next rotation.
            if config.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn rotate(
    config_path: &std::path::Path,
    runner: &RunnerConfig,
    http: &reqwest::Client,
    system_id: &str,
) -> Result<(), String> {
    // The runner's own TLS files, as for polling.
    let http =
        http_client_for(http, runner, &config_dir(config_path)).map_err(|err| error_chain(&err))?;
    let coordinator = Coordinator::new(
        http,
        &runner.url,
        RunnerToken::new(runner.token.clone()),
        system_id.to_owned(),
    )
    .map_err(|err| error_chain(&err))?;
    let answer = coordinator
        .reset_token()
        .await
        .map_err(|err| error_chain(&err))?;
    let expires = answer
        .token_expires_at
        .as_deref()
        .and_then(|at| at.parse().ok());
    let mut editor = ConfigEditor::open(config_path).map_err(|err| error_chain(&err))?;
    editor
        .set_token(
            &runner.token,
            answer.token.expose(),
            datetime(now()),
            expires,
        )
        .map_err(|err| error_chain(&err))?;
    editor.save().map_err(|err| error_chain(&err))?;
    tracing::info!(runner = %runner.short_token(), new = %crate::config::short_token(answer.token.expose()), "rotated the runner token");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{datetime, rotation_due, unix_seconds};
    use crate::config::RunnerConfig;

    #[test]
    fn rotation_is_due_at_three_quarters_of_the_token_lifetime() {
        let runner = RunnerConfig {
            token_obtained_at: "2026-01-01T00:00:00Z".parse().ok(),
            token_expires_at: "2026-01-05T00:00:00Z".parse().ok(),
            ..RunnerConfig::default()
        };
        let obtained =
            unix_seconds(&"2026-01-01T00:00:00Z".parse().expect("datetime")).expect("seconds");
        assert_eq!(rotation_due(&runner), Some(obtained + 3 * 86_400));
    }

    #[test]
    fn zero_expiry_means_no_rotation() {
        let runner = RunnerConfig {
            token_expires_at: "0001-01-01T00:00:00Z".parse().ok(),
            ..RunnerConfig::default()
        };
        assert_eq!(rotation_due(&runner), None);
    }

    #[test]
    fn datetimes_round_trip() {
        let at = datetime(1_767_225_600).expect("datetime");
        assert_eq!(at.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(unix_seconds(&at), Some(1_767_225_600));
    }
}
