//! Runs one build-stage script on the remote host and makes sure nothing it started outlives
//! it: not after an exit, a cancel, a timeout, or a lost connection.
//!
//! The script goes over the channel's stdin into a file (`head -c <length>`); a `bash` wrapper
//! then starts it as a job of its own process group (`set -m`) with a watchdog in another group
//! that reads the rest of stdin. runnel keeps stdin open while the stage runs, so:
//! - the script exits: the wrapper ends what is left in its group (background children), stops
//!   the watchdog and exits with the script's status;
//! - cancel or timeout: runnel sends EOF; the watchdog sends SIGTERM to the script's group and
//!   SIGKILL after the grace period;
//! - the connection drops (a network failure, a killed `sshd`, a killed runner): `sshd` closes
//!   the pipe, which is an EOF for the watchdog too.
//!
//! Closing the channel alone would not do: OpenSSH sends no signal to a session without a
//! terminal, so the script would run on.

use std::time::Duration;

use russh::ChannelMsg;
use tokio::time::Instant;

use super::client::Session;
use super::error::SshError;
use super::sync::sh;
use crate::executor::{PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::script::shell_quote;
use crate::trace::Trace;

/// How long the remote side may take to stop once told to, beyond the kill grace.
const STOP_SLACK: Duration = Duration::from_secs(20);

/// What a login shell reads (GitLab: the SSH executors run `bash --login`), without
/// `~/.bash_logout`, whose last status becomes the exit status of a login shell (Debian's
/// default one fails without a console).
const LOGIN_PROFILE: &str = r#"if [ -f /etc/profile ]; then . /etc/profile; fi
for runnel_profile in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
  if [ -f "$runnel_profile" ]; then . "$runnel_profile"; break; fi
done
unset runnel_profile
"#;

/// The wrapper that receives the script of `length` bytes into `file` and runs it.
fn wrapper(file: &str, length: usize, grace: Duration) -> String {
    let grace = grace.as_secs().max(1);
    format!(
        r#"umask 077
F={file}
head -c {length} > "$F" || exit 1
exec 3<&0 </dev/null
set -m
bash --noprofile --norc "$F" 3<&- &
job=$!
{{ cat <&3 >/dev/null 2>&1; kill -TERM -- -$job 2>/dev/null && sleep {grace} && kill -KILL -- -$job 2>/dev/null; }} >/dev/null 2>&1 &
watchdog=$!
set +m
exec 3<&- >/dev/null 2>&1
wait "$job"
code=$?
kill -KILL -- -"$watchdog" 2>/dev/null
if kill -TERM -- -"$job" 2>/dev/null; then
  i=0; while kill -0 -- -"$job" 2>/dev/null && [ "$i" -lt 10 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -- -"$job" 2>/dev/null
fi
exit "$code"
"#
    )
}

/// Runs `stage` on `session`; see the module documentation.
pub(crate) async fn run_stage(
    session: &Session,
    job: &PreparedJob,
    stage: &StageRun,
    grace: Duration,
    trace: &mut Trace,
) -> Result<ScriptEnd, SshError> {
    let file = job
        .script_dirs
        .tmp_dir
        .join(format!("script-{}.sh", stage.name));
    let file = file.to_string_lossy().into_owned();
    // The script removes its own file first: bash keeps reading the open file.
    let script = format!(
        "rm -f -- {}\n{LOGIN_PROFILE}{}",
        shell_quote(&file),
        stage.script
    );
    let command = format!(
        "exec bash --noprofile --norc -c {}",
        shell_quote(&wrapper(&shell_quote(&file), script.len(), grace))
    );
    let mut channel = session.exec(&command).await?;
    channel
        .data(script.as_bytes())
        .await
        .map_err(|source| session.channel_error("send the stage script", source))?;
    let mut stop: Option<(ScriptEnd, Instant)> = None;
    let mut status = None;
    loop {
        let stop_by = stop.as_ref().map(|(_, by)| *by);
        tokio::select! {
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) => trace.write(&data),
                Some(ChannelMsg::ExtendedData { data, .. }) => trace.write(&data),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    status = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    status = Some(128 + signal_number(&signal_name));
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            () = stage.cancel.cancelled(), if stop.is_none() => {
                let _ = channel.eof().await;
                stop = Some((ScriptEnd::Canceled, Instant::now() + grace + STOP_SLACK));
            }
            () = tokio::time::sleep_until(stage.deadline), if stop.is_none() => {
                let _ = channel.eof().await;
                stop = Some((ScriptEnd::TimedOut, Instant::now() + grace + STOP_SLACK));
            }
            () = sleep_until_opt(stop_by), if stop_by.is_some() => {
                // The remote side did not stop in time; its watchdog still ends the script
                // once the channel is gone.
                let _ = channel.close().await;
                break;
            }
        }
    }
    trace.flush();
    if let Some((end, _)) = stop {
        return Ok(end);
    }
    match status {
        Some(code) => Ok(ScriptEnd::Exited(code)),
        None => Err(SshError::ConnectionLost {
            target: session.target().to_owned(),
            stage: stage.name.clone(),
        }),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The number of a signal named in an SSH `exit-signal` message (RFC 4254 names, without `SIG`).
fn signal_number(name: &russh::Sig) -> i32 {
    match name {
        russh::Sig::HUP => 1,
        russh::Sig::INT => 2,
        russh::Sig::QUIT => 3,
        russh::Sig::ILL => 4,
        russh::Sig::ABRT => 6,
        russh::Sig::FPE => 8,
        russh::Sig::KILL => 9,
        russh::Sig::SEGV => 11,
        russh::Sig::PIPE => 13,
        russh::Sig::ALRM => 14,
        russh::Sig::TERM => 15,
        _ => 0,
    }
}

/// A remote command that removes the scripts' temporary directory (file variables).
pub(crate) fn remove_tmp_dir(job: &PreparedJob) -> String {
    sh(&format!(
        "rm -rf -- {}",
        shell_quote(&job.script_dirs.tmp_dir.to_string_lossy())
    ))
}
