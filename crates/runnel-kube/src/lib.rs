//! The Kubernetes executor: each job runs in a pod, through the Kubernetes API (kube-rs).
//!
//! GitLab: gitlab-runner `executors/kubernetes` and `docs/executors/kubernetes`. The pod is
//! gitlab-runner's: containers `build` (the job's image), `helper` and `svc-0…N` (services,
//! reachable by their aliases through the pod's host aliases on 127.0.0.1), an `emptyDir` for
//! the builds directory and one for the stage scripts, gitlab-runner's labels and annotations,
//! resources after the job's `KUBERNETES_*` overwrites capped by `*_overwrite_max_allowed`,
//! security contexts, the configured volumes, pull secrets, node selector and tolerations.
//! Stages run with the attach strategy by default and with the exec strategy behind
//! `FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY` (see [`stage`]).
//!
//! # One execution path, on a real cluster
//!
//! The pod may run on any node, so nothing may rely on the runner's host directories being
//! visible in it. runnel still does every helper stage (`get_sources`, `restore_cache`,
//! `download_artifacts`, `archive_cache`, `upload_artifacts_*`) on the runner's host with the
//! same code the shell and Docker executors use (`runnel-exec`), and the pod gets a *copy*:
//!
//! 1. before the first script, and again after runnel changed them (sources, caches,
//!    artifacts, file variables), the project directory and its `.tmp` sibling are streamed
//!    into the pod as a tar archive over `pods/exec` to `runnel helper unpack` in the helper
//!    container, which writes them into the shared builds volume at the same path;
//! 2. after the scripts (`step_*`, `after_script`) and before caches and artifacts are
//!    archived, `runnel helper pack` streams the directories back the same way.
//!
//! This is how `kubectl cp` works, and it only needs what gitlab-runner's executor needs:
//! `pods/exec` and `pods/attach` on the API server. The copies are driven by
//! `runnel_exec`'s [`Executor::push_dirs`](runnel_exec::Executor::push_dirs) and
//! [`pull_dirs`](runnel_exec::Executor::pull_dirs), so no build stage has a Kubernetes
//! variant. The cost is moving the project directory twice per job instead of cloning inside
//! the pod; the gain is one implementation of sources, caches (local or S3), artifacts and
//! `runnel exec`'s working-tree sources, and a helper image that is the runnel binary alone
//! (`scripts/kube-helper-image.sh`).
//!
//! Cleanup: the pod and its secrets are deleted after the job (also after a cancel or a
//! timeout), when the job's future is dropped (daemon shutdown), and by
//! [`remove_leftovers`] on daemon start (label `runnel.dev/runner=<short token>`); secrets
//! carry the pod as owner reference, so deleting the pod deletes them too.
#![warn(missing_docs)]

mod connect;
mod containers;
mod error;
mod executor;
mod health;
pub mod helper;
mod metadata;
mod names;
mod overwrites;
mod pod;
mod policy;
pub mod quantity;
mod remote;
mod security;
mod settings;
mod stage;
mod terminal;
pub mod transfer;
mod volumes;
mod watch;

pub use connect::{ConnectError, client, client_config};
pub use error::KubeError;
pub use executor::{KubernetesExecutor, remove_leftovers};
pub use names::{JOB_LABEL, MANAGED_LABEL, RUNNER_LABEL};
pub use overwrites::{OverwriteError, Overwrites, overwrites};
pub use settings::{
    Capabilities, Connection, ContainerResources, ContainerSecurityContext, DEFAULT_HELPER_IMAGE,
    DEFAULT_POLL_INTERVAL, DEFAULT_POLL_TIMEOUT, EmptyDirVolume, HostAlias, HostPathVolume,
    KeyedVolume, KubeSettings, PodSecurityContext, PvcVolume, Quantities, Volumes,
};
