//! Operator logs on stderr, configured as gitlab-runner configures its logrus logger
//! (`log/configuration.go`): the global `--log-level`/`-l`, `--log-format` and `--debug` flags
//! (environment `LOG_LEVEL`, `LOG_FORMAT`, `RUNNER_DEBUG`), and for `runnel run` the
//! `log_level`/`log_format` keys of `config.toml`, which apply only when the command line did not
//! set them and are applied again on every reload (`commands/multi.go`,
//! `updateLoggingConfiguration`).
//!
//! The three formats are logrus's: `runner` (the default) is runnel's human format, `text` is
//! logrus's `TextFormatter` (`time="…" level=info msg="…" key=value`) and `json` is logrus's
//! `JSONFormatter` (one object per line, keys sorted, the event's fields at the top level).
//! This module only formats; job output never goes through it (it is a trace, not a log).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The global logging flags (gitlab-runner's `logFlags`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LogArgs {
    /// Same as `--log-level debug`.
    #[arg(long, global = true, env = "RUNNER_DEBUG", value_parser = clap::builder::BoolishValueParser::new())]
    debug: bool,
    /// Log format: runner, text or json; overrides `log_format` in config.toml.
    #[arg(long, global = true, env = "LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log level: debug, info, warn, error, fatal or panic; overrides `log_level` in config.toml.
    #[arg(
        short = 'l',
        long,
        global = true,
        env = "LOG_LEVEL",
        value_name = "LEVEL"
    )]
    log_level: Option<String>,
}

/// A log format (gitlab-runner's `FormatRunner`, `FormatText`, `FormatJSON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// runnel's human format (the default).
    Runner = 0,
    /// logrus's `TextFormatter`.
    Text = 1,
    /// logrus's `JSONFormatter`.
    Json = 2,
}

impl LogFormat {
    fn parse(name: &str) -> Result<Self, LogConfigError> {
        match name {
            "runner" => Ok(Self::Runner),
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(LogConfigError::Format {
                name: name.to_owned(),
            }),
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Text,
            2 => Self::Json,
            _ => Self::Runner,
        }
    }
}

/// A log level or format that gitlab-runner would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LogConfigError {
    /// Not one of logrus's level names.
    #[error(
        "invalid log level `{name}`: expected one of debug, info, warn, error, fatal, panic (or trace)"
    )]
    Level {
        /// What was given.
        name: String,
    },
    /// Not one of the three formats.
    #[error("unknown log format `{name}`: expected one of runner, text, json")]
    Format {
        /// What was given.
        name: String,
    },
}

/// Parses a level as logrus's `ParseLevel` does (case-insensitive, `warning` = `warn`).
/// `fatal` and `panic` keep only errors: tracing has no level above error.
fn parse_level(name: &str) -> Result<LevelFilter, LogConfigError> {
    match name.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(LogConfigError::Level {
            name: name.to_owned(),
        }),
    }
}

/// The installed logger: what the command line fixed, and handles to change the rest.
#[derive(Clone)]
pub(crate) struct Logging {
    level: reload::Handle<LevelFilter, Registry>,
    format: Arc<AtomicU8>,
    level_from_cli: bool,
    format_from_cli: bool,
}

impl fmt::Debug for Logging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logging")
            .field(
                "format",
                &LogFormat::from_u8(self.format.load(Ordering::Relaxed)),
            )
            .field("level_from_cli", &self.level_from_cli)
            .field("format_from_cli", &self.format_from_cli)
            .finish_non_exhaustive()
    }
}

impl Logging {
    /// Installs the stderr logger with the command line's level and format (`info` and
    /// `runner` when not given), as gitlab-runner's `handleCliCtx` does before any command.
    pub(crate) fn init(args: &LogArgs) -> Result<Self, LogConfigError> {
        let mut level = args.log_level.as_deref().map(parse_level).transpose()?;
        // gitlab-runner: `--debug` wins over `--log-level`.
        if args.debug {
            level = Some(LevelFilter::DEBUG);
        }
        let format = args
            .log_format
            .as_deref()
            .map(LogFormat::parse)
            .transpose()?;
        let (filter, level_handle) = reload::Layer::new(level.unwrap_or(LevelFilter::INFO));
        let shared_format = Arc::new(AtomicU8::new(format.unwrap_or(LogFormat::Runner) as u8));
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(EventFormat {
                format: shared_format.clone(),
                runner: Format::default(),
            });
        // Another subscriber can only exist in tests that call this twice; the first one stays.
        let _ = Registry::default().with(filter).with(layer).try_init();
        Ok(Self {
            level: level_handle,
            format: shared_format,
            level_from_cli: level.is_some(),
            format_from_cli: format.is_some(),
        })
    }

    /// Applies `log_level` and `log_format` from a (re)loaded `config.toml` where the command
    /// line did not set them; a key that is absent means `info` / `runner` again
    /// (gitlab-runner `commands/multi.go`, `updateLoggingConfiguration`). Nothing changes when
    /// either value is invalid.
    pub(crate) fn apply_config(
        &self,
        log_level: Option<&str>,
        log_format: Option<&str>,
    ) -> Result<(), LogConfigError> {
        let level = parse_level(log_level.unwrap_or("info"))?;
        let format = LogFormat::parse(log_format.unwrap_or("runner"))?;
        if !self.format_from_cli {
            self.format.store(format as u8, Ordering::Relaxed);
        }
        if !self.level_from_cli {
            // Fails only when the subscriber is gone, and then nothing logs anyway.
            let _ = self.level.reload(level);
        }
        Ok(())
    }
}

/// Writes one event in the current format.
struct EventFormat {
    format: Arc<AtomicU8>,
    runner: Format,
}

impl<S, N> FormatEvent<S, N> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match LogFormat::from_u8(self.format.load(Ordering::Relaxed)) {
            LogFormat::Runner => self.runner.format_event(ctx, writer, event),
            LogFormat::Text => write_text(writer, event, &now_rfc3339_nano()),
            LogFormat::Json => write_json(writer, event, &now_rfc3339_nano()),
        }
    }
}

/// An event's message and fields, as logrus's `Entry` holds them.
#[derive(Default)]
struct Entry {
    message: String,
    fields: BTreeMap<String, serde_json::Value>,
}

impl Entry {
    fn of(event: &Event<'_>) -> Self {
        let mut entry = Self::default();
        event.record(&mut entry);
        entry
    }

    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            return;
        }
        // logrus `prefixFieldClashes`: a field named like a fixed key moves to `fields.<key>`.
        let name = match field.name() {
            key @ ("time" | "msg" | "level") => format!("fields.{key}"),
            key => key.to_owned(),
        };
        self.fields.insert(name, value);
    }
}

impl Visit for Entry {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, serde_json::Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, serde_json::Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), serde_json::Value::Number);
        self.insert(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, serde_json::Value::String(value.to_string()));
    }
}

/// logrus's level names: `Level.String()` says `warning`, not `warn`.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

/// logrus `JSONFormatter`: Go's `encoding/json` writes map keys sorted, so the fixed keys
/// `level`, `msg` and `time` sit among the fields in alphabetical order.
fn write_json(mut writer: Writer<'_>, event: &Event<'_>, time: &str) -> fmt::Result {
    let Entry {
        message,
        mut fields,
    } = Entry::of(event);
    fields.insert("level".into(), level_name(*event.metadata().level()).into());
    fields.insert("msg".into(), message.into());
    fields.insert("time".into(), time.into());
    let line = serde_json::to_string(&fields).map_err(|_| fmt::Error)?;
    writeln!(writer, "{line}")
}

/// logrus `TextFormatter` without colours: `time`, `level`, `msg` (when not empty), then the
/// fields sorted by key.
fn write_text(mut writer: Writer<'_>, event: &Event<'_>, time: &str) -> fmt::Result {
    let Entry { message, fields } = Entry::of(event);
    write!(writer, "time=")?;
    write_text_value(&mut writer, time)?;
    write!(writer, " level={}", level_name(*event.metadata().level()))?;
    // logrus trims one trailing newline from the message.
    let message = message.strip_suffix('\n').unwrap_or(&message);
    if !message.is_empty() {
        write!(writer, " msg=")?;
        write_text_value(&mut writer, message)?;
    }
    for (key, value) in &fields {
        write!(writer, " {key}=")?;
        match value {
            serde_json::Value::String(text) => write_text_value(&mut writer, text)?,
            other => write_text_value(&mut writer, &other.to_string())?,
        }
    }
    writeln!(writer)
}

/// logrus `needsQuoting`: a value is quoted (Go `%q`) unless every character is a letter, a
/// digit or one of `-._/@^+`. An empty value is not quoted.
fn write_text_value(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        return writer.write_str(value);
    }
    writer.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => writer.write_str("\\\"")?,
            '\\' => writer.write_str("\\\\")?,
            '\n' => writer.write_str("\\n")?,
            '\r' => writer.write_str("\\r")?,
            '\t' => writer.write_str("\\t")?,
            '\u{7}' => writer.write_str("\\a")?,
            '\u{8}' => writer.write_str("\\b")?,
            '\u{c}' => writer.write_str("\\f")?,
            '\u{b}' => writer.write_str("\\v")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(writer, "\\x{:02x}", u32::from(c))?,
            c => writer.write_char(c)?,
        }
    }
    writer.write_char('"')
}

/// The current time as Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped), in
/// UTC.
fn now_rfc3339_nano() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_nano(since_epoch.as_secs(), since_epoch.subsec_nanos())
}

fn rfc3339_nano(secs: u64, nanos: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::{LogConfigError, LogFormat, parse_level, rfc3339_nano};
    use tracing::level_filters::LevelFilter;

    #[test]
    fn times_are_go_rfc3339_nano_in_utc() {
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_795_825_434, 120_000_000),
            "2026-11-28T00:23:54.12Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400, 7),
            "2000-02-29T00:00:00.000000007Z"
        );
    }

    #[test]
    fn levels_parse_as_logrus_parse_level() {
        assert_eq!(parse_level("WARNING"), Ok(LevelFilter::WARN));
        assert_eq!(parse_level("fatal"), Ok(LevelFilter::ERROR));
        assert_eq!(
            parse_level("verbose").map_err(|e| e.to_string()),
            Err("invalid log level `verbose`: expected one of debug, info, warn, error, fatal, panic (or trace)".into())
        );
        assert_eq!(
            LogFormat::parse("pretty"),
            Err(LogConfigError::Format {
                name: "pretty".into()
            })
        );
    }
}
