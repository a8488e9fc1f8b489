//! One build stage in the pod, and the copies of the job's directories.
//!
//! - Attach strategy (the default, as gitlab-runner's): the stage script is written to the
//!   scripts volume through the helper container, then a command line is written to the build
//!   container's shell over `pods/attach`: run the script in the background, record its pid,
//!   wait, print a marker with the exit code. The output is read until that marker.
//! - Exec strategy (`FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY`): `pods/exec` starts the
//!   shell in the build container with the script on its standard input; the exit code comes
//!   on the status channel.
//!
//! Cancel and timeout run gitlab-runner's idea of a cancellation script through `pods/exec`:
//! the stage's process tree (found through `/proc`) gets SIGTERM, then SIGKILL after the grace
//! period. The pod keeps running, so `after_script` still runs.

use std::time::Duration;

use runnel_exec::{PreparedJob, ScriptEnd, StageRun, Trace};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::KubeError;
use crate::executor::Running;
use crate::pod::{BUILD_CONTAINER, DETECT_SHELL_SCRIPT, HELPER_CONTAINER, scripts_dir};
use crate::remote::quote;
use crate::transfer;
use crate::watch;

/// Where the running stage's shell records its pid: in the temporary directory on the builds
/// volume, which every strategy mounts.
fn pid_file(job: &PreparedJob) -> String {
    job.script_dirs
        .tmp_dir
        .join(".runnel-stage.pid")
        .to_string_lossy()
        .into_owned()
}

/// How a stage's stream ended.
enum StreamEnd {
    Exited(i32),
    Canceled,
    TimedOut,
}

/// Runs `stage` in the build container; when this returns, the stage's processes are gone.
pub(crate) async fn run_stage(
    running: &Running,
    job: &PreparedJob,
    stage: StageRun,
    trace: &mut Trace,
    grace: Duration,
) -> Result<ScriptEnd, KubeError> {
    let end = if running.legacy_exec {
        run_exec(running, job, &stage, trace).await?
    } else {
        run_attach(running, job, &stage, trace).await?
    };
    trace.flush();
    Ok(match end {
        StreamEnd::Exited(code) => ScriptEnd::Exited(code),
        StreamEnd::Canceled => {
            kill_stage(running, job, grace).await;
            ScriptEnd::Canceled
        }
        StreamEnd::TimedOut => {
            kill_stage(running, job, grace).await;
            ScriptEnd::TimedOut
        }
    })
}

async fn run_exec(
    running: &Running,
    job: &PreparedJob,
    stage: &StageRun,
    trace: &mut Trace,
) -> Result<StreamEnd, KubeError> {
    let command = format!(
        "echo $$ > {}\nexec 2>&1\n{DETECT_SHELL_SCRIPT}",
        quote(&pid_file(job))
    );
    let mut process = running
        .pod
        .exec(BUILD_CONTAINER, vec!["sh".into(), "-c".into(), command])
        .await?;
    let status = process.take_status();
    if let Some(mut stdin) = process.stdin() {
        // The trailing `exit` ends the shell even where closing standard input cannot be
        // signalled (the `v4.channel.k8s.io` protocol has no close message).
        let script = format!("{}\nexit\n", stage.script);
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| stream_error(running, "write the script", e))?;
        let _ = stdin.shutdown().await;
    }
    let stdout = process.stdout();
    let stderr = process.stderr();
    let end = pump(running, stage, trace, stdout, stderr, None).await?;
    if let Some(end) = end {
        return Ok(end);
    }
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    match crate::remote::exit_code(status.as_ref()) {
        Ok(code) => Ok(StreamEnd::Exited(code)),
        Err(err) => Err(stream_end_error(running).await.unwrap_or(err)),
    }
}

async fn run_attach(
    running: &Running,
    job: &PreparedJob,
    stage: &StageRun,
    trace: &mut Trace,
) -> Result<StreamEnd, KubeError> {
    let dir = scripts_dir(job);
    // The script is written while the attach stream connects: the command line that runs it
    // is sent once both are done.
    let (written, attached) = tokio::join!(
        write_file(running, &dir, &stage.name, stage.script.as_bytes()),
        running.pod.attach(BUILD_CONTAINER)
    );
    written?;
    let mut process = attached?;
    let path = format!("{dir}/{}", stage.name);
    let mut stdin = process
        .stdin()
        .ok_or_else(|| KubeError::Pod("the attach stream has no standard input".to_owned()))?;
    // The shell reading its standard input is bash or sh (`$0`), as the shell detection chose.
    let line = format!(
        "\"$0\" {} </dev/null 2>&1 & echo $! > {}; wait $!; printf '\\n{} %d\\n' $?\n",
        quote(&path),
        quote(&pid_file(job)),
        running.marker
    );
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| stream_error(running, "start the stage", e))?;
    let stdout = process.stdout();
    let stderr = process.stderr();
    let marker = format!("\n{} ", running.marker).into_bytes();
    let end = pump(running, stage, trace, stdout, stderr, Some(marker)).await?;
    drop(stdin);
    match end {
        Some(end) => Ok(end),
        None => Err(stream_end_error(running).await.unwrap_or_else(|| {
            KubeError::Pod("the attach stream ended before the stage did".to_owned())
        })),
    }
}

/// Why the pod cannot go on, if it cannot.
async fn pod_error(running: &Running) -> Option<KubeError> {
    match watch::gone(&running.pod).await {
        Ok(Some(why)) => Some(KubeError::Pod(why)),
        Ok(None) => None,
        Err(err) => Some(err),
    }
}

/// Why a stream to the build container ended before the stage did: the pod's status may lag
/// behind its containers, so it is asked a few times, `poll_interval` apart.
async fn stream_end_error(running: &Running) -> Option<KubeError> {
    for _ in 0..3 {
        if let Some(err) = pod_error(running).await {
            return Some(err);
        }
        tokio::time::sleep(running.poll_interval).await;
    }
    None
}

fn stream_error(running: &Running, action: &'static str, source: std::io::Error) -> KubeError {
    KubeError::Stream {
        action,
        container: BUILD_CONTAINER.to_owned(),
        pod: running.pod.name.clone(),
        source,
    }
}

/// Copies output into the trace until the stream ends (`None`), the marker arrives, the stage
/// is canceled or times out, or the pod goes away (an error).
async fn pump(
    running: &Running,
    stage: &StageRun,
    trace: &mut Trace,
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    marker: Option<Vec<u8>>,
) -> Result<Option<StreamEnd>, KubeError> {
    let mut stdout = stdout;
    let mut stderr = stderr;
    let (mut out_buf, mut err_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let mut scan = marker.map(Marker::new);
    let mut next_check = Instant::now() + running.poll_interval;
    loop {
        if stdout.is_none() && stderr.is_none() {
            if let Some(scan) = scan.as_mut() {
                scan.flush(trace);
            }
            return Ok(None);
        }
        tokio::select! {
            biased;
            () = stage.cancel.cancelled() => {
                // What was held back in case it began the marker is output after all.
                if let Some(scan) = scan.as_mut() {
                    scan.flush(trace);
                }
                return Ok(Some(StreamEnd::Canceled));
            }
            () = tokio::time::sleep_until(stage.deadline) => {
                if let Some(scan) = scan.as_mut() {
                    scan.flush(trace);
                }
                return Ok(Some(StreamEnd::TimedOut));
            }
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Some(n) => {
                    let chunk = &out_buf[..n];
                    match scan.as_mut() {
                        Some(scan) => {
                            if let Some(code) = scan.feed(chunk, trace) {
                                return Ok(Some(StreamEnd::Exited(code)));
                            }
                        }
                        None => trace.write(chunk),
                    }
                }
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Some(n) => trace.write(&err_buf[..n]),
                None => stderr = None,
            },
            () = tokio::time::sleep_until(next_check) => {
                if let Some(err) = pod_error(running).await {
                    return Err(err);
                }
                next_check = Instant::now() + running.poll_interval;
            }
        }
    }
}

/// Reads from `reader` if there is one; `None` at its end (and forever after).
async fn read_some(reader: &mut Option<impl AsyncRead + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match reader {
        Some(reader) => match reader.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Finds the end-of-stage marker in the output, holding back what might be its beginning.
struct Marker {
    pattern: Vec<u8>,
    pending: Vec<u8>,
}

impl Marker {
    fn new(pattern: Vec<u8>) -> Self {
        Self {
            pattern,
            pending: Vec::new(),
        }
    }

    /// Writes what is certainly output; the exit code once the marker line is complete.
    fn feed(&mut self, chunk: &[u8], trace: &mut Trace) -> Option<i32> {
        self.pending.extend_from_slice(chunk);
        if let Some(at) = find(&self.pending, &self.pattern) {
            trace.write(&self.pending[..at]);
            self.pending.drain(..at);
            let rest = &self.pending[self.pattern.len()..];
            let newline = rest.iter().position(|b| *b == b'\n')?;
            let code = std::str::from_utf8(&rest[..newline])
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(1);
            self.pending.clear();
            return Some(code);
        }
        // Hold back only a tail that could begin the marker, so a line the script printed
        // before it sleeps reaches the trace at once.
        let keep = (1..self.pattern.len().min(self.pending.len() + 1))
            .rev()
            .find(|n| self.pending.ends_with(&self.pattern[..*n]))
            .unwrap_or(0);
        let flush = self.pending.len() - keep;
        trace.write(&self.pending[..flush]);
        self.pending.drain(..flush);
        None
    }

    fn flush(&mut self, trace: &mut Trace) {
        trace.write(&self.pending);
        self.pending.clear();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Writes one file into `dir` in the pod through the helper container.
async fn write_file(
    running: &Running,
    dir: &str,
    name: &str,
    content: &[u8],
) -> Result<(), KubeError> {
    let mut archive = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut archive);
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content)
            .and_then(|()| builder.finish())
            .map_err(|e| stream_error(running, "pack the stage script", e))?;
    }
    let command = vec![
        "runnel".to_owned(),
        "helper".to_owned(),
        "unpack".to_owned(),
        dir.to_owned(),
    ];
    helper(
        running,
        command,
        Some(&mut archive.as_slice()),
        &mut tokio::io::sink(),
    )
    .await
}

/// Runs a `runnel helper` command in the helper container; a non-zero exit is an error with
/// its standard error.
async fn helper(
    running: &Running,
    command: Vec<String>,
    input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
    output: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<(), KubeError> {
    let text = command.join(" ");
    let (code, stderr) = running
        .pod
        .run_collect(HELPER_CONTAINER, command, input, output)
        .await?;
    if code != 0 {
        return Err(KubeError::Pod(format!(
            "`{text}` in the helper container exited with {code}: {}",
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    Ok(())
}

/// The directory holding the project and temporary directories on one side, and their names.
fn dirs(
    project_dir: &std::path::Path,
    tmp_dir: &std::path::Path,
) -> Result<(std::path::PathBuf, Vec<String>), KubeError> {
    let parent = project_dir
        .parent()
        .filter(|p| tmp_dir.parent() == Some(*p))
        .ok_or_else(|| {
            KubeError::Pod(format!(
                "the project directory `{}` and `{}` must be siblings to be copied",
                project_dir.display(),
                tmp_dir.display()
            ))
        })?;
    let name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Ok((parent.to_owned(), vec![name(project_dir), name(tmp_dir)]))
}

/// A fingerprint of this host's project and temporary directories: every entry's path, size,
/// mode and modification time.
pub(crate) async fn fingerprint(job: &PreparedJob) -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &std::path::Path, hasher: &mut std::collections::hash_map::DefaultHasher) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            entry.file_name().hash(hasher);
            (meta.size(), meta.mode(), meta.mtime(), meta.mtime_nsec()).hash(hasher);
            if meta.is_dir() {
                walk(&entry.path(), hasher);
            }
        }
    }
    let dirs = [job.project_dir.clone(), job.tmp_dir.clone()];
    tokio::task::spawn_blocking(move || {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for dir in &dirs {
            dir.hash(&mut hasher);
            walk(dir, &mut hasher);
        }
        hasher.finish()
    })
    .await
    .unwrap_or_default()
}

/// Copies the project and temporary directories into the pod.
pub(crate) async fn push(running: &Running, job: &PreparedJob) -> Result<(), KubeError> {
    let (parent, names) = dirs(&job.project_dir, &job.tmp_dir)?;
    let (remote, _) = dirs(&job.script_dirs.project_dir, &job.script_dirs.tmp_dir)?;
    let pack_parent = parent.clone();
    let pack_names = names.clone();
    let archive = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let mut file = tempfile::tempfile()?;
        let names: Vec<&str> = pack_names.iter().map(String::as_str).collect();
        transfer::pack(&pack_parent, &names, &mut file)?;
        std::io::Seek::rewind(&mut file)?;
        Ok(file)
    })
    .await
    .map_err(|e| {
        stream_error(
            running,
            "pack the project directory",
            std::io::Error::other(e),
        )
    })?
    .map_err(|e| stream_error(running, "pack the project directory", e))?;
    let mut command = vec![
        "runnel".to_owned(),
        "helper".to_owned(),
        "unpack".to_owned(),
        remote.to_string_lossy().into_owned(),
    ];
    if let Some(owner) = &running.owner {
        command.push("--owner".to_owned());
        command.push(owner.clone());
    }
    let mut input = tokio::fs::File::from_std(archive);
    helper(running, command, Some(&mut input), &mut tokio::io::sink()).await
}

/// Copies the project and temporary directories back from the pod.
pub(crate) async fn pull(running: &Running, job: &PreparedJob) -> Result<(), KubeError> {
    let (parent, _) = dirs(&job.project_dir, &job.tmp_dir)?;
    let (remote, names) = dirs(&job.script_dirs.project_dir, &job.script_dirs.tmp_dir)?;
    let mut command = vec![
        "runnel".to_owned(),
        "helper".to_owned(),
        "pack".to_owned(),
        remote.to_string_lossy().into_owned(),
    ];
    command.extend(names);
    let file = tempfile::tempfile()
        .map_err(|e| stream_error(running, "store the project directory", e))?;
    let mut output = tokio::fs::File::from_std(file);
    helper(running, command, None, &mut output).await?;
    let mut file = output.into_std().await;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::io::Seek::rewind(&mut file)?;
        transfer::unpack(std::io::BufReader::new(file), &parent, None)
    })
    .await
    .map_err(|e| {
        stream_error(
            running,
            "unpack the project directory",
            std::io::Error::other(e),
        )
    })?
    .map_err(|e| stream_error(running, "unpack the project directory", e))
}

/// Stops the stage's process tree: SIGTERM, then SIGKILL after `grace`.
async fn kill_stage(running: &Running, job: &PreparedJob, grace: Duration) {
    let pid = pid_file(job);
    let kill = running
        .pod
        .kill_recorded(BUILD_CONTAINER, &pid, "TERM", grace);
    if let Err(err) = kill.await {
        tracing::warn!(pod = %running.pod.name, error = %err, "cannot stop the stage's processes");
    }
}

#[cfg(test)]
mod tests {
    use super::{Marker, quote};

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn the_marker_ends_the_output_across_chunks() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut trace = runnel_exec::test_support::trace(tx);
        let mut scan = Marker::new(b"\nEND-1 ".to_vec());
        assert_eq!(scan.feed(b"hello\nwor", &mut trace), None);
        assert_eq!(scan.feed(b"ld\nEN", &mut trace), None);
        assert_eq!(scan.feed(b"D-1 4", &mut trace), None);
        assert_eq!(scan.feed(b"2\n", &mut trace), Some(42));
        trace.flush();
        assert_eq!(String::from_utf8_lossy(trace.bytes()), "hello\nworld");
    }

    #[test]
    fn output_that_cannot_begin_the_marker_is_not_held_back() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut trace = runnel_exec::test_support::trace(tx);
        let mut scan = Marker::new(b"\nEND-1 ".to_vec());
        // A script that prints a line and then sleeps: only the newline could begin the marker.
        assert_eq!(scan.feed(b"started\n", &mut trace), None);
        trace.flush();
        assert_eq!(String::from_utf8_lossy(trace.bytes()), "started");
    }
}
