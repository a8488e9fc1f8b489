//! Operator logs on stderr, configured as gitlab-runner configures its logrus logger
//! (`log/configuration.go`): the global `--log-level`/`-l`, `--log-format` and `--debug` flags
//! (environment `LOG_LEVEL`, `LOG_FORMAT`, `RUNNER_DEBUG`), and for `runnel run` the
//! `log_level`/`log_format` keys of `config.toml`, which apply only when the command line did not
//! set them and are applied again on every reload (`commands/multi.go`,
//! `updateLoggingConfiguration`).
//!
//! The three formats are gitlab-runner's: `runner` (the default) is its `RunnerTextFormatter`
//! (`WARNING: message   key=value`, coloured on a terminal), `text` is
//! logrus's `TextFormatter` (`time="…" level=info msg="…" key=value`) and `json` is logrus's
//! `JSONFormatter` (one object per line, keys sorted, the event's fields at the top level), both
//! with logrus's default time layout (RFC 3339 to the second).
//! This module only formats; job output never goes through it (it is a trace, not a log).
//! Once `runnel run` has its metrics, every warning and error written is also counted in
//! `gitlab_runner_errors_total`, as gitlab-runner's logrus hook counts log lines
//! (`helpers/prometheus/log_hook.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use runnel_runner::metrics::Metrics;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
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
    /// gitlab-runner's `RunnerTextFormatter` (the default).
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
    errors: Arc<OnceLock<Arc<Metrics>>>,
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
                colours: std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            });
        let errors = Arc::new(OnceLock::new());
        // Another subscriber can only exist in tests that call this twice; the first one stays.
        let _ = Registry::default()
            .with(filter)
            .with(layer)
            .with(CountErrors(errors.clone()))
            .try_init();
        Ok(Self {
            level: level_handle,
            format: shared_format,
            level_from_cli: level.is_some(),
            format_from_cli: format.is_some(),
            errors,
        })
    }

    /// Counts every warning and error written from now on in `metrics`
    /// (`gitlab_runner_errors_total`). Only the first call takes effect.
    pub(crate) fn count_errors_in(&self, metrics: Arc<Metrics>) {
        let _ = self.errors.set(metrics);
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
        let (level, format) = settings_to_apply(
            (self.level_from_cli, self.format_from_cli),
            log_level,
            log_format,
        )?;
        if let Some(format) = format {
            self.format.store(format as u8, Ordering::Relaxed);
        }
        if let Some(level) = level {
            // Fails only when the subscriber is gone, and then nothing logs anyway.
            let _ = self.level.reload(level);
        }
        Ok(())
    }
}

/// The level and format that `config.toml` sets, each `None` where the command line set it
/// (`from_cli`: level, format). Only what applies is checked, as gitlab-runner's
/// `updateLoggingConfiguration` parses `log_level` only when `--log-level` was not given.
fn settings_to_apply(
    (level_from_cli, format_from_cli): (bool, bool),
    log_level: Option<&str>,
    log_format: Option<&str>,
) -> Result<(Option<LevelFilter>, Option<LogFormat>), LogConfigError> {
    let level = (!level_from_cli)
        .then(|| parse_level(log_level.unwrap_or("info")))
        .transpose()?;
    let format = (!format_from_cli)
        .then(|| LogFormat::parse(log_format.unwrap_or("runner")))
        .transpose()?;
    Ok((level, format))
}

/// Writes one event in the current format.
struct EventFormat {
    format: Arc<AtomicU8>,
    /// Colours in the `runner` format: only on a terminal, and not with `NO_COLOR`.
    colours: bool,
}

impl<S, N> FormatEvent<S, N> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let line = match LogFormat::from_u8(self.format.load(Ordering::Relaxed)) {
            LogFormat::Runner => runner_line(Entry::of(event), level, self.colours),
            LogFormat::Text => text_line(Entry::of(event), level, &now_rfc3339()),
            LogFormat::Json => json_line(Entry::of(event), level, &now_rfc3339()),
        };
        fmt::Write::write_str(&mut writer, &line)
    }
}

/// Counts the warnings and errors that pass the level filter, once metrics exist.
struct CountErrors(Arc<OnceLock<Arc<Metrics>>>);

impl<S: Subscriber> Layer<S> for CountErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if let Some(metrics) = self.0.get() {
            metrics.log_entry(event.metadata().level());
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
        self.insert_named(field.name(), value);
    }

    fn insert_named(&mut self, name: &str, value: serde_json::Value) {
        if name == "message" {
            self.message = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            return;
        }
        // logrus `prefixFieldClashes`: a field named like a fixed key moves to `fields.<key>`.
        let name = match name {
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

/// gitlab-runner's `RunnerTextFormatter` (`log/runner_formatter.go`): `WARNING: ` or
/// `ERROR: ` before the message, the message padded to 50 columns with the prefix, then
/// ` key=value` for each field sorted by key, with the level's colour on the message and the
/// keys. No time: journald and `docker logs` add their own.
fn runner_line(entry: Entry, level: Level, colours: bool) -> String {
    const BOLD_WHITE: &str = "\x1b[37;1m";
    const YELLOW: &str = "\x1b[0;33m";
    const BOLD_RED: &str = "\x1b[31;1m";
    const RESET: &str = "\x1b[0;m";
    let (colour, prefix) = match level {
        Level::DEBUG => (BOLD_WHITE, ""),
        Level::WARN => (YELLOW, "WARNING: "),
        Level::ERROR => (BOLD_RED, "ERROR: "),
        _ => ("", ""),
    };
    let (colour, reset) = if colours { (colour, RESET) } else { ("", "") };
    let width = 50 - prefix.len();
    let Entry { message, fields } = entry;
    let mut line = format!("{colour}{prefix}{message:<width$}{reset} ");
    for (key, value) in &fields {
        match value {
            serde_json::Value::String(text) => {
                line.push_str(&format!(" {colour}{key}{reset}={text}"));
            }
            other => line.push_str(&format!(" {colour}{key}{reset}={other}")),
        }
    }
    line.push('\n');
    line
}

/// logrus `JSONFormatter`: Go's `encoding/json` writes map keys sorted, so the fixed keys
/// `level`, `msg` and `time` sit among the fields in alphabetical order.
fn json_line(entry: Entry, level: Level, time: &str) -> String {
    let Entry {
        message,
        mut fields,
    } = entry;
    fields.insert("level".into(), level_name(level).into());
    fields.insert("msg".into(), message.into());
    fields.insert("time".into(), time.into());
    let json = serde_json::Value::Object(fields.into_iter().collect()).to_string();
    // Go's JSON encoder, as logrus sets it up (`SetEscapeHTML(true)`), escapes `<`, `>` and `&`,
    // and always U+2028 and U+2029. Those characters only occur inside JSON strings.
    let mut line = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        match c {
            '<' => line.push_str("\\u003c"),
            '>' => line.push_str("\\u003e"),
            '&' => line.push_str("\\u0026"),
            '\u{2028}' => line.push_str("\\u2028"),
            '\u{2029}' => line.push_str("\\u2029"),
            c => line.push(c),
        }
    }
    line.push('\n');
    line
}

/// logrus `TextFormatter` without colours: `time`, `level`, `msg` (when not empty), then the
/// fields sorted by key.
fn text_line(entry: Entry, level: Level, time: &str) -> String {
    let Entry { message, fields } = entry;
    let mut line = String::from("time=");
    push_text_value(&mut line, time);
    line.push_str(" level=");
    line.push_str(level_name(level));
    // logrus trims one trailing newline from the message.
    let message = message.strip_suffix('\n').unwrap_or(&message);
    if !message.is_empty() {
        line.push_str(" msg=");
        push_text_value(&mut line, message);
    }
    for (key, value) in &fields {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        match value {
            serde_json::Value::String(text) => push_text_value(&mut line, text),
            other => push_text_value(&mut line, &other.to_string()),
        }
    }
    line.push('\n');
    line
}

/// logrus `needsQuoting`: a value is quoted (Go `%q`) unless every character is a letter, a
/// digit or one of `-._/@^+`. An empty value is not quoted.
fn push_text_value(line: &mut String, value: &str) {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            '\u{7}' => line.push_str("\\a"),
            '\u{8}' => line.push_str("\\b"),
            '\u{c}' => line.push_str("\\f"),
            '\u{b}' => line.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                line.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// The current time as logrus writes it by default: Go's `time.RFC3339`, to the second. runnel
/// writes it in UTC (gitlab-runner uses the local zone, which is UTC in its containers).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    runnel_runner::register::rfc3339_utc(secs)
}

#[cfg(test)]
mod tests {
    use super::{
        Entry, LogConfigError, LogFormat, json_line, parse_level, runner_line, settings_to_apply,
        text_line,
    };
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    const TIME: &str = "2026-11-28T00:23:54Z";

    fn entry(message: &str, fields: &[(&str, serde_json::Value)]) -> Entry {
        let mut entry = Entry::default();
        entry.insert_named("message", message.into());
        for (name, value) in fields {
            entry.insert_named(name, value.clone());
        }
        entry
    }

    #[test]
    fn json_lines_are_logrus_objects_with_sorted_keys_and_html_escaped() {
        let line = json_line(
            entry(
                "job <1> & co",
                &[
                    ("runner", "abc".into()),
                    ("time", "clash".into()),
                    ("attempts", 2.into()),
                ],
            ),
            Level::WARN,
            TIME,
        );
        assert_eq!(
            line,
            "{\"attempts\":2,\"fields.time\":\"clash\",\"level\":\"warning\",\
             \"msg\":\"job \\u003c1\\u003e \\u0026 co\",\"runner\":\"abc\",\
             \"time\":\"2026-11-28T00:23:54Z\"}\n"
        );
    }

    #[test]
    fn text_lines_quote_only_what_logrus_quotes() {
        let line = text_line(
            entry(
                "runner started\n",
                &[
                    ("name", "box-1.a/b@c^d+e_f".into()),
                    ("executor", "shell".into()),
                    ("note", "say \"hi\"\tnow\u{1}".into()),
                    ("empty", "".into()),
                    ("ok", true.into()),
                ],
            ),
            Level::INFO,
            TIME,
        );
        assert_eq!(
            line,
            "time=\"2026-11-28T00:23:54Z\" level=info msg=\"runner started\" empty= \
             executor=shell name=box-1.a/b@c^d+e_f note=\"say \\\"hi\\\"\\tnow\\x01\" ok=true\n"
        );
        let bare = text_line(entry("", &[]), Level::ERROR, TIME);
        assert_eq!(bare, "time=\"2026-11-28T00:23:54Z\" level=error\n");
    }

    #[test]
    fn runner_lines_are_gitlab_runners_padded_message_and_sorted_fields() {
        let fields = [("runner", "abc".into()), ("executor", "shell".into())];
        let line = runner_line(entry("runner started", &fields), Level::INFO, false);
        assert_eq!(
            line,
            format!("{:<50}  executor=shell runner=abc\n", "runner started")
        );
        let line = runner_line(entry("disk full", &[("n", 3.into())]), Level::WARN, false);
        assert_eq!(line, format!("WARNING: {:<41}  n=3\n", "disk full"));
        let line = runner_line(entry("boom", &[("n", 3.into())]), Level::ERROR, true);
        assert_eq!(
            line,
            format!(
                "\x1b[31;1mERROR: {:<43}\x1b[0;m  \x1b[31;1mn\x1b[0;m=3\n",
                "boom"
            )
        );
    }

    #[test]
    fn the_config_sets_only_what_the_command_line_left_open() {
        assert_eq!(
            settings_to_apply((false, false), None, None),
            Ok((Some(LevelFilter::INFO), Some(LogFormat::Runner)))
        );
        assert_eq!(
            settings_to_apply((false, true), Some("warn"), Some("json")),
            Ok((Some(LevelFilter::WARN), None))
        );
        // An invalid value the command line overrides is not an error, as in gitlab-runner.
        assert_eq!(
            settings_to_apply((true, false), Some("verbose"), Some("json")),
            Ok((None, Some(LogFormat::Json)))
        );
        assert_eq!(
            settings_to_apply((true, true), Some("verbose"), Some("pretty")),
            Ok((None, None))
        );
        assert!(settings_to_apply((false, true), Some("verbose"), None).is_err());
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
