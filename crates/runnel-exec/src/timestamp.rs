//! `FF_TIMESTAMPS`: every trace line starts with `<UTC time> <stream><type><append flag>`, for
//! example `2026-11-28T00:42:03.123456Z 01O ` (stream 1 is the scripts, stream 0 the runner's
//! own messages; `+` instead of the final space continues the previous line).
//!
//! GitLab: gitlab-runner `common/buildlogger/internal/timestamper/timestamper.go`, applied after
//! masking (`buildlogger.go` `wrap`): a write is cut at each newline, and each line gets a header;
//! a write holding a carriage return but no newline is written at once as one line (so progress
//! bars show), and the next line continues it; a partial line is buffered up to 8 KiB, and when
//! the stream closes it ends with a newline. Unlike gitlab-runner, runnel's shell executor reads
//! stdout and stderr through one pipe, so script output is all stream `01O`.

use std::time::{SystemTime, UNIX_EPOCH};

/// gitlab-runner's `bufSize`: a partial line longer than this is written without waiting.
const BUF_SIZE: usize = 8 * 1024;

/// `buildlogger.StreamExecutorLevel`: the runner's own messages.
pub(crate) const RUNNER_STREAM: u8 = 0;
/// `buildlogger.StreamWorkLevel`: the scripts' output.
pub(crate) const WORK_STREAM: u8 = 1;

/// The line splitter and header writer of one stream.
#[derive(Debug)]
pub(crate) struct Timestamper {
    stream: u8,
    buf: Vec<u8>,
    append: bool,
}

impl Timestamper {
    pub(crate) fn new(stream: u8) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            append: false,
        }
    }

    /// Takes one write of `p`; appends what is ready to `out`.
    pub(crate) fn write(&mut self, p: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        let n = self.write_lines(p, now, out);
        let rest = &p[n..];
        if rest.contains(&b'\r') {
            if self.buf.is_empty() {
                self.header(now, out);
            } else {
                out.append(&mut self.buf);
            }
            out.extend_from_slice(rest);
            out.push(b'\n');
            self.append = true;
        } else if !rest.is_empty() {
            self.buffer(rest, now, out);
        }
    }

    /// Ends the stream: a waiting partial line is written with a newline.
    pub(crate) fn close(&mut self, out: &mut Vec<u8>) {
        if !self.buf.is_empty() {
            out.append(&mut self.buf);
            out.push(b'\n');
        }
    }

    /// Writes the complete lines of `p`; returns how many bytes that took.
    fn write_lines(&mut self, p: &[u8], now: SystemTime, out: &mut Vec<u8>) -> usize {
        let Some(first) = p.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        let mut n = 0;
        if !self.buf.is_empty() {
            out.append(&mut self.buf);
            out.extend_from_slice(&p[..=first]);
            n = first + 1;
        }
        while let Some(idx) = p[n..].iter().position(|&b| b == b'\n') {
            self.header(now, out);
            out.extend_from_slice(&p[n..=n + idx]);
            n += idx + 1;
        }
        n
    }

    fn buffer(&mut self, p: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        if p.len() + self.buf.len() > BUF_SIZE {
            if self.buf.is_empty() {
                self.header(now, out);
            }
            out.append(&mut self.buf);
            self.append = true;
            out.extend_from_slice(p);
            out.push(b'\n');
            return;
        }
        if self.buf.is_empty() {
            let mut header = Vec::with_capacity(32);
            self.header(now, &mut header);
            self.buf = header;
        }
        self.buf.extend_from_slice(p);
    }

    /// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ SSTF`, then the append flag is cleared.
    fn header(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = i64::try_from(secs / 86_400).unwrap_or_default();
        let rem = secs % 86_400;
        let (year, month, day) = crate::archive::civil_from_days(days);
        let flag = if self.append { '+' } else { ' ' };
        out.extend_from_slice(
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z {:02x}O{flag}",
                rem / 3600,
                rem / 60 % 60,
                rem % 60,
                since.subsec_micros(),
                self.stream,
            )
            .as_bytes(),
        );
        self.append = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{Timestamper, WORK_STREAM};

    fn at() -> SystemTime {
        // 2026-11-28T00:42:03.123456Z
        UNIX_EPOCH + Duration::from_secs(1_795_826_523) + Duration::from_nanos(123_456_789)
    }

    fn stamp(writes: &[&[u8]]) -> String {
        let mut stamper = Timestamper::new(WORK_STREAM);
        let mut out = Vec::new();
        for write in writes {
            stamper.write(write, at(), &mut out);
        }
        stamper.close(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn each_line_gets_the_time_stream_and_type() {
        assert_eq!(
            stamp(&[b"one\ntwo\n"]),
            "2026-11-28T00:42:03.123456Z 01O one\n2026-11-28T00:42:03.123456Z 01O two\n"
        );
    }

    #[test]
    fn a_line_split_across_writes_gets_one_header_and_closing_ends_it() {
        assert_eq!(
            stamp(&[b"par", b"tial\nrest"]),
            "2026-11-28T00:42:03.123456Z 01O partial\n2026-11-28T00:42:03.123456Z 01O rest\n"
        );
    }

    #[test]
    fn a_carriage_return_writes_at_once_and_the_next_line_continues_it() {
        assert_eq!(
            stamp(&[b"10%\r", b"100%\n"]),
            "2026-11-28T00:42:03.123456Z 01O 10%\r\n2026-11-28T00:42:03.123456Z 01O+100%\n"
        );
    }

    #[test]
    fn a_long_partial_line_is_written_and_continued() {
        let long = vec![b'x'; 9000];
        let text = stamp(&[&long, b"end\n"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("2026-11-28T00:42:03.123456Z 01O xxx"));
        assert_eq!(lines[1], "2026-11-28T00:42:03.123456Z 01O+end");
    }
}
