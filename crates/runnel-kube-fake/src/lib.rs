//! A fake Kubernetes API server for tests: no cluster can run on runnel's CI machines (no
//! kube-apiserver, kubelet or container runtime can be installed there), so the Kubernetes
//! executor is tested against this stand-in. It is strict like the real API server and runs
//! real work: every pod's containers run on the Docker engine.
//!
//! # What it serves
//!
//! core/v1 only, on `127.0.0.1`, over plain HTTP or (with [`FakeOptions::tls`]) HTTPS with a
//! certificate authority of its own, bearer tokens or client certificates:
//! - `pods` (create, get, list and watch with `labelSelector`/`fieldSelector`, replace,
//!   merge patch, delete with `gracePeriodSeconds`/`propagationPolicy`/preconditions,
//!   delete-collection, `status`), `pods/log` (`follow`, `container`, `timestamps`,
//!   `tailLines`, `sinceSeconds`, `limitBytes`), `pods/exec` and `pods/attach` over
//!   WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `channel.k8s.io`);
//! - `pods/eviction` (`policy/v1` `Eviction`: a graceful delete);
//! - `secrets`, `configmaps`, `services`, `serviceaccounts`, `persistentvolumeclaims`,
//!   `events` and `namespaces` with the same verbs (events are also posted by the fake's
//!   scheduler and kubelet: `Scheduled`, `FailedScheduling`, `Pulled`, `Pulling`, `Failed`,
//!   `BackOff`, `Created`, `Started`, `Killing`, `FailedMount`, `Evicted`);
//! - `/version`, `/api`, `/api/v1`, `/healthz`, `/readyz`, `/livez`.
//!
//! # How strict
//!
//! Every body is decoded into its `k8s-openapi` type and written back; a field that does not
//! survive is an unknown field and the request fails with 400 as `fieldValidation=Strict`
//! does (the fake's default; `fieldValidation=Warn|Ignore` drop them). Objects are then
//! defaulted as the API server does (pull policy, restart policy, tolerations, service
//! account, `stringData`, …) and validated with the real messages (`metav1.Status`, reason
//! `Invalid`, 422, one cause per field): DNS-1123 names of pods, containers, volumes, ports;
//! label and annotation syntax; volume mounts naming existing volumes; duplicate container
//! names; resources (quantities, requests ≤ limits); enumerations; host aliases;
//! tolerations; security contexts; secrets of type `dockerconfigjson`. Errors carry the real
//! reasons and codes: 404 NotFound, 409 AlreadyExists/Conflict, 401 Unauthorized (bearer
//! token), 403 Forbidden (RBAC wording for forbidden namespaces; the ServiceAccount
//! admission for a missing service account), 410 Expired for stale watches.
//!
//! # How pods run
//!
//! A pod is scheduled on the one node (`nodeSelector`, required node affinity, taints,
//! claims), then its containers become Docker containers sharing the network and IPC
//! namespaces of a sandbox container (`runnel-test/busybox:latest`), so they reach each other
//! on `localhost` and by `hostAliases` names (`/etc/hosts`). `emptyDir` and claims are Docker
//! volumes, `hostPath` a bind mount, `configMap`/`secret`/`projected`/`downwardAPI` files
//! written into volumes. Env (`valueFrom`, `envFrom`, `$(VAR)`), command/args, workingDir,
//! stdin/stdinOnce/tty, resources (memory, cpu) and the security context (user, privileged,
//! capabilities, read-only root, no-new-privileges, groups, `runAsNonRoot`) are applied.
//! Phases and statuses move as on a cluster; an image missing from the engine gives
//! `ErrImagePull` then `ImagePullBackOff` (the fake never pulls). Deleting a pod stops its
//! containers with the grace period before the object goes; the garbage collector then
//! deletes objects whose `ownerReferences` all point at deleted owners.
//!
//! # Using it in a test
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use runnel_kube_fake::{FakeCluster, FakeOptions, Fault, Kind};
//! let cluster = FakeCluster::start(FakeOptions::default().namespace("ci")).await?;
//! cluster.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"), "fake", "ci")?;
//! // … run the executor against cluster.url() with cluster.token() …
//! let created = cluster.requests().into_iter().find(|r| r.method == "POST" && r.path.ends_with("/pods"));
//! let pods = cluster.objects(Kind::Pod, Some("ci"));
//! cluster.set_fault(Fault::Unreachable).await;
//! let (containers, volumes) = cluster.docker_leftovers().await;
//! cluster.shutdown().await;
//! # let _ = (created, pods, containers, volumes); Ok(()) }
//! ```
//!
//! Every Docker object carries the label [`LABEL_INSTANCE`] with the cluster's
//! [`FakeCluster::instance_id`]; a pod's objects go when it is deleted (the API answers
//! first, as on a cluster: [`FakeCluster::settle`] waits for the kubelet's cleanup, and
//! [`FakeCluster::docker_leftovers`] settles before it looks), all of them at
//! [`FakeCluster::shutdown`] or when the cluster is dropped, and those of fake clusters whose
//! process died are removed when the next one starts.
//!
//! # What it does not do
//!
//! No other API groups, no server-side apply or JSON patch (415), no probes, no
//! lifecycle hooks, no termination messages, no service account token volume, no detection of unknown fields whose value is `null`, no service routing (services get a cluster IP
//! but no traffic), no image pulls, no `previous` logs after a restart (a restarted container
//! keeps its log), no `base64.channel.k8s.io`, no port-forward.

mod cluster;
mod defaults;
mod events;
mod kind;
mod kubelet;
mod ops;
mod options;
mod selector;
mod server;
mod shared;
mod status;
mod store;
mod time;
mod tls;
mod validate;

pub use cluster::{FakeCluster, FakeError};
pub use kind::Kind;
pub use kubelet::LABEL_INSTANCE;
pub use options::{DEFAULT_PAUSE_IMAGE, FakeOptions, Fault, NODE_NAME};
pub use shared::RecordedRequest;
pub use status::{ApiError, FieldError, FieldErrorKind};
pub use tls::TlsError;
pub use validate::FieldValidation;
