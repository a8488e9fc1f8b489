//! The pod status the kubelet reports: phase (`getPhase` of `pkg/kubelet/kubelet_pods.go`),
//! conditions, and container statuses sorted by name, computed from what the fake's kubelet
//! knows about each container.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::time;

/// A container's state, as `ContainerState` has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i64,
        reason: String,
        message: Option<String>,
        started_at: Option<String>,
        finished_at: String,
    },
}

impl State {
    pub(crate) fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting {
            reason: reason.to_owned(),
            message,
        }
    }

    fn to_json(&self, container_id: Option<&str>) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut waiting = json!({"reason": reason});
                if let Some(message) = message {
                    waiting["message"] = json!(message);
                }
                json!({"waiting": waiting})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut terminated =
                    json!({"exitCode": exit_code, "reason": reason, "finishedAt": finished_at});
                if let Some(started) = started_at {
                    terminated["startedAt"] = json!(started);
                }
                if let Some(message) = message {
                    terminated["message"] = json!(message);
                }
                if let Some(id) = container_id {
                    terminated["containerID"] = json!(format!("docker://{id}"));
                }
                json!({"terminated": terminated})
            }
        }
    }
}

/// What the kubelet knows about one container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: u32,
}

impl ContainerRuntime {
    pub(crate) fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: String::new(),
            container_id: None,
            state: State::waiting("ContainerCreating", None),
            last_state: None,
            restart_count: 0,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(self.state, State::Terminated { exit_code: 0, .. })
    }

    fn terminated(&self) -> bool {
        matches!(self.state, State::Terminated { .. })
    }

    fn to_json(&self) -> Value {
        let mut status = json!({
            "name": self.name,
            "state": self.state.to_json(self.container_id.as_deref()),
            "lastState": self.last_state.as_ref().map_or(json!({}), |s| s.to_json(self.container_id.as_deref())),
            "ready": self.running(),
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.running(),
        });
        if let Some(id) = &self.container_id {
            status["containerID"] = json!(format!("docker://{id}"));
        }
        status
    }
}

/// A pod failure decided by the kubelet itself (eviction, deadline).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodFailure {
    pub reason: String,
    pub message: String,
}

/// What the kubelet knows about one pod.
#[derive(Debug, Clone)]
pub(crate) struct PodRuntime {
    pub restart_policy: String,
    pub unschedulable: Option<String>,
    pub scheduled: bool,
    pub sandbox_ready: bool,
    pub init: Vec<ContainerRuntime>,
    pub main: Vec<ContainerRuntime>,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<String>,
    pub failure: Option<PodFailure>,
    transitions: HashMap<&'static str, (String, String)>,
}

impl PodRuntime {
    pub(crate) fn new(spec: &Value) -> Self {
        let containers = |group: &str| -> Vec<ContainerRuntime> {
            spec.get(group)
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|c| {
                            let get = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
                            let mut runtime = ContainerRuntime::new(get("name"), get("image"));
                            if group == "containers"
                                && spec
                                    .get("initContainers")
                                    .and_then(Value::as_array)
                                    .is_some_and(|l| !l.is_empty())
                            {
                                runtime.state = State::waiting("PodInitializing", None);
                            }
                            runtime
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            restart_policy: spec
                .get("restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always")
                .to_owned(),
            unschedulable: None,
            scheduled: false,
            sandbox_ready: false,
            init: containers("initContainers"),
            main: containers("containers"),
            pod_ip: None,
            host_ip: None,
            start_time: None,
            failure: None,
            transitions: HashMap::new(),
        }
    }

    /// `getPhase`.
    pub(crate) fn phase(&self) -> &'static str {
        if self.failure.is_some() {
            return "Failed";
        }
        if !self.scheduled {
            return "Pending";
        }
        let init_failed = self.init.iter().any(|c| c.terminated() && !c.succeeded());
        if init_failed && self.restart_policy == "Never" {
            return "Failed";
        }
        if !self.init.iter().all(ContainerRuntime::succeeded) {
            return "Pending";
        }
        let waiting = self
            .main
            .iter()
            .filter(|c| matches!(c.state, State::Waiting { .. }))
            .count();
        let running = self.main.iter().filter(|c| c.running()).count();
        if waiting > 0 {
            return "Pending";
        }
        if running > 0 {
            return "Running";
        }
        if self.restart_policy == "Always" {
            return "Running";
        }
        if self.main.iter().all(ContainerRuntime::succeeded) {
            return "Succeeded";
        }
        if self.restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    }

    /// The `status` object, keeping `qosClass` from `previous`.
    pub(crate) fn render(&mut self, previous: Option<&Value>) -> Value {
        let phase = self.phase();
        let mut status = Map::new();
        status.insert("phase".into(), json!(phase));
        let mut conditions = Vec::new();
        if self.scheduled {
            let done = phase == "Succeeded" || phase == "Failed";
            conditions.push(self.condition(
                "PodReadyToStartContainers",
                self.sandbox_ready && !done,
                None,
                None,
            ));
            let pending_init: Vec<&str> = self
                .init
                .iter()
                .filter(|c| !c.succeeded())
                .map(|c| c.name.as_str())
                .collect();
            let initialized = pending_init.is_empty();
            let (reason, message) = if initialized {
                (None, None)
            } else {
                (
                    Some("ContainersNotInitialized"),
                    Some(format!(
                        "containers with incomplete status: [{}]",
                        pending_init.join(" ")
                    )),
                )
            };
            conditions.push(self.condition("Initialized", initialized, reason, message));
            let unready: Vec<&str> = self
                .main
                .iter()
                .filter(|c| !c.running())
                .map(|c| c.name.as_str())
                .collect();
            let ready = unready.is_empty() && !done;
            let (reason, message) = match (ready, done) {
                (true, _) => (None, None),
                (false, true) => (Some("PodCompleted"), None),
                (false, false) => (
                    Some("ContainersNotReady"),
                    Some(format!(
                        "containers with unready status: [{}]",
                        unready.join(" ")
                    )),
                ),
            };
            conditions.push(self.condition("Ready", ready, reason, message.clone()));
            conditions.push(self.condition("ContainersReady", ready, reason, message));
            conditions.push(self.condition("PodScheduled", true, None, None));
        } else if let Some(message) = self.unschedulable.clone() {
            conditions.push(self.condition(
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(message),
            ));
        }
        // The kubelet's eviction manager marks the pods it evicts (Kubernetes 1.26+,
        // `PodDisruptionConditions`): `DisruptionTarget`, reason `TerminationByKubelet`.
        if let Some(failure) = self.failure.clone().filter(|f| f.reason == "Evicted") {
            conditions.push(self.condition(
                "DisruptionTarget",
                true,
                Some("TerminationByKubelet"),
                Some(failure.message),
            ));
        }
        status.insert("conditions".into(), Value::Array(conditions));
        if let Some(ip) = &self.host_ip {
            status.insert("hostIP".into(), json!(ip));
            status.insert("hostIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(ip) = &self.pod_ip {
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(start) = &self.start_time {
            status.insert("startTime".into(), json!(start));
        }
        if self.scheduled {
            let mut init: Vec<&ContainerRuntime> = self.init.iter().collect();
            init.sort_by(|a, b| a.name.cmp(&b.name));
            if !init.is_empty() {
                status.insert(
                    "initContainerStatuses".into(),
                    Value::Array(init.iter().map(|c| c.to_json()).collect()),
                );
            }
            let mut main: Vec<&ContainerRuntime> = self.main.iter().collect();
            main.sort_by(|a, b| a.name.cmp(&b.name));
            status.insert(
                "containerStatuses".into(),
                Value::Array(main.iter().map(|c| c.to_json()).collect()),
            );
        }
        if let Some(failure) = &self.failure {
            status.insert("reason".into(), json!(failure.reason));
            status.insert("message".into(), json!(failure.message));
        }
        if let Some(qos) = previous.and_then(|p| p.get("qosClass")) {
            status.insert("qosClass".into(), qos.clone());
        }
        Value::Object(status)
    }

    /// A condition whose `lastTransitionTime` moves only when its status does.
    fn condition(
        &mut self,
        kind: &'static str,
        status: bool,
        reason: Option<&str>,
        message: Option<String>,
    ) -> Value {
        let value = if status { "True" } else { "False" };
        let entry = self
            .transitions
            .entry(kind)
            .or_insert_with(|| (value.to_owned(), time::now()));
        if entry.0 != value {
            *entry = (value.to_owned(), time::now());
        }
        let mut condition = json!({"type": kind, "status": value, "lastProbeTime": null, "lastTransitionTime": entry.1});
        if let Some(reason) = reason {
            condition["reason"] = json!(reason);
        }
        if let Some(message) = message {
            condition["message"] = json!(message);
        }
        condition
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{PodRuntime, State};

    fn runtime(policy: &str) -> PodRuntime {
        let spec = json!({"restartPolicy": policy, "containers": [{"name": "build", "image": "a"}, {"name": "helper", "image": "b"}]});
        let mut pod = PodRuntime::new(&spec);
        pod.scheduled = true;
        pod
    }

    fn exited(code: i64) -> State {
        State::Terminated {
            exit_code: code,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let mut pod = runtime("Never");
        assert_eq!(pod.phase(), "Pending");
        pod.main[0].state = State::Running {
            started_at: "t".into(),
        };
        assert_eq!(pod.phase(), "Pending", "one container still waiting");
        pod.main[1].state = State::Running {
            started_at: "t".into(),
        };
        assert_eq!(pod.phase(), "Running");
        pod.main[0].state = exited(1);
        assert_eq!(pod.phase(), "Running", "helper still runs");
        pod.main[1].state = exited(0);
        assert_eq!(pod.phase(), "Failed");
        pod.main[0].state = exited(0);
        assert_eq!(pod.phase(), "Succeeded");
    }

    #[test]
    fn statuses_are_sorted_and_conditions_explain() {
        let mut pod = runtime("Never");
        pod.main.reverse();
        pod.main[0].state = State::Running {
            started_at: "t".into(),
        };
        let status = pod.render(Some(&json!({"qosClass": "BestEffort"})));
        assert_eq!(status["containerStatuses"][0]["name"], "build");
        assert_eq!(status["qosClass"], "BestEffort");
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "containers with unready status: [build]");
    }
}
