//! The build stages that run scripts through the executor: `step_*`, `after_script` and the
//! `get_sources` hooks, with their deadlines.
//!
//! GitLab: gitlab-runner `common/build.go` — `RUNNER_SCRIPT_TIMEOUT` bounds the user script,
//! `after_script` runs after failures and timeouts under its own `RUNNER_AFTER_SCRIPT_TIMEOUT`
//! (default 5 minutes) with `CI_JOB_STATUS`, and its failure never changes the job's result.

use std::time::Duration;

use runnel_api::FailureReason;
use tokio::time::Instant;

use crate::build::{Run, env_file};
use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::outcome::JobStatus;
use crate::process::ScriptEnd;
use crate::script::{Exports, shell_quote, stage_body, wrap};
use crate::trace::Trace;

/// gitlab-runner's default `RUNNER_AFTER_SCRIPT_TIMEOUT`: 5 minutes.
const DEFAULT_AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long `cleanup_file_variables` may take when an executor runs it as a script.
pub(crate) const CLEANUP_STAGE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Runs one of runnel's own stages (`prepare_script`, `cleanup_file_variables`) through an
/// executor that runs every stage ([`Executor::runs_every_stage`]). Returns whether it
/// succeeded; a failure is recorded in `run`.
///
/// GitLab: gitlab-runner `shells/bash.go` — `prepare_script` prints the host the job runs on
/// (`Running on $(hostname) via <hostname>...` when the executor names one),
/// `cleanup_file_variables` removes the file variables and the temporary project directory.
/// `stage` is the stage's name and, for `prepare_script`, that host name.
pub(crate) async fn run_own_stage(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    stage: (&str, Option<&str>),
) -> Result<bool, ExecError> {
    let (name, hostname) = stage;
    let mut body = match (name, hostname) {
        ("prepare_script", None) => "echo \"Running on $(hostname)...\"\n".to_owned(),
        ("prepare_script", Some(via)) => format!(
            "echo \"Running on $(hostname) via \"{}\"...\"\n",
            shell_quote(via)
        ),
        _ => {
            let (_, files) = job.variables.exports();
            let mut body = String::new();
            for (path, _) in files {
                body.push_str(&format!(
                    "rm -f -- {}\n",
                    shell_quote(&path.to_string_lossy())
                ));
            }
            body.push_str(&format!(
                "rm -rf -- {}\n",
                shell_quote(&job.tmp_dir.to_string_lossy())
            ));
            body
        }
    };
    if name == "prepare_script" && executor.remote_helper().is_some() {
        body.push_str(&remote_files(job));
    }
    // Cleaning up runs after a graceful cancel too, as `after_script` does.
    let cancel = match name {
        "prepare_script" => ctx.cancel.clone(),
        _ => ctx.abort.child_token(),
    };
    let stage = StageRun {
        name: name.to_owned(),
        script: wrap(&body, job.variables.bool("CI_DEBUG_TRACE")),
        cancel,
        deadline: run.deadline,
    };
    let end = executor.run(job, stage, trace).await?;
    Ok(record_end(run, end))
}

/// Runs the payload hook `name` (`pre_get_sources_script`, `post_get_sources_script`) in the
/// `get_sources` stage. Returns `false` when it failed (the job fails).
pub(crate) async fn run_hook(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    exports: &Exports,
    name: &str,
) -> Result<bool, ExecError> {
    let Some(hook) = job.payload.hooks.iter().find(|h| h.name == name) else {
        return Ok(true);
    };
    if hook.script.iter().all(|c| c.trim().is_empty()) {
        return Ok(true);
    }
    std::fs::create_dir_all(&job.project_dir)
        .map_err(ExecError::io("create the directory", &job.project_dir))?;
    let body = stage_body(
        exports,
        &env_file(job),
        &job.script_dirs.project_dir,
        &hook.script,
    );
    let stage = StageRun {
        name: "get_sources".into(),
        script: wrap(&body, job.variables.bool("CI_DEBUG_TRACE")),
        cancel: ctx.cancel.clone(),
        deadline: run.deadline,
    };
    let end = executor.run(job, stage, trace).await?;
    Ok(record_end(run, end))
}

/// For an environment that does not see this host's file system: the script lines that make
/// the temporary project directory and write the file variables into it (mode 0600), as
/// gitlab-runner's scripts do.
fn remote_files(job: &PreparedJob) -> String {
    let tmp = shell_quote(&job.script_dirs.tmp_dir.to_string_lossy());
    let mut body = format!("mkdir -p {tmp}\n");
    let (_, files) = job.variables.exports();
    for (path, content) in files {
        let path = shell_quote(&path.to_string_lossy());
        body.push_str(&format!(
            "(umask 077; printf '%s' {} > {path})\n",
            shell_quote(&content)
        ));
    }
    body
}

/// Records how a script stage ended in `run`: a non-zero exit is a `script_failure`, a timeout
/// a `job_execution_timeout`, a cancel `job_canceled`. Returns whether the stage succeeded.
pub(crate) fn record_end(run: &mut Run, end: ScriptEnd) -> bool {
    match end {
        ScriptEnd::Exited(0) => return true,
        ScriptEnd::Exited(code) => run.fail(
            JobStatus::Failed,
            Some(FailureReason::ScriptFailure),
            Some(code),
        ),
        ScriptEnd::TimedOut => run.fail(
            JobStatus::Failed,
            Some(FailureReason::JobExecutionTimeout),
            None,
        ),
        ScriptEnd::Canceled => {
            run.fail(JobStatus::Canceled, Some(FailureReason::JobCanceled), None)
        }
    }
    false
}

pub(crate) async fn run_steps(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    exports: &Exports,
) -> Result<(), ExecError> {
    let debug = job.variables.bool("CI_DEBUG_TRACE");
    let script_deadline =
        script_timeout(job).map_or(run.deadline, |t| run.deadline.min(Instant::now() + t));
    for step in job
        .payload
        .steps
        .iter()
        .filter(|s| s.name != "after_script")
    {
        if !step.when.applies(run.succeeded()) || step.script.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let name = format!("step_{}", step.name.to_lowercase());
        trace.section_start(
            &name,
            &format!("Executing \"{name}\" stage of the job script"),
        );
        let body = stage_body(
            exports,
            &env_file(job),
            &job.script_dirs.project_dir,
            &step.script,
        );
        // `cancel` is a child of `abort`, so it fires for both.
        let deadline = match step.timeout {
            0 => script_deadline,
            seconds => script_deadline.min(Instant::now() + Duration::from_secs(seconds)),
        };
        let stage = StageRun {
            name: name.clone(),
            script: wrap(&body, debug),
            cancel: ctx.cancel.clone(),
            deadline,
        };
        let end = executor.run(job, stage, trace).await;
        trace.section_end();
        record_end(run, end?);
        if !run.succeeded() {
            break;
        }
    }
    Ok(())
}

pub(crate) async fn run_after_script(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &Run,
    exports: &Exports,
) -> Result<(), ExecError> {
    let Some(step) = job.payload.step("after_script") else {
        return Ok(());
    };
    if step.script.iter().all(|c| c.trim().is_empty()) {
        return Ok(());
    }
    trace.section_start("after_script", "Running after_script");
    trace.println("Running after script...");
    let mut exports = exports.clone();
    exports.vars.retain(|(k, _)| k != "CI_JOB_STATUS");
    exports.vars.push((
        "CI_JOB_STATUS".into(),
        job_status_for_after_script(run).into(),
    ));
    let body = stage_body(
        &exports,
        &env_file(job),
        &job.script_dirs.project_dir,
        &step.script,
    );
    let timeout = after_script_timeout(job);
    let deadline = Instant::now() + timeout;
    let stage = StageRun {
        name: "after_script".into(),
        script: wrap(&body, job.variables.bool("CI_DEBUG_TRACE")),
        cancel: ctx.abort.child_token(),
        deadline,
    };
    let end = executor.run(job, stage, trace).await?;
    match end {
        ScriptEnd::Exited(0) => {}
        ScriptEnd::Exited(code) => {
            trace.warning(&format!(
                "after_script failed, but job will continue unaffected: exit status {code}"
            ));
        }
        ScriptEnd::TimedOut => trace.warning(&format!(
            "after_script failed, but job will continue unaffected: execution took longer than {}",
            go_duration(timeout)
        )),
        ScriptEnd::Canceled => {
            trace.warning("after_script failed, but job will continue unaffected: canceled")
        }
    }
    trace.section_end();
    Ok(())
}

/// `CI_JOB_STATUS` in `after_script`: `success`, `failed`, `canceled` (gitlab-runner also reports
/// `timedout` for a timeout; GitLab documents `success|failed|canceled`, so a timeout is `failed`).
fn job_status_for_after_script(run: &Run) -> &'static str {
    run.outcome.status.as_str()
}

fn script_timeout(job: &PreparedJob) -> Option<Duration> {
    job.variables
        .get("RUNNER_SCRIPT_TIMEOUT")
        .and_then(parse_go_duration)
}

fn after_script_timeout(job: &PreparedJob) -> Duration {
    job.variables
        .get("RUNNER_AFTER_SCRIPT_TIMEOUT")
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_AFTER_SCRIPT_TIMEOUT)
}

/// Parses a Go duration (`time.ParseDuration`) such as `90s`, `10m`, `1h30m`, `1.5h`, `500ms`,
/// `1h0m0s`; `None` when malformed or negative.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go's `time.Duration.String` for durations from one second on: `1h0m0s`, `5m0s`, `3s`,
/// `7.5s` (the stage retry backoff has fractions of a second).
pub(crate) fn go_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    };
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}{fraction}s")
    } else if m > 0 {
        format!("{m}m{s}{fraction}s")
    } else {
        format!("{s}{fraction}s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{go_duration, parse_go_duration};

    #[test]
    fn go_durations_parse_and_format() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("-1s"), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(7500)), "7.5s");
        assert_eq!(
            go_duration(Duration::from_nanos(6_234_567_891)),
            "6.234567891s"
        );
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
