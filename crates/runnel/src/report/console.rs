//! The human output of `runnel exec`: every line prefixed by its job's name (in a stable colour
//! when stdout is a terminal), sections as one line with their duration, then a table of jobs,
//! the end of the failing jobs' output with a command that re-runs each, and junit totals.

use std::io::{IsTerminal as _, Write as _};

use owo_colors::{AnsiColors, OwoColorize as _};

use runnel_local::{Event, JobRecord, Reporter, Summary, TraceLine};

use crate::report::{seconds, shell_quote};

const PALETTE: [AnsiColors; 6] = [
    AnsiColors::Cyan,
    AnsiColors::Magenta,
    AnsiColors::Blue,
    AnsiColors::Yellow,
    AnsiColors::Green,
    AnsiColors::BrightBlue,
];

/// Build stages of the runner (`get_sources`, `restore_cache`, ...) that take less than this
/// are not shown.
const QUIET_SECTION_MS: u128 = 200;

/// Lines of a failed job's output shown after the table.
const TAIL_LINES: usize = 15;

pub(crate) struct Console {
    color: bool,
    width: usize,
    /// The command line that re-runs one job, without the job name (`runnel exec -C dir`).
    rerun_prefix: String,
    /// The executor's name (`shell`, `docker`, …).
    executor: String,
}

impl Console {
    pub(crate) fn new(jobs: &[JobRecord], rerun_prefix: String, executor: String) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let width = jobs
            .iter()
            .map(|j| j.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        Console {
            color,
            width,
            rerun_prefix,
            executor,
        }
    }

    fn prefix(&self, name: &str) -> String {
        let padded = format!("{name:<width$}", width = self.width);
        if !self.color {
            return padded;
        }
        let hash = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        padded.color(PALETTE[hash % PALETTE.len()]).to_string()
    }

    fn dim(&self, text: &str) -> String {
        if self.color {
            text.dimmed().to_string()
        } else {
            text.to_owned()
        }
    }

    fn status_word(&self, status: &str) -> String {
        let word = status.to_uppercase();
        if !self.color {
            return word;
        }
        match status {
            "success" => word.green().to_string(),
            "failed" => word.red().to_string(),
            "warning" => word.yellow().to_string(),
            _ => word.dimmed().to_string(),
        }
    }

    fn line(&self, record: &JobRecord, line: &TraceLine) -> Option<String> {
        let prefix = self.prefix(&record.name);
        match line {
            TraceLine::Output(text) => Some(format!("{prefix} > {text}")),
            TraceLine::Command(cmd) => Some(format!("{prefix} {}", self.dim(&format!("$ {cmd}")))),
            TraceLine::SectionStart { .. } => None,
            // The runner's quick build stages are noise; slow ones and the scripts are shown.
            TraceLine::SectionEnd { name, duration }
                if duration.as_millis() < QUIET_SECTION_MS
                    && !name.starts_with("step_")
                    && name != "after_script" =>
            {
                None
            }
            TraceLine::SectionEnd { name, duration } => Some(format!(
                "{prefix} {}",
                self.dim(&format!("· {name} ({:.2} s)", seconds(*duration)))
            )),
        }
    }
}

impl Reporter for Console {
    fn event(&mut self, event: &Event, jobs: &[JobRecord]) {
        let text = match event {
            Event::Started { job, attempt } => {
                let record = &jobs[*job];
                let retry = if *attempt > 1 {
                    format!(", attempt {attempt}")
                } else {
                    String::new()
                };
                Some(format!(
                    "{} starting {} ({}{retry})",
                    self.prefix(&record.name),
                    self.executor,
                    record.stage
                ))
            }
            Event::Line { job, line } => self.line(&jobs[*job], line),
            Event::Status { job } => {
                let record = &jobs[*job];
                let prefix = self.prefix(&record.name);
                match (record.status, record.duration) {
                    (status, Some(took)) => Some(format!(
                        "{prefix} finished in {:.2} s: {}",
                        seconds(took),
                        self.status_word(status)
                    )),
                    (status, None) => Some(format!("{prefix} {}", self.dim(status))),
                }
            }
        };
        if let Some(text) = text {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    fn finish(&mut self, summary: &Summary) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out);
        let name_w = summary
            .jobs
            .iter()
            .map(|j| j.name.chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        let stage_w = summary
            .jobs
            .iter()
            .map(|j| j.stage.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<stage_w$}  {:<8}  {:>9}  coverage",
            "job", "stage", "status", "duration"
        );
        for job in &summary.jobs {
            let duration = job
                .duration
                .map_or(String::new(), |d| format!("{:.2} s", seconds(d)));
            let status = format!("{:<8}", job.status);
            let status = if self.color {
                self.status_word(job.status)
                    .replace(&job.status.to_uppercase(), &status)
            } else {
                status
            };
            let coverage = job
                .coverage
                .as_deref()
                .map_or(String::new(), |c| format!("{c}%"));
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<stage_w$}  {status}  {duration:>9}  {coverage}",
                job.name, job.stage
            );
        }
        for job in summary.jobs.iter().filter(|j| j.status == "failed") {
            let _ = writeln!(
                out,
                "\n--- {} failed{} ---",
                job.name,
                job.exit_code
                    .map_or(String::new(), |c| format!(" (exit code {c})"))
            );
            let skip = job.output.len().saturating_sub(TAIL_LINES);
            for line in &job.output[skip..] {
                let _ = writeln!(out, "  {line}");
            }
            if let Some(log) = &job.log_path {
                let _ = writeln!(out, "  full log: {log}");
            }
            let _ = writeln!(
                out,
                "  re-run: {} {}",
                self.rerun_prefix,
                shell_quote(&job.name)
            );
        }
        let junit = summary
            .jobs
            .iter()
            .filter_map(|j| j.junit)
            .fold([0u64; 4], |acc, j| {
                [acc[0] + j[0], acc[1] + j[1], acc[2] + j[2], acc[3] + j[3]]
            });
        if summary.jobs.iter().any(|j| j.junit.is_some()) {
            let _ = writeln!(
                out,
                "\njunit: {} tests, {} failures, {} errors, {} skipped",
                junit[0], junit[1], junit[2], junit[3]
            );
        }
        if !summary.blocking_manual.is_empty() {
            let names: Vec<String> = summary
                .blocking_manual
                .iter()
                .map(|n| format!("--manual {}", shell_quote(n)))
                .collect();
            let _ = writeln!(
                out,
                "\npipeline blocked by manual jobs; start them with: {} {}",
                self.rerun_prefix,
                names.join(" ")
            );
        }
        if summary.interrupted {
            let _ = writeln!(out, "\ninterrupted");
        }
        let _ = writeln!(out, "\npipeline {}", self.status_word(summary.status));
    }
}
