//! Job trace lines as `runnel exec` shows them: section boundaries, echoed commands (GitLab's
//! green `$ command` lines) and output without ANSI sequences.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07").expect("the ANSI pattern is valid")
});

/// One line of a trace, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceLine {
    /// A build stage (trace section) started.
    SectionStart {
        /// The section's name (`step_script`, ...).
        name: String,
        /// Its header line.
        header: String,
    },
    /// A build stage ended.
    SectionEnd {
        /// The section's name.
        name: String,
        /// How long it took.
        duration: Duration,
    },
    /// An echoed command (`$ make test`), without the `$ `.
    Command(String),
    /// Anything else, without ANSI sequences.
    Output(String),
}

impl TraceLine {
    /// Classifies one line of trace text (without its line ending). GitLab's section markers
    /// (`section_start:<time>:<name>\r\x1b[0K`) are removed.
    pub fn from_text(line: &str) -> TraceLine {
        let mut text = line.trim_end_matches('\r');
        while let Some(pos) = text.find("\r\x1b[0K") {
            let head = &text[..pos];
            if head.contains("section_start:") || head.contains("section_end:") {
                text = &text[pos + "\r\x1b[0K".len()..];
            } else {
                break;
            }
        }
        // Carriage returns redraw a line (progress bars): the last drawing wins.
        let visible = text.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        match visible.strip_prefix("\x1b[32;1m$ ") {
            Some(cmd) => TraceLine::Command(strip_ansi(cmd)),
            None => TraceLine::Output(strip_ansi(visible)),
        }
    }
}

/// `text` without ANSI escape sequences.
pub(crate) fn strip_ansi(text: &str) -> String {
    if text.contains('\x1b') {
        ANSI.replace_all(text, "").into_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::TraceLine;

    #[test]
    fn commands_and_output_are_told_apart() {
        assert_eq!(
            TraceLine::from_text("\x1b[32;1m$ echo hi\x1b[0;m"),
            TraceLine::Command("echo hi".into())
        );
        assert_eq!(
            TraceLine::from_text("\x1b[31mred\x1b[0m text"),
            TraceLine::Output("red text".into())
        );
        assert_eq!(
            TraceLine::from_text("section_end:1700000002:step_script\r\x1b[0Kafter"),
            TraceLine::Output("after".into())
        );
        assert_eq!(
            TraceLine::from_text("50%\r100%"),
            TraceLine::Output("100%".into())
        );
    }
}
