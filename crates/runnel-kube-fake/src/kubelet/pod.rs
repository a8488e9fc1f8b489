//! One pod's life on the fake node, as the kubelet lives it: schedule (or stay `Pending`),
//! create the sandbox and volumes, run the init containers one by one, start the containers
//! (waiting with `ErrImagePull`/`ImagePullBackOff` where the image is not on the engine, with
//! `CreateContainerConfigError` where a referenced secret is missing), follow their exits and
//! the restart policy, and on deletion or eviction stop them with the grace period.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{StopContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::node::{LABEL_POD_UID, Labels, Termination, sweep};
use super::sandbox::{self, Sandbox};
use super::schedule;
use super::start::Started;
use super::status::{ContainerRuntime, PodFailure, PodRuntime, State};
use crate::events::{self, PodEvent, Severity, Source};
use crate::kind::Kind;
use crate::ops;
use crate::options::NODE_NAME;
use crate::shared::Shared;
use crate::time;

/// How often a waiting pod (unschedulable, missing image, missing secret) is looked at again.
pub(super) const RETRY: Duration = Duration::from_secs(1);

pub(super) type Stop = watch::Receiver<Option<Termination>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Group {
    Init,
    Main,
}

impl Group {
    pub(super) fn key(self) -> &'static str {
        match self {
            Group::Init => "initContainers",
            Group::Main => "containers",
        }
    }
}

pub(super) struct PodTask {
    pub(super) shared: Arc<Shared>,
    pub(super) labels: Labels,
    pub(super) pod: Value,
    pub(super) runtime: PodRuntime,
    pub(super) sandbox: Option<Sandbox>,
    pub(super) pull_attempts: HashMap<String, u32>,
}

/// Runs one pod until it is deleted (or the fake shuts down).
pub(crate) async fn run(shared: Arc<Shared>, labels: Labels, mut stop: Stop) {
    let pod = shared
        .store()
        .get(Kind::Pod, &labels.namespace, &labels.pod)
        .cloned();
    let Some(pod) = pod.filter(|p| ops::meta_str(p, "uid") == labels.uid) else {
        shared.kubelet.finished(&labels.uid);
        return;
    };
    let runtime = PodRuntime::new(&pod["spec"]);
    let mut task = PodTask {
        shared: shared.clone(),
        labels,
        pod,
        runtime,
        sandbox: None,
        pull_attempts: HashMap::new(),
    };
    let termination = task.live(&mut stop).await;
    task.end(termination, &mut stop).await;
    shared.kubelet.finished(&task.labels.uid);
}

/// The termination asked for, waiting until there is one.
async fn terminated(stop: &mut Stop) -> Termination {
    loop {
        if let Some(termination) = *stop.borrow_and_update() {
            return termination;
        }
        if stop.changed().await.is_err() {
            return Termination::Shutdown;
        }
    }
}

impl PodTask {
    pub(super) fn spec(&self) -> &Value {
        &self.pod["spec"]
    }

    /// Posts an event about the pod, or about one of its containers.
    pub(super) fn event(
        &self,
        severity: Severity,
        source: Source,
        container: Option<(Group, &str)>,
        reason: &str,
        message: String,
    ) {
        let field_path = container.map(|(group, name)| format!("spec.{}{{{name}}}", group.key()));
        let event = PodEvent {
            severity,
            source,
            field_path,
            reason,
            message,
        };
        events::record(
            &self.shared,
            &self.labels.namespace,
            &self.labels.pod,
            &self.labels.uid,
            event,
        );
    }

    fn docker(&self) -> Option<Docker> {
        self.shared.kubelet.docker().cloned()
    }

    /// Writes the runtime's view into the pod's status (if the pod is still this pod).
    fn publish(&mut self) {
        let (namespace, name, uid) = (&self.labels.namespace, &self.labels.pod, &self.labels.uid);
        let mut store = self.shared.store();
        let Some(previous) = store
            .get(Kind::Pod, namespace, name)
            .filter(|p| ops::meta_str(p, "uid") == *uid)
            .cloned()
        else {
            return;
        };
        let status = self.runtime.render(previous.get("status"));
        let bind = self.runtime.scheduled;
        store.modify(Kind::Pod, namespace, name, |pod| {
            pod["status"] = status;
            if bind {
                pod["spec"]["nodeName"] = json!(NODE_NAME);
            }
        });
    }

    /// Waits `RETRY`, or returns the termination that arrived meanwhile.
    async fn pause(stop: &mut Stop) -> Option<Termination> {
        tokio::select! {
            termination = terminated(stop) => Some(termination),
            () = tokio::time::sleep(RETRY) => None,
        }
    }

    /// Everything up to the termination; returns it.
    async fn live(&mut self, stop: &mut Stop) -> Termination {
        loop {
            let fits = {
                let store = self.shared.store();
                schedule::fits(
                    &self.shared.options,
                    &store,
                    &self.labels.namespace,
                    self.spec(),
                )
            };
            match fits {
                Ok(()) => break,
                Err(message) => {
                    if self.runtime.unschedulable.as_ref() != Some(&message) {
                        self.event(
                            Severity::Warning,
                            Source::Scheduler,
                            None,
                            "FailedScheduling",
                            message.clone(),
                        );
                    }
                    self.runtime.unschedulable = Some(message);
                    self.publish();
                    if let Some(termination) = Self::pause(stop).await {
                        return termination;
                    }
                }
            }
        }
        self.runtime.unschedulable = None;
        self.runtime.scheduled = true;
        self.runtime.start_time = Some(time::now());
        self.publish();
        let assigned = format!(
            "Successfully assigned {}/{} to {NODE_NAME}",
            self.labels.namespace, self.labels.pod
        );
        self.event(
            Severity::Normal,
            Source::Scheduler,
            None,
            "Scheduled",
            assigned,
        );
        let Some(docker) = self.docker() else {
            return terminated(stop).await;
        };
        // The sandbox and the volumes.
        loop {
            let claims = self.claims();
            match sandbox::create(
                &docker,
                &self.labels,
                &self.pod,
                &claims,
                &self.shared.options.pause_image,
            )
            .await
            {
                Ok(sandbox) => {
                    self.runtime.pod_ip = Some(sandbox.pod_ip.clone());
                    self.runtime.host_ip = Some(sandbox.host_ip.clone());
                    self.sandbox = Some(sandbox);
                    break;
                }
                Err(message) => {
                    tracing::warn!(pod = %self.labels.pod, "{message}");
                    self.event(
                        Severity::Warning,
                        Source::Kubelet,
                        None,
                        "FailedMount",
                        message,
                    );
                    sweep(&docker, LABEL_POD_UID, &self.labels.uid).await;
                    if let Some(termination) = Self::pause(stop).await {
                        return termination;
                    }
                }
            }
        }
        loop {
            let filled = {
                let sandbox = self.sandbox.clone().expect("the sandbox was created above");
                let token = self.shared.options.token.clone().unwrap_or_default();
                let view = self.store_snapshot();
                sandbox::fill(&docker, &sandbox, &view, &self.pod, &token).await
            };
            match filled {
                Ok(()) => break,
                Err(message) => {
                    tracing::warn!(pod = %self.labels.pod, "{message}");
                    self.event(
                        Severity::Warning,
                        Source::Kubelet,
                        None,
                        "FailedMount",
                        message,
                    );
                    if let Some(termination) = Self::pause(stop).await {
                        return termination;
                    }
                }
            }
        }
        self.runtime.sandbox_ready = true;
        self.publish();
        if let Some(termination) = self.run_init(&docker, stop).await {
            return termination;
        }
        self.run_main(&docker, stop).await
    }

    /// A copy of the store's objects the volumes need (the lock is not held across awaits).
    fn store_snapshot(&self) -> crate::store::Store {
        let store = self.shared.store();
        let mut view = crate::store::Store::new();
        for kind in [Kind::ConfigMap, Kind::Secret] {
            for object in store.list(kind, Some(&self.labels.namespace)) {
                let _ = view.create(kind, object);
            }
        }
        view
    }

    fn claims(&self) -> HashMap<String, String> {
        let store = self.shared.store();
        store
            .list(Kind::PersistentVolumeClaim, Some(&self.labels.namespace))
            .iter()
            .map(|c| (ops::meta_str(c, "name"), ops::meta_str(c, "uid")))
            .collect()
    }

    /// Init containers in order, each to a successful exit. `Some` if the pod ends here.
    async fn run_init(&mut self, docker: &Docker, stop: &mut Stop) -> Option<Termination> {
        for index in 0..self.runtime.init.len() {
            loop {
                let state = match self.start(docker, Group::Init, index).await {
                    Started::Running(id) => {
                        self.publish();
                        tokio::select! {
                            termination = terminated(stop) => return Some(termination),
                            state = exit_state(docker, &id) => state,
                        }
                    }
                    Started::Exited(state) => state,
                    Started::Waiting(state) => {
                        self.runtime.init[index].state = state;
                        self.publish();
                        if let Some(termination) = Self::pause(stop).await {
                            return Some(termination);
                        }
                        continue;
                    }
                };
                let code = exit_code(&state);
                self.runtime.init[index].state = state;
                self.publish();
                if code == 0 {
                    break;
                }
                if self.runtime.restart_policy == "Never" {
                    // The pod has failed; it waits for its deletion.
                    return Some(terminated(stop).await);
                }
                self.note_restart(Group::Init, index);
                if let Some(termination) = Self::pause(stop).await {
                    return Some(termination);
                }
            }
        }
        for container in &mut self.runtime.main {
            if matches!(&container.state, State::Waiting { reason, .. } if reason == "PodInitializing")
            {
                container.state = State::waiting("ContainerCreating", None);
            }
        }
        None
    }

    /// Starts the containers and follows them until the termination.
    async fn run_main(&mut self, docker: &Docker, stop: &mut Stop) -> Termination {
        let (exits, mut exited) = mpsc::unbounded_channel::<(usize, State)>();
        let mut pending: BTreeSet<usize> = (0..self.runtime.main.len()).collect();
        let deadline = self
            .spec()
            .get("activeDeadlineSeconds")
            .and_then(Value::as_u64)
            .map(|s| Instant::now() + Duration::from_secs(s));
        let mut retry = tokio::time::interval(RETRY);
        loop {
            tokio::select! {
                termination = terminated(stop) => return termination,
                () = sleep_until(deadline) => {
                    let message = "Pod was active on the node longer than the specified deadline";
                    self.event(Severity::Normal, Source::Kubelet, None, "DeadlineExceeded", message.to_owned());
                    self.runtime.failure = Some(PodFailure { reason: "DeadlineExceeded".into(), message: message.into() });
                    self.stop_containers(docker, 0).await;
                    self.publish();
                    return terminated(stop).await;
                }
                Some((index, state)) = exited.recv() => {
                    let code = exit_code(&state);
                    self.runtime.main[index].state = state;
                    let restart = match self.runtime.restart_policy.as_str() {
                        "Always" => true,
                        "OnFailure" => code != 0,
                        _ => false,
                    };
                    if restart {
                        self.note_restart(Group::Main, index);
                        pending.insert(index);
                    }
                    self.publish();
                }
                _ = retry.tick(), if !pending.is_empty() => {
                    let indexes: Vec<usize> = pending.iter().copied().collect();
                    for (index, started) in self.start_many(docker, Group::Main, &indexes).await {
                        match started {
                            Started::Running(id) => {
                                pending.remove(&index);
                                let exits = exits.clone();
                                let docker = docker.clone();
                                tokio::spawn(async move {
                                    let state = exit_state(&docker, &id).await;
                                    let _ = exits.send((index, state));
                                });
                            }
                            Started::Exited(state) => {
                                pending.remove(&index);
                                let _ = exits.send((index, state));
                            }
                            Started::Waiting(state) => self.runtime.main[index].state = state,
                        }
                    }
                    self.publish();
                }
            }
        }
    }

    fn note_restart(&mut self, group: Group, index: usize) {
        let container = match group {
            Group::Init => &mut self.runtime.init[index],
            Group::Main => &mut self.runtime.main[index],
        };
        container.last_state = Some(container.state.clone());
        container.restart_count += 1;
        let message = format!(
            "back-off restarting failed container {} in pod {}_{}({})",
            container.name, self.labels.pod, self.labels.namespace, self.labels.uid
        );
        container.state = State::waiting("CrashLoopBackOff", Some(message.clone()));
        let name = container.name.clone();
        let event = format!("B{}", &message[1..]);
        self.event(
            Severity::Warning,
            Source::Kubelet,
            Some((group, &name)),
            "BackOff",
            event,
        );
    }

    pub(super) fn container_mut(&mut self, group: Group, index: usize) -> &mut ContainerRuntime {
        match group {
            Group::Init => &mut self.runtime.init[index],
            Group::Main => &mut self.runtime.main[index],
        }
    }

    /// Stops every running container (SIGTERM, SIGKILL after `grace`) and records the exits.
    async fn stop_containers(&mut self, docker: &Docker, grace: i64) {
        let seconds = i32::try_from(grace.max(0)).unwrap_or(i32::MAX);
        let running: Vec<(Group, usize, String)> = [
            (Group::Init, &self.runtime.init),
            (Group::Main, &self.runtime.main),
        ]
        .into_iter()
        .flat_map(|(group, list)| {
            list.iter()
                .enumerate()
                .filter_map(move |(i, c)| match (&c.state, &c.container_id) {
                    (State::Running { .. }, Some(id)) => Some((group, i, id.clone())),
                    _ => None,
                })
        })
        .collect();
        for (group, index, _) in &running {
            let name = self.container_mut(*group, *index).name.clone();
            let message = format!("Stopping container {name}");
            self.event(
                Severity::Normal,
                Source::Kubelet,
                Some((*group, &name)),
                "Killing",
                message,
            );
        }
        let stops = running.iter().map(|(_, _, id)| {
            let docker = docker.clone();
            let id = id.clone();
            async move {
                let options = StopContainerOptionsBuilder::default().t(seconds).build();
                let _ = docker.stop_container(&id, Some(options)).await;
                exit_state(&docker, &id).await
            }
        });
        let states = futures_util::future::join_all(stops).await;
        for ((group, index, _), state) in running.into_iter().zip(states) {
            match group {
                Group::Init => self.runtime.init[index].state = state,
                Group::Main => self.runtime.main[index].state = state,
            }
        }
    }

    /// After the termination: stop, report, remove the Docker objects, let the object go.
    async fn end(&mut self, mut termination: Termination, stop: &mut Stop) {
        let docker = self.docker();
        loop {
            match termination {
                Termination::Shutdown => break,
                Termination::Delete { grace_seconds } => {
                    if let Some(docker) = &docker {
                        self.stop_containers(docker, grace_seconds).await;
                    }
                    self.publish();
                    break;
                }
                Termination::Evict { grace_seconds } => {
                    // The eviction manager marks the pod (`Failed`/`Evicted`, condition
                    // `DisruptionTarget`) as it starts killing it, so clients see why its
                    // containers stop.
                    let message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. ";
                    self.event(
                        Severity::Warning,
                        Source::Kubelet,
                        None,
                        "Evicted",
                        message.to_owned(),
                    );
                    self.runtime.failure = Some(PodFailure {
                        reason: "Evicted".into(),
                        message: message.into(),
                    });
                    self.publish();
                    if let Some(docker) = &docker {
                        self.stop_containers(docker, grace_seconds).await;
                    }
                    self.publish();
                    // The evicted pod stays until it is deleted.
                    termination = loop {
                        if stop.changed().await.is_err() {
                            break Termination::Shutdown;
                        }
                        match *stop.borrow_and_update() {
                            Some(Termination::Evict { .. }) | None => {}
                            Some(other) => break other,
                        }
                    };
                    if let Termination::Delete { .. } = termination {
                        break;
                    }
                }
            }
        }
        if let Some(docker) = &docker {
            sweep(docker, LABEL_POD_UID, &self.labels.uid).await;
        }
        if termination != Termination::Shutdown {
            ops::pod_terminated(
                &self.shared,
                &self.labels.namespace,
                &self.labels.pod,
                &self.labels.uid,
            );
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn exit_code(state: &State) -> i64 {
    match state {
        State::Terminated { exit_code, .. } => *exit_code,
        _ => -1,
    }
}

/// Waits until a container is not running and reads how it ended.
async fn exit_state(docker: &Docker, id: &str) -> State {
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let _ = docker.wait_container(id, Some(options)).next().await;
    let state = docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|i| i.state);
    let code = state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
    let oom = state.as_ref().and_then(|s| s.oom_killed) == Some(true);
    let reason = if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    State::Terminated {
        exit_code: code,
        reason: reason.to_owned(),
        message: None,
        started_at: state
            .as_ref()
            .and_then(|s| s.started_at.as_deref())
            .and_then(time::from_docker),
        finished_at: state
            .as_ref()
            .and_then(|s| s.finished_at.as_deref())
            .and_then(time::from_docker)
            .unwrap_or_else(time::now),
    }
}
