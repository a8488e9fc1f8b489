//! The fake's kubelet: one task per pod, the labels on every Docker object it creates, and
//! the sweep that removes them (a pod's when it is deleted, all of the instance's on shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use tokio::sync::{Notify, watch};
use tokio_util::task::TaskTracker;

use super::pod;
use crate::shared::{Shared, lock};

/// The label on every Docker container and volume of a fake cluster; its value is the
/// cluster's instance id ([`crate::FakeCluster::instance_id`]).
pub const LABEL_INSTANCE: &str = "io.runnel.kube-fake.instance";
/// The pod uid of a pod's containers and volumes.
pub(crate) const LABEL_POD_UID: &str = "io.runnel.kube-fake.pod-uid";
const LABEL_NAMESPACE: &str = "io.runnel.kube-fake.namespace";
const LABEL_POD: &str = "io.runnel.kube-fake.pod";
/// The container's name in the pod (`POD` for the sandbox).
pub(crate) const LABEL_CONTAINER: &str = "io.runnel.kube-fake.container";

/// Why a pod's containers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Termination {
    /// The pod was deleted: SIGTERM, SIGKILL after the grace period, then the object goes.
    Delete { grace_seconds: i64 },
    /// The node evicted the pod: its containers stop and it stays, `Failed`/`Evicted`.
    Evict { grace_seconds: i64 },
    /// The fake shuts down: kill at once, remove everything.
    Shutdown,
}

/// The labels of one pod's Docker objects.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub instance: String,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
}

impl Labels {
    pub(crate) fn base(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_POD_UID.to_owned(), self.uid.clone()),
            (LABEL_NAMESPACE.to_owned(), self.namespace.clone()),
            (LABEL_POD.to_owned(), self.pod.clone()),
        ])
    }

    pub(crate) fn container(&self, name: &str) -> HashMap<String, String> {
        let mut labels = self.base();
        labels.insert(LABEL_CONTAINER.to_owned(), name.to_owned());
        labels
    }

    /// dockershim's naming: `k8s_<container>_<pod>_<namespace>_<uid>_0`.
    pub(crate) fn container_name(&self, container: &str) -> String {
        let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        format!(
            "k8s_{}_{}_{}_{}_0",
            container,
            short(&self.pod, 60),
            short(&self.namespace, 30),
            self.uid
        )
    }
}

/// The node agent.
pub(crate) struct Kubelet {
    docker: Option<Docker>,
    instance: String,
    pods: Mutex<HashMap<String, watch::Sender<Option<Termination>>>>,
    tasks: TaskTracker,
    finished: Notify,
}

impl Kubelet {
    pub(crate) fn new(docker: Option<Docker>, instance: String) -> Self {
        Self {
            docker,
            instance,
            pods: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            finished: Notify::new(),
        }
    }

    pub(crate) fn docker(&self) -> Option<&Docker> {
        self.docker.as_ref()
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Starts the task that schedules and runs a new pod.
    pub(crate) fn start(&self, shared: Arc<Shared>, namespace: &str, name: &str, uid: &str) {
        let (sender, receiver) = watch::channel(None);
        lock(&self.pods).insert(uid.to_owned(), sender);
        let labels = Labels {
            instance: self.instance.clone(),
            namespace: namespace.to_owned(),
            pod: name.to_owned(),
            uid: uid.to_owned(),
        };
        self.tasks.spawn(pod::run(shared, labels, receiver));
    }

    /// Tells a pod's task to stop its containers; `false` if no task runs it.
    pub(crate) fn terminate(&self, uid: &str, termination: Termination) -> bool {
        match lock(&self.pods).get(uid) {
            Some(sender) => {
                sender.send_replace(Some(termination));
                true
            }
            None => false,
        }
    }

    /// Called by a pod's task when it is done.
    pub(crate) fn finished(&self, uid: &str) {
        lock(&self.pods).remove(uid);
        self.finished.notify_waiters();
    }

    /// Waits until every pod task whose uid `still_exists` denies has finished (its Docker
    /// objects are gone), or until `limit` passes.
    pub(crate) async fn settle(&self, limit: Duration, still_exists: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.finished.notified();
            let pending = lock(&self.pods).keys().any(|uid| !still_exists(uid));
            if !pending {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// A deleted claim's Docker volume goes (if no container still uses it).
    pub(crate) fn claim_deleted(&self, claim_uid: &str) {
        let Some(docker) = self.docker.clone() else {
            return;
        };
        let name = format!("kube-fake-{}-pvc-{claim_uid}", self.instance);
        self.tasks.spawn(async move {
            let _ = docker
                .remove_volume(
                    &name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        });
    }

    /// Kills every pod at once and removes every Docker object of this instance.
    pub(crate) async fn shutdown(&self) {
        let senders: Vec<_> = lock(&self.pods).values().cloned().collect();
        for sender in senders {
            sender.send_replace(Some(Termination::Shutdown));
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(60), self.tasks.wait()).await;
        if let Some(docker) = &self.docker {
            sweep(docker, LABEL_INSTANCE, &self.instance).await;
        }
    }
}

/// Removes every container and volume carrying `label=value`.
pub(crate) async fn sweep(docker: &Docker, label: &str, value: &str) {
    let filter = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
    let list = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    for container in docker.list_containers(Some(list)).await.unwrap_or_default() {
        if let Some(id) = container.id {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    }
    let list = ListVolumesOptionsBuilder::default()
        .filters(&filter)
        .build();
    let volumes = docker
        .list_volumes(Some(list))
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default();
    for volume in volumes {
        let _ = docker
            .remove_volume(
                &volume.name,
                Some(RemoveVolumeOptionsBuilder::default().force(true).build()),
            )
            .await;
    }
}

/// The Docker objects of an instance still present: `(containers, volumes)` names.
pub(crate) async fn leftovers(docker: &Docker, instance: &str) -> (Vec<String>, Vec<String>) {
    let filter = HashMap::from([(
        "label".to_owned(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let list = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let containers = docker
        .list_containers(Some(list))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_owned())
        .collect();
    let list = ListVolumesOptionsBuilder::default()
        .filters(&filter)
        .build();
    let volumes = docker
        .list_volumes(Some(list))
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    (containers, volumes)
}

/// Removes what fake clusters of processes that no longer exist left behind (a test killed
/// before it could shut its cluster down). An instance id starts with its process id.
pub(crate) async fn sweep_stale(docker: &Docker) {
    let filter = HashMap::from([("label".to_owned(), vec![LABEL_INSTANCE.to_owned()])]);
    let list = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let mut instances: Vec<String> = docker
        .list_containers(Some(list))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.labels.and_then(|mut l| l.remove(LABEL_INSTANCE)))
        .collect();
    let list = ListVolumesOptionsBuilder::default()
        .filters(&filter)
        .build();
    let volumes = docker
        .list_volumes(Some(list))
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default();
    instances.extend(
        volumes
            .into_iter()
            .filter_map(|mut v| v.labels.remove(LABEL_INSTANCE)),
    );
    instances.sort();
    instances.dedup();
    for instance in instances {
        let pid = instance
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            sweep(docker, LABEL_INSTANCE, &instance).await;
        }
    }
}
