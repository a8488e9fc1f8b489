//! Starting one container of a pod: the Docker container's plan (image, command, env,
//! mounts, security context), its creation and start, and what a failure means for the
//! container's state (`ErrImagePull`/`ImagePullBackOff`, `CreateContainerConfigError`,
//! `CreateContainerError`, `runAsNonRoot` violations).

use bollard::Docker;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use serde_json::{Value, json};

use super::container::{self, PodContext};
use super::node::Labels;
use super::pod::{Group, PodTask};
use super::status::State;
use crate::events::{Severity, Source};
use crate::time;

/// What became of an attempt to start a container.
pub(super) enum Started {
    Running(String),
    Exited(State),
    Waiting(State),
}

/// A container ready for its Docker calls.
struct Plan {
    group: Group,
    index: usize,
    name: String,
    docker_name: String,
    /// The container of an earlier start (a restart starts it again).
    existing: Option<String>,
    body: bollard::models::ContainerCreateBody,
}

/// What the Docker calls did.
enum Launched {
    CreateFailed(String),
    StartFailed {
        id: String,
        created: bool,
        error: String,
    },
    Running {
        id: String,
        created: bool,
        started_at: String,
    },
}

/// Creates (unless it exists) and starts a container.
async fn launch(
    docker: Docker,
    docker_name: String,
    existing: Option<String>,
    body: bollard::models::ContainerCreateBody,
) -> Launched {
    let (id, created) = match existing {
        Some(id) => (id, false),
        None => {
            let remove = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&docker_name, Some(remove)).await;
            let options = CreateContainerOptionsBuilder::default()
                .name(&docker_name)
                .build();
            match docker.create_container(Some(options), body).await {
                Ok(response) => (response.id, true),
                Err(error) => return Launched::CreateFailed(error.to_string()),
            }
        }
    };
    if let Err(error) = docker.start_container(&id, None).await {
        return Launched::StartFailed {
            id,
            created,
            error: error.to_string(),
        };
    }
    let started_at = docker
        .inspect_container(&id, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.started_at)
        .and_then(|s| time::from_docker(&s))
        .unwrap_or_else(time::now);
    Launched::Running {
        id,
        created,
        started_at,
    }
}

impl PodTask {
    /// One attempt to create and start a container (or to start it again after a restart).
    pub(super) async fn start(&mut self, docker: &Docker, group: Group, index: usize) -> Started {
        match self.prepare(docker, group, index).await {
            Ok(plan) => {
                let launched = launch(
                    docker.clone(),
                    plan.docker_name.clone(),
                    plan.existing.clone(),
                    plan.body.clone(),
                )
                .await;
                self.finish(&plan, launched)
            }
            Err(started) => started,
        }
    }

    /// Starts several containers at once (the Docker calls run concurrently; a pod's
    /// containers come up in the time of one).
    pub(super) async fn start_many(
        &mut self,
        docker: &Docker,
        group: Group,
        indexes: &[usize],
    ) -> Vec<(usize, Started)> {
        let mut results = Vec::new();
        let mut plans = Vec::new();
        for &index in indexes {
            match self.prepare(docker, group, index).await {
                Ok(plan) => plans.push(plan),
                Err(started) => results.push((index, started)),
            }
        }
        let launches = plans.iter().map(|plan| {
            launch(
                docker.clone(),
                plan.docker_name.clone(),
                plan.existing.clone(),
                plan.body.clone(),
            )
        });
        let launched = futures_util::future::join_all(launches).await;
        for (plan, launched) in plans.iter().zip(launched) {
            results.push((plan.index, self.finish(plan, launched)));
        }
        results
    }

    /// Everything before the Docker calls: the image, `runAsNonRoot`, the environment, the
    /// container's configuration. `Err` when the container cannot start yet.
    async fn prepare(
        &mut self,
        docker: &Docker,
        group: Group,
        index: usize,
    ) -> Result<Plan, Started> {
        let container = self.spec()[group.key()][index].clone();
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let at = Some((group, name.as_str()));
        let policy = container.get("imagePullPolicy").and_then(Value::as_str);
        if policy == Some("Always") && !self.shared.options.registry_reachable {
            let error =
                "dial tcp: lookup registry: no such host (the fake's registry is unreachable)";
            let state = self.pull_failure(group, &container, &image, error);
            return Err(Started::Waiting(state));
        }
        let inspect = match docker.inspect_image(&image).await {
            Ok(inspect) => inspect,
            Err(error) => {
                let state = self.pull_failure(group, &container, &image, &error.to_string());
                return Err(Started::Waiting(state));
            }
        };
        let pulled = format!("Container image \"{image}\" already present on machine");
        self.event(Severity::Normal, Source::Kubelet, at, "Pulled", pulled);
        let image_user = inspect.config.as_ref().and_then(|c| c.user.as_deref());
        let violation = non_root_violation(self.spec(), &container, image_user, &self.labels);
        let sandbox = self
            .sandbox
            .clone()
            .expect("containers start after the sandbox");
        let env = match violation {
            Some(message) => Err(message),
            None => {
                let store = self.shared.store();
                let context = PodContext {
                    namespace: &self.labels.namespace,
                    pod: &self.pod,
                    pod_ip: &sandbox.pod_ip,
                    host_ip: &sandbox.host_ip,
                };
                container::environment(&store, &context, &container)
            }
        };
        let env = match env {
            Ok(env) => env,
            Err(message) => {
                self.event(
                    Severity::Warning,
                    Source::Kubelet,
                    at,
                    "Failed",
                    format!("Error: {message}"),
                );
                return Err(Started::Waiting(State::waiting(
                    "CreateContainerConfigError",
                    Some(message),
                )));
            }
        };
        self.container_mut(group, index).image_id = inspect.id.clone().unwrap_or_default();
        let existing = self.container_mut(group, index).container_id.clone();
        let labels = self.labels.container(&name);
        let body = container::create_body(&self.pod["spec"], &container, &env, &sandbox, labels);
        Ok(Plan {
            group,
            index,
            docker_name: self.labels.container_name(&name),
            name,
            existing,
            body,
        })
    }

    /// Records what the Docker calls did: events and the container's state.
    fn finish(&mut self, plan: &Plan, launched: Launched) -> Started {
        let (group, index, name) = (plan.group, plan.index, plan.name.as_str());
        let at = Some((group, name));
        match launched {
            Launched::CreateFailed(error) => {
                self.event(
                    Severity::Warning,
                    Source::Kubelet,
                    at,
                    "Failed",
                    format!("Error: {error}"),
                );
                Started::Waiting(State::waiting("CreateContainerError", Some(error)))
            }
            Launched::StartFailed { id, created, error } => {
                if created {
                    self.event(
                        Severity::Normal,
                        Source::Kubelet,
                        at,
                        "Created",
                        format!("Created container: {name}"),
                    );
                }
                let message = format!("Error: failed to start container \"{name}\": {error}");
                self.event(Severity::Warning, Source::Kubelet, at, "Failed", message);
                let state = State::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: Some(error),
                    started_at: None,
                    finished_at: time::now(),
                };
                let runtime = self.container_mut(group, index);
                runtime.container_id = Some(id);
                runtime.state = state.clone();
                Started::Exited(state)
            }
            Launched::Running {
                id,
                created,
                started_at,
            } => {
                if created {
                    self.event(
                        Severity::Normal,
                        Source::Kubelet,
                        at,
                        "Created",
                        format!("Created container: {name}"),
                    );
                }
                let runtime = self.container_mut(group, index);
                runtime.container_id = Some(id.clone());
                runtime.state = State::Running { started_at };
                self.event(
                    Severity::Normal,
                    Source::Kubelet,
                    at,
                    "Started",
                    format!("Started container {name}"),
                );
                Started::Running(id)
            }
        }
    }

    /// `ErrImagePull` on the first failure, `ImagePullBackOff` after (`ErrImageNeverPull` when
    /// the policy forbids pulling). The fake never pulls: the engine has no registry.
    fn pull_failure(&mut self, group: Group, container: &Value, image: &str, error: &str) -> State {
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let at = Some((group, name.as_str()));
        let policy = container
            .get("imagePullPolicy")
            .and_then(Value::as_str)
            .unwrap_or("");
        if policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.event(
                Severity::Warning,
                Source::Kubelet,
                at,
                "ErrImageNeverPull",
                message.clone(),
            );
            return State::waiting("ErrImageNeverPull", Some(message));
        }
        let attempts = self.pull_attempts.entry(image.to_owned()).or_insert(0);
        *attempts += 1;
        if *attempts == 1 {
            let message = format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": the fake cluster pulls no images and the Docker engine does not have it ({error})"
            );
            self.event(
                Severity::Normal,
                Source::Kubelet,
                at,
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
            let failed = format!("Failed to pull image \"{image}\": {message}");
            self.event(Severity::Warning, Source::Kubelet, at, "Failed", failed);
            self.event(
                Severity::Warning,
                Source::Kubelet,
                at,
                "Failed",
                "Error: ErrImagePull".to_owned(),
            );
            State::waiting("ErrImagePull", Some(message))
        } else {
            let message = format!("Back-off pulling image \"{image}\"");
            self.event(
                Severity::Normal,
                Source::Kubelet,
                at,
                "BackOff",
                message.clone(),
            );
            self.event(
                Severity::Warning,
                Source::Kubelet,
                at,
                "Failed",
                "Error: ImagePullBackOff".to_owned(),
            );
            State::waiting("ImagePullBackOff", Some(message))
        }
    }
}

/// `verifyRunAsNonRoot`: a container that must not run as root, whose image would.
fn non_root_violation(
    spec: &Value,
    container: &Value,
    image_user: Option<&str>,
    labels: &Labels,
) -> Option<String> {
    let key = |k: &str| {
        container
            .pointer(&format!("/securityContext/{k}"))
            .or_else(|| spec.pointer(&format!("/securityContext/{k}")))
            .cloned()
    };
    if key("runAsNonRoot") != Some(json!(true)) || key("runAsUser").is_some() {
        return None;
    }
    let user = image_user.unwrap_or("").split(':').next().unwrap_or("");
    let pod = format!("\"{}_{}({})\"", labels.pod, labels.namespace, labels.uid);
    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
    match user {
        "" | "root" | "0" => Some(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod}, container: {name})"
        )),
        numeric if numeric.parse::<u32>().is_ok() => None,
        other => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({other}), cannot verify user is non-root (pod: {pod}, container: {name})"
        )),
    }
}
