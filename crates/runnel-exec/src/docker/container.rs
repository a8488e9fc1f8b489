//! The job container: created once in `prepare` from the job's image, then started once per
//! build stage with the stage's script on its stdin, as gitlab-runner's docker executor does
//! (`OpenStdin` + `StdinOnce`: each start runs the shell-detection command again, reading the
//! next script; the file system persists between stages).
//!
//! GitLab: gitlab-runner `executors/docker/docker.go` `createContainer` (host config keys),
//! `executors/docker/internal/exec/exec.go` (attach, start, wait, kill on cancel) and
//! `shells/bash.go` `BashDetectShellScript`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::AttachContainerResults;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{DockerConfig, parse_nano_cpus, parse_size};
use super::error::DockerError;
use crate::executor::PreparedJob;
use crate::process::ScriptEnd;
use crate::trace::Trace;

/// gitlab-runner's shell detection: `bash` where the image has it, else `sh`.
pub(crate) const DETECT_SHELL_SCRIPT: &str = "if [ -x /usr/local/bin/bash ]; then
\texec /usr/local/bin/bash \"$@\"
elif [ -x /usr/bin/bash ]; then
\texec /usr/bin/bash \"$@\"
elif [ -x /bin/bash ]; then
\texec /bin/bash \"$@\"
elif [ -x /usr/local/bin/sh ]; then
\texec /usr/local/bin/sh \"$@\"
elif [ -x /usr/bin/sh ]; then
\texec /usr/bin/sh \"$@\"
elif [ -x /bin/sh ]; then
\texec /bin/sh \"$@\"
elif [ -x /busybox/sh ]; then
\texec /busybox/sh \"$@\"
else
\techo shell not found
\texit 1
fi
";

/// Output still arriving this long after the container stopped is dropped.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Where the job container is attached to the network.
#[derive(Debug, Clone)]
pub(crate) enum Network {
    /// The job's own network: the services answer to their aliases there.
    PerJob(String),
    /// `network_mode` from the config; `links` reach services on the default bridge.
    Mode { mode: String, links: Vec<String> },
    /// The engine's default.
    Default,
}

/// The host directories the job sees at the same paths: the builds directory and the parents
/// of the project and temporary directories (a parent, so `GIT_STRATEGY=clone` may remove and
/// recreate the project directory under a live mount).
pub(crate) fn build_dirs(builds_dir: &Path, project_dir: &Path, tmp_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let candidates = [
        Some(builds_dir.to_path_buf()),
        project_dir.parent().map(Path::to_path_buf),
        tmp_dir.parent().map(Path::to_path_buf),
    ];
    for dir in candidates.into_iter().flatten() {
        if dir.as_os_str().is_empty() || dir == Path::new("/") {
            continue;
        }
        if dirs.iter().any(|d| dir.starts_with(d)) {
            continue;
        }
        dirs.retain(|d| !d.starts_with(&dir));
        dirs.push(dir);
    }
    dirs
}

/// The object directories a working-tree copy borrows from the user's repository
/// (`.git/objects/info/alternates` of the project directory): mounted read-only at the same
/// paths so `git` works in the container.
pub(crate) fn alternates(project_dir: &Path) -> Vec<PathBuf> {
    let file = project_dir.join(".git/objects/info/alternates");
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && path.is_dir())
        .collect()
}

/// The binds of the job: build directories, then `volumes` from the config (cache volumes as
/// gitlab-runner makes them: under `cache_dir`, or a Docker volume per project and path).
pub(crate) fn binds(
    job: &PreparedJob,
    config: &DockerConfig,
    trace: &mut Trace,
) -> Result<Vec<String>, DockerError> {
    let mut binds = Vec::new();
    for dir in build_dirs(&job.builds_dir, &job.project_dir, &job.tmp_dir) {
        std::fs::create_dir_all(&dir).map_err(|source| {
            DockerError::config(format!(
                "failed to create the builds directory `{}`: {source}",
                dir.display()
            ))
        })?;
        let dir = dir.to_string_lossy();
        binds.push(format!("{dir}:{dir}"));
    }
    for volume in &config.volumes {
        if volume.contains(':') {
            binds.push(volume.clone());
            continue;
        }
        if config.disable_cache {
            trace.warning(&format!(
                "Container based cache volumes creation is disabled. Will not create volume for \"{volume}\""
            ));
            continue;
        }
        let hash = hex::encode(&Sha256::digest(volume.as_bytes())[..8]);
        let project = format!(
            "runner-{}-project-{}-concurrent-0",
            job.variables
                .get("CI_RUNNER_SHORT_TOKEN")
                .unwrap_or("local"),
            job.payload.job_info.project_id
        );
        match &config.cache_dir {
            Some(cache_dir) => {
                let host = cache_dir.join(&project).join(&hash);
                std::fs::create_dir_all(&host).map_err(|source| {
                    DockerError::config(format!(
                        "failed to create the cache directory `{}`: {source}",
                        host.display()
                    ))
                })?;
                binds.push(format!("{}:{volume}", host.display()));
            }
            None => binds.push(format!("runnel-cache-{project}-{hash}:{volume}")),
        }
    }
    Ok(binds)
}

/// The host config shared by the job container and the services.
pub(crate) fn host_config(
    config: &DockerConfig,
    binds: Vec<String>,
    network: &Network,
) -> Result<HostConfig, DockerError> {
    let size = |key: &str, value: &Option<String>| -> Result<Option<i64>, DockerError> {
        value
            .as_deref()
            .map(|v| {
                parse_size(v).ok_or_else(|| {
                    DockerError::config(format!("`{key}` is `{v}`, expected a size such as `512m`"))
                })
            })
            .transpose()
    };
    let nano_cpus = config
        .cpus
        .as_deref()
        .map(|c| {
            parse_nano_cpus(c)
                .ok_or_else(|| DockerError::config(format!("`cpus` is `{c}`, expected a number")))
        })
        .transpose()?;
    let some = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
    let (network_mode, links) = match network {
        Network::PerJob(name) => (Some(name.clone()), None),
        Network::Mode { mode, links } => (Some(mode.clone()), some(links)),
        Network::Default => (None, None),
    };
    Ok(HostConfig {
        binds: Some(binds),
        privileged: Some(config.privileged),
        network_mode,
        links,
        memory: size("memory", &config.memory)?,
        memory_swap: size("memory_swap", &config.memory_swap)?,
        memory_reservation: size("memory_reservation", &config.memory_reservation)?,
        nano_cpus,
        cpuset_cpus: config.cpuset_cpus.clone(),
        extra_hosts: some(&config.extra_hosts),
        dns: some(&config.dns),
        dns_search: some(&config.dns_search),
        cap_add: some(&config.cap_add),
        cap_drop: some(&config.cap_drop),
        security_opt: some(&config.security_opt),
        shm_size: config.shm_size,
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        ..HostConfig::default()
    })
}

/// What the job container is made from.
#[derive(Debug, Clone)]
pub(crate) struct BuildContainer {
    pub(crate) name: String,
    pub(crate) image_id: String,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) user: Option<String>,
    pub(crate) hostname: String,
    pub(crate) working_dir: String,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) host_config: HostConfig,
    pub(crate) network: Network,
}

/// Creates the job container with `extra_binds` besides the spec's; returns its id.
pub(crate) async fn create_build_container(
    docker: &Docker,
    spec: &BuildContainer,
    extra_binds: &[String],
) -> Result<String, DockerError> {
    let spec = spec.clone();
    let mut host_config = spec.host_config;
    host_config
        .binds
        .get_or_insert_with(Vec::new)
        .extend(extra_binds.iter().cloned());
    let networking_config = match &spec.network {
        Network::PerJob(name) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name.clone(), EndpointSettings::default())])),
        }),
        _ => None,
    };
    let body = ContainerCreateBody {
        image: Some(spec.image_id),
        hostname: Some(spec.hostname),
        user: spec.user,
        cmd: Some(vec!["sh".into(), "-c".into(), DETECT_SHELL_SCRIPT.into()]),
        entrypoint: spec.entrypoint,
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        working_dir: Some(spec.working_dir),
        labels: Some(spec.labels),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(DockerError::api(format!(
            "create the job container `{}`",
            spec.name
        )))?;
    Ok(created.id)
}

/// Runs `script` in the job container: attach, start, feed stdin, copy the output to the trace,
/// wait. On cancel or deadline the container is stopped (SIGTERM, SIGKILL after `grace`). When
/// this returns, the container is not running, whatever the outcome.
pub(crate) async fn run_stage(
    docker: &Docker,
    id: &str,
    script: &[u8],
    trace: &mut Trace,
    cancel: &CancellationToken,
    deadline: Instant,
    grace: Duration,
) -> Result<ScriptEnd, DockerError> {
    let options = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let AttachContainerResults {
        mut output,
        mut input,
    } = docker
        .attach_container(id, Some(options))
        .await
        .map_err(DockerError::api("attach to the job container"))?;
    docker
        .start_container(id, None)
        .await
        .map_err(DockerError::api("start the job container"))?;
    // `not-running` answers at once if the script already ended; the container is running or
    // exited now, never `created` (see dependencies.md §3 on `next-exit`).
    let wait_options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(id, Some(wait_options));
    let write = async {
        // A shell that exits early closes stdin; its exit code tells what happened.
        let _ = input.write_all(script).await;
        let _ = input.shutdown().await;
    };
    tokio::pin!(write);
    let mut written = false;
    let mut eof = false;
    let mut exit: Option<i32> = None;
    let end = loop {
        if let (true, Some(code)) = (eof, exit) {
            break ScriptEnd::Exited(code);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break ScriptEnd::Canceled,
            () = tokio::time::sleep_until(deadline) => break ScriptEnd::TimedOut,
            frame = output.next(), if !eof => match frame {
                Some(Ok(frame)) => trace.write(frame.as_ref()),
                Some(Err(_)) | None => eof = true,
            },
            status = wait.next(), if exit.is_none() => {
                exit = Some(exit_code(status)?);
                if !eof {
                    drain(&mut output, trace).await;
                    eof = true;
                }
            }
            () = &mut write, if !written => written = true,
        }
    };
    if !matches!(end, ScriptEnd::Exited(_)) {
        stop(docker, id, grace).await;
        drain(&mut output, trace).await;
    }
    trace.flush();
    Ok(end)
}

/// Runs `script` in the stopped job container without a trace (output discarded), for
/// runnel's own housekeeping; waits at most `limit`.
pub(crate) async fn run_quiet(docker: &Docker, id: &str, script: &str, limit: Duration) {
    let options = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stream(true)
        .build();
    let Ok(AttachContainerResults { mut input, .. }) =
        docker.attach_container(id, Some(options)).await
    else {
        return;
    };
    if docker.start_container(id, None).await.is_err() {
        return;
    }
    let _ = input.write_all(script.as_bytes()).await;
    let _ = input.shutdown().await;
    let wait_options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(id, Some(wait_options));
    if tokio::time::timeout(limit, wait.next()).await.is_err() {
        stop(docker, id, Duration::ZERO).await;
    }
}

/// Copies output that is still buffered, for at most [`DRAIN_AFTER_EXIT`].
async fn drain(
    output: &mut (
             impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Unpin
         ),
    trace: &mut Trace,
) {
    let until = Instant::now() + DRAIN_AFTER_EXIT;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, output.next()).await {
        trace.write(frame.as_ref());
    }
}

/// Stops a container: SIGTERM, then SIGKILL after `grace`; waits until it is not running.
pub(crate) async fn stop(docker: &Docker, id: &str, grace: Duration) {
    let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
    let options = StopContainerOptionsBuilder::default().t(seconds).build();
    let _ = docker.stop_container(id, Some(options)).await;
    let wait_options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let _ = docker.wait_container(id, Some(wait_options)).next().await;
}

/// The exit code from a `wait` answer (bollard reports a non-zero code as an error).
fn exit_code(
    status: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> Result<i32, DockerError> {
    match status {
        Some(Ok(response)) => Ok(i32::try_from(response.status_code).unwrap_or(-1)),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            Ok(i32::try_from(code).unwrap_or(-1))
        }
        Some(Err(source)) => Err(DockerError::Api {
            action: "wait for the job container".into(),
            source,
        }),
        None => Ok(-1),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::build_dirs;

    fn dirs(builds: &str, project: &str) -> Vec<PathBuf> {
        let tmp = format!("{project}.tmp");
        build_dirs(Path::new(builds), Path::new(project), Path::new(&tmp))
    }

    #[test]
    fn build_dirs_are_the_builds_dir_and_outside_parents() {
        assert_eq!(dirs("/b", "/b/acme/app"), [PathBuf::from("/b")]);
        assert_eq!(
            dirs("/b", "/elsewhere/app"),
            [PathBuf::from("/b"), PathBuf::from("/elsewhere")]
        );
    }
}
