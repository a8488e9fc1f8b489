//! Watching the pod: waiting until it runs (or fails to start: an image that cannot be pulled,
//! `Pending` past `poll_timeout`), and noticing while a stage runs that it was deleted or
//! evicted.
//!
//! GitLab: gitlab-runner `executors/kubernetes/util.go` (`waitForPodRunning`, `getPodPhase`,
//! `checkIfImageCanBePulled`: `ErrImagePull`/`ImagePullBackOff` fail with
//! `image_pull_failure`) and `kubernetes.go` `watchPodStatus`.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::WatchParams;
use runnel_exec::Trace;
use tokio::time::Instant;

use crate::error::KubeError;
use crate::remote::PodRef;
use crate::settings::KubeSettings;

/// Container waiting reasons that mean the image will not come.
const PULL_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// Waits until the pod is `Running`: looks at it whenever a watch on it reports a change, and
/// at least every `poll_interval` (gitlab-runner polls only; the watch starts the job as soon
/// as the pod runs instead of up to a poll interval later). Prints gitlab-runner's
/// "Waiting for pod …" lines when the pod's state changes.
pub(crate) async fn wait_for_running(
    pod: &PodRef,
    namespace: &str,
    settings: &KubeSettings,
    trace: &mut Trace,
) -> Result<(), KubeError> {
    let deadline = Instant::now() + settings.poll_timeout;
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", pod.name))
        .timeout(settings.poll_timeout.as_secs().clamp(1, 290) as u32);
    // Without a watch (an API server that refuses it) the loop polls.
    let mut changes = match pod.api.watch(&params, "0").await {
        Ok(stream) => Some(stream.boxed()),
        Err(err) => {
            tracing::debug!(pod = %pod.name, error = %err, "cannot watch the pod; polling");
            None
        }
    };
    let mut shown = String::new();
    loop {
        let current = get(pod).await?;
        let Some(current) = current else {
            return Err(KubeError::Pod(format!(
                "pod `{namespace}/{}` was deleted before it started",
                pod.name
            )));
        };
        let status = current.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        match phase {
            "Running" => return Ok(()),
            "Succeeded" | "Failed" => {
                return Err(KubeError::Pod(format!(
                    "pod `{namespace}/{}` is {phase} before the job ran{}",
                    pod.name,
                    reason_text(&current)
                )));
            }
            _ => {}
        }
        if let Some((container, reason, message)) = pull_failure(&current) {
            let image = image_of(&current, &container);
            return Err(KubeError::ImagePull {
                container,
                image,
                reason,
                message,
            });
        }
        let mut text = format!(
            "Waiting for pod {namespace}/{} to be running, status is {phase}",
            pod.name
        );
        for (container, reason, message) in waiting(&current) {
            text.push_str(&format!("\n\t{container}: {reason} {message:?}"));
        }
        if text != shown {
            trace.println(&text);
            shown = text;
        }
        if Instant::now() >= deadline {
            return Err(KubeError::Pod(format!(
                "timed out waiting for pod `{namespace}/{}` to start: still {phase} after {}s \
                 (`poll_timeout`)",
                pod.name,
                settings.poll_timeout.as_secs()
            )));
        }
        let next_poll = deadline.min(Instant::now() + settings.poll_interval);
        match changes.as_mut() {
            Some(stream) => {
                tokio::select! {
                    event = stream.next() => {
                        // The watch ended (its timeout, a dropped connection): poll from now.
                        if event.is_none() {
                            changes = None;
                        }
                    }
                    () = tokio::time::sleep_until(next_poll) => {}
                }
            }
            None => tokio::time::sleep_until(next_poll).await,
        }
    }
}

/// Why the pod can no longer run the job, in gitlab-runner's words (`internal/watchers/pod.go`
/// `checkTerminalPodErrors` and its delete handler): a `DisruptionTarget` condition (evicted,
/// preempted), a deletion in progress, a deleted pod; also `Failed`/`Succeeded` without either.
/// `None` while it runs. Each is a system failure, as there.
pub(crate) async fn gone(pod: &PodRef) -> Result<Option<String>, KubeError> {
    let full = format!("{}/{}", pod.namespace, pod.name);
    let Some(current) = get(pod).await? else {
        return Ok(Some(format!("pod {full:?} is deleted")));
    };
    Ok(terminal(&current, &full))
}

/// The terminal condition of `pod`, if it has one (see [`gone`]).
fn terminal(pod: &Pod, full: &str) -> Option<String> {
    let status = pod.status.as_ref();
    let disrupted = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    if let Some(condition) = disrupted {
        return Some(format!(
            "pod {full:?} is disrupted: reason {:?}, message {:?}",
            condition.reason.as_deref().unwrap_or_default(),
            condition.message.as_deref().unwrap_or_default()
        ));
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(format!("pod {full:?} is being deleted"));
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    matches!(phase, "Failed" | "Succeeded").then(|| {
        format!(
            "pod {full:?} is {phase} while the job runs{}",
            reason_text(pod)
        )
    })
}

async fn get(pod: &PodRef) -> Result<Option<Pod>, KubeError> {
    pod.api
        .get_opt(&pod.name)
        .await
        .map_err(|source| KubeError::Api {
            action: format!("get pod `{}`", pod.name),
            host: pod.host.clone(),
            source,
        })
}

fn reason_text(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or_default();
    let message = status
        .and_then(|s| s.message.as_deref())
        .unwrap_or_default();
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(": {reason}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(": {reason}: {message}"),
    }
}

/// The waiting containers: name, reason, message.
fn waiting(pod: &Pod) -> Vec<(String, String, String)> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            Some((
                c.name.clone(),
                waiting.reason.clone().unwrap_or_default(),
                waiting.message.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

fn pull_failure(pod: &Pod) -> Option<(String, String, String)> {
    waiting(pod)
        .into_iter()
        .find(|(_, reason, _)| PULL_FAILURES.contains(&reason.as_str()))
}

/// The image of container `name` of `pod`.
fn image_of(pod: &Pod, name: &str) -> String {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}
