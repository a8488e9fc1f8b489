//! The job trace: masks secrets, marks sections, enforces the output limit, keeps the bytes for
//! the log file and reports lines and sections as [`JobEvent`]s.
//!
//! GitLab: gitlab-runner `helpers/build_section.go` (section markers), `common/buildlogger`
//! (masking, colours, the output limit notice). The trace never goes through `tracing`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use runnel_api::JobId;
use tokio::sync::mpsc::UnboundedSender;

use crate::event::JobEvent;
use crate::mask::Masker;
use crate::timestamp::{RUNNER_STREAM, Timestamper, WORK_STREAM};

const ANSI_CLEAR: &str = "\x1b[0K";
const ANSI_RESET: &str = "\x1b[0;m";
const ANSI_BOLD_CYAN: &str = "\x1b[36;1m";
const ANSI_BOLD_GREEN: &str = "\x1b[32;1m";
const ANSI_YELLOW: &str = "\x1b[0;33m";
const ANSI_BOLD_RED: &str = "\x1b[31;1m";
const ANSI_BOLD_YELLOW: &str = "\x1b[33;1m";

/// gitlab-runner's default `output_limit`: 4096 KiB.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4096 * 1024;

/// Receives every trace byte as it is appended (masked, within the output limit): the runner
/// daemon streams these to the coordinator while the job runs. Set through
/// `JobContext::trace_sink`.
#[derive(Clone)]
pub struct TraceSink(pub std::sync::Arc<TraceSinkFn>);

/// The function behind a [`TraceSink`].
pub type TraceSinkFn = dyn Fn(&[u8]) + Send + Sync;

/// Told the name of each build stage (trace section) as it starts, e.g. for the daemon's
/// `gitlab_runner_jobs{stage}` metric. Called once per section, never per trace byte. Set
/// through `JobContext::stage_sink`.
#[derive(Clone)]
pub struct StageSink(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for StageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageSink")
    }
}

impl std::fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceSink")
    }
}

/// The trace of one job. Executors write script output to it; everything is masked first.
#[derive(Debug)]
pub struct Trace {
    sink: Option<TraceSink>,
    stage_sink: Option<StageSink>,
    job: JobId,
    events: UnboundedSender<JobEvent>,
    masker: Masker,
    sections: bool,
    limit: usize,
    truncated: bool,
    /// Bytes appended so far (the output limit counts them).
    len: usize,
    /// Whether `bytes` keeps them: not when a sink streams them elsewhere and no log file
    /// wants them, so a daemon job's trace does not also sit in memory.
    keep: bool,
    bytes: Vec<u8>,
    line: Vec<u8>,
    masked: Vec<u8>,
    open: Vec<(String, Instant)>,
    mid_line: bool,
    /// `FF_TIMESTAMPS`: the runner's and the scripts' line stampers.
    stamps: Option<[Timestamper; 2]>,
    /// The stream `emit` writes to: the scripts', or the runner's during its own messages.
    stream: u8,
}

impl Trace {
    pub(crate) fn new(
        job: JobId,
        events: UnboundedSender<JobEvent>,
        masker: Masker,
        sections: bool,
        limit: usize,
    ) -> Self {
        Self {
            sink: None,
            stage_sink: None,
            job,
            events,
            masker,
            sections,
            limit,
            truncated: false,
            len: 0,
            keep: true,
            bytes: Vec::new(),
            line: Vec::new(),
            masked: Vec::new(),
            open: Vec::new(),
            mid_line: false,
            stamps: None,
            stream: WORK_STREAM,
        }
    }

    /// Turns `FF_TIMESTAMPS` line headers on (before anything is written).
    pub(crate) fn set_timestamps(&mut self, on: bool) {
        self.stamps = on.then(|| {
            [
                Timestamper::new(RUNNER_STREAM),
                Timestamper::new(WORK_STREAM),
            ]
        });
    }

    /// Appends output of a script. Secrets are masked, also when split across calls.
    pub fn write(&mut self, chunk: &[u8]) {
        let mut masked = std::mem::take(&mut self.masked);
        masked.clear();
        self.masker.write(chunk, &mut masked);
        self.emit(&masked);
        self.masked = masked;
    }

    /// Emits output held back by the masker (call when a script's output has ended).
    pub fn flush(&mut self) {
        let mut masked = std::mem::take(&mut self.masked);
        masked.clear();
        self.masker.flush(&mut masked);
        self.emit(&masked);
        self.masked = masked;
    }

    /// Writes a plain runner message line.
    pub fn println(&mut self, line: &str) {
        self.flush();
        self.stream = RUNNER_STREAM;
        self.write(line.as_bytes());
        self.write(b"\n");
        self.flush();
        self.stream = WORK_STREAM;
    }

    /// Writes a bold green runner message (gitlab-runner `Infoln`).
    pub fn info(&mut self, line: &str) {
        self.println(&format!("{ANSI_BOLD_GREEN}{line}{ANSI_RESET}"));
    }

    /// Writes a yellow `WARNING: ` line (gitlab-runner `Warningln`).
    pub fn warning(&mut self, line: &str) {
        self.println(&format!("{ANSI_YELLOW}WARNING: {line}{ANSI_RESET}"));
    }

    /// Writes a bold red `ERROR: ` line (gitlab-runner `SoftErrorln`).
    pub fn error(&mut self, line: &str) {
        self.println(&format!("{ANSI_BOLD_RED}ERROR: {line}{ANSI_RESET}"));
    }

    /// Starts a section: `section_start:<unix seconds>:<name>\r\e[0K` and a bold cyan header.
    pub fn section_start(&mut self, name: &str, header: &str) {
        self.flush();
        self.end_line();
        if self.sections {
            let marker = format!(
                "{ANSI_CLEAR}section_start:{}:{name}\r{ANSI_CLEAR}",
                unix_now()
            );
            self.out(RUNNER_STREAM, marker.as_bytes());
        }
        self.open.push((name.to_owned(), Instant::now()));
        if let Some(sink) = &self.stage_sink {
            (sink.0)(name);
        }
        let _ = self.events.send(JobEvent::SectionStart {
            job: self.job,
            name: name.to_owned(),
            header: header.to_owned(),
            at: SystemTime::now(),
        });
        self.stream = RUNNER_STREAM;
        self.emit(format!("{ANSI_CLEAR}{ANSI_BOLD_CYAN}{header}{ANSI_RESET}\n").as_bytes());
        self.stream = WORK_STREAM;
    }

    /// Ends the innermost open section with `section_end:<unix seconds>:<name>\r\e[0K`.
    pub fn section_end(&mut self) {
        self.flush();
        self.end_line();
        let Some((name, started)) = self.open.pop() else {
            return;
        };
        if self.sections {
            let marker = format!(
                "{ANSI_CLEAR}section_end:{}:{name}\r{ANSI_CLEAR}",
                unix_now()
            );
            self.out(RUNNER_STREAM, marker.as_bytes());
        }
        let _ = self.events.send(JobEvent::SectionEnd {
            job: self.job,
            name,
            duration: started.elapsed(),
        });
    }

    /// Ends every open section, innermost first.
    pub(crate) fn close_sections(&mut self) {
        while !self.open.is_empty() {
            self.section_end();
        }
    }

    /// The trace so far, as GitLab would receive it (empty when not kept, see
    /// [`Trace::keep_bytes`]).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The number of trace bytes so far, kept or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether to keep the bytes in memory for [`Trace::bytes`] (the default).
    pub(crate) fn keep_bytes(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// Ends the trace: the kept bytes and the number of bytes appended in all.
    pub(crate) fn finish(mut self) -> (Vec<u8>, usize) {
        self.flush();
        self.end_line();
        (std::mem::take(&mut self.bytes), self.len)
    }

    pub(crate) fn success_line(&mut self) {
        self.println(&format!("{ANSI_BOLD_GREEN}Job succeeded{ANSI_RESET}"));
    }

    pub(crate) fn events_handle(&self) -> UnboundedSender<JobEvent> {
        self.events.clone()
    }

    /// Makes sure the next marker starts a line, and sends a partial output line as an event.
    fn end_line(&mut self) {
        if !self.line.is_empty() {
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            let _ = self.events.send(JobEvent::Output {
                job: self.job,
                line,
            });
        }
        if let Some(stamps) = &mut self.stamps {
            // GitLab closes a script's streams when its stage ends: a partial line ends there.
            let mut closed = Vec::new();
            for stamp in stamps.iter_mut() {
                stamp.close(&mut closed);
            }
            self.push_raw(&closed);
            self.mid_line = false;
        } else if self.mid_line {
            self.push_raw(b"\n");
            self.mid_line = false;
        }
    }

    /// Appends `bytes` of `stream`, through its line stamper when `FF_TIMESTAMPS` is on.
    fn out(&mut self, stream: u8, bytes: &[u8]) {
        let Some(stamps) = &mut self.stamps else {
            self.push_raw(bytes);
            return;
        };
        let mut stamped = Vec::with_capacity(bytes.len() + 64);
        stamps[usize::from(stream)].write(bytes, SystemTime::now(), &mut stamped);
        self.push_raw(&stamped);
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if self.keep {
            self.bytes.extend_from_slice(bytes);
        }
        if let Some(sink) = &self.sink {
            (sink.0)(bytes);
        }
    }

    /// Sends every appended byte to `sink` too.
    pub(crate) fn set_sink(&mut self, sink: Option<TraceSink>) {
        self.sink = sink;
    }

    pub(crate) fn set_stage_sink(&mut self, sink: Option<StageSink>) {
        self.stage_sink = sink;
    }

    /// Appends masked bytes within the output limit and sends complete lines as events.
    fn emit(&mut self, masked: &[u8]) {
        if masked.is_empty() || self.truncated {
            return;
        }
        let room = self.limit.saturating_sub(self.len);
        let kept = if masked.len() > room {
            utf8_floor(masked, room)
        } else {
            masked
        };
        self.out(self.stream, kept);
        if let Some(&last) = kept.last() {
            self.mid_line = last != b'\n';
        }
        // Nobody listens for lines (the daemon streams bytes): do not gather them.
        let lines = if self.events.is_closed() {
            &[][..]
        } else {
            kept
        };
        for &byte in lines {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                let _ = self.events.send(JobEvent::Output {
                    job: self.job,
                    line,
                });
            } else {
                self.line.push(byte);
            }
        }
        if kept.len() < masked.len() {
            self.truncated = true;
            // GitLab: gitlab-runner `helpers/trace/buffer.go` — the notice after the limit.
            let notice = format!(
                "\n{ANSI_BOLD_YELLOW}Job's log exceeded limit of {} bytes.\nJob execution will \
                 continue but no more output will be collected.{ANSI_RESET}\n",
                self.limit
            );
            self.out(RUNNER_STREAM, notice.as_bytes());
            self.mid_line = false;
            self.end_line();
            for line in notice.trim_matches('\n').lines() {
                let _ = self.events.send(JobEvent::Output {
                    job: self.job,
                    line: line.to_owned(),
                });
            }
        }
    }
}

/// The longest prefix of `bytes` no longer than `max` that does not cut a UTF-8 sequence.
fn utf8_floor(bytes: &[u8], max: usize) -> &[u8] {
    let mut end = max.min(bytes.len());
    while end > 0 && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use runnel_api::JobId;
    use tokio::sync::mpsc;

    use super::Trace;
    use crate::event::JobEvent;
    use crate::mask::Masker;

    #[test]
    fn a_streamed_trace_with_no_listener_keeps_neither_bytes_nor_lines_but_counts_and_limits() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(rx);
        let streamed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = streamed.clone();
        let mut trace = Trace::new(JobId(4), tx, Masker::default(), true, 1000);
        trace.set_sink(Some(super::TraceSink(std::sync::Arc::new(
            move |b: &[u8]| {
                sink.lock().expect("sink").extend_from_slice(b);
            },
        ))));
        trace.keep_bytes(false);
        trace.write(&[b'a'; 600]);
        trace.write(&[b'b'; 600]);
        assert!(trace.bytes().is_empty());
        assert!(trace.line.is_empty(), "no listener, no line gathered");
        let (kept, len) = trace.finish();
        let streamed = streamed.lock().expect("sink").clone();
        assert!(kept.is_empty());
        assert_eq!(len, streamed.len());
        assert_eq!(streamed[600..1000], [b'b'; 400]);
        assert!(String::from_utf8_lossy(&streamed).contains("exceeded limit of 1000 bytes"));
    }

    #[test]
    fn output_limit_truncates_with_notice_on_a_char_boundary() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut trace = Trace::new(JobId(1), tx, Masker::default(), true, 4);
        trace.write("abcé€".as_bytes());
        trace.write(b"XYZ");
        let text = String::from_utf8(trace.finish().0).expect("utf-8");
        assert!(text.starts_with("abc\n"), "{text:?}");
        assert!(text.contains("Job's log exceeded limit of 4 bytes."));
        assert!(!text.contains("XYZ"));
        let first = rx.try_recv().expect("an event");
        assert_eq!(
            first,
            JobEvent::Output {
                job: JobId(1),
                line: "abc".into()
            }
        );
    }

    #[test]
    fn with_ff_timestamps_every_line_starts_with_its_time_and_stream() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut trace = Trace::new(JobId(3), tx, Masker::default(), true, 1 << 20);
        trace.set_timestamps(true);
        trace.println("Running with runnel");
        trace.section_start("step_script", "Executing");
        trace.write(b"out\npart");
        trace.section_end();
        let text = String::from_utf8(trace.finish().0).expect("utf-8");
        let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ").expect("regex");
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                assert!(time.is_match(line), "{line:?} in {text:?}");
                line[28..].to_owned()
            })
            .collect();
        assert_eq!(lines[0], "00O Running with runnel");
        assert!(
            lines[1].starts_with("00O \x1b[0Ksection_start:"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with(":step_script\r\x1b[0K"), "{lines:?}");
        assert_eq!(lines[2], "00O+\x1b[0K\x1b[36;1mExecuting\x1b[0;m");
        assert_eq!(lines[3], "01O out");
        assert_eq!(lines[4], "01O part");
        assert!(lines[5].starts_with("00O \x1b[0Ksection_end:"), "{lines:?}");
        assert_eq!(lines.len(), 6, "{lines:?}");
    }

    #[test]
    fn sections_are_marked_and_reported() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut trace = Trace::new(JobId(2), tx, Masker::default(), true, 1 << 20);
        trace.section_start("step_script", "Executing");
        trace.write(b"hi");
        trace.section_end();
        let text = String::from_utf8(trace.finish().0).expect("utf-8");
        assert!(text.starts_with("\x1b[0Ksection_start:"), "{text:?}");
        assert!(text.contains(":step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting\x1b[0;m\nhi\n"));
        assert!(text.contains("section_end:"));
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(matches!(kinds[0], JobEvent::SectionStart { .. }));
        assert!(matches!(kinds.last(), Some(JobEvent::SectionEnd { .. })));
    }
}
