//! [`KubernetesExecutor`]: the [`Executor`] that runs a job in a pod and deletes everything it
//! made when the job ends.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use runnel_api::{FailureReason, Image};
use runnel_exec::registry_auth;
use runnel_exec::{ExecError, Executor, PreparedJob, ScriptEnd, StageRun, TerminalOpener, Trace};

use crate::connect;
use crate::error::{KubeError, is_not_found};
use crate::health;
use crate::metadata::project_unique_name;
use crate::names::{
    JOB_LABEL, MANAGED_LABEL, RUNNER_LABEL, glob_matches, sanitize_label, unique_name,
};
use crate::overwrites::overwrites;
use crate::pod::{Choices, PodPlan, dns_policy_error, pod};
use crate::policy::{self, PullManager, RunAs};
use crate::remote::PodRef;
use crate::settings::KubeSettings;
use crate::stage;
use crate::terminal::KubeTerminal;
use crate::watch::wait_for_running;

/// The builds directory in the pod (gitlab-runner's default `builds_dir` of the Kubernetes
/// executor): the scripts see `CI_PROJECT_DIR=/builds/<group>/<project>`.
pub(crate) const REMOTE_BUILDS_DIR: &str = "/builds";

/// How long deleting what a job created may take at most.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a job in a pod of its image with its services, through the Kubernetes API.
#[derive(Debug)]
pub struct KubernetesExecutor {
    settings: KubeSettings,
    /// How long a canceled script gets between SIGTERM and SIGKILL.
    kill_grace: Duration,
    running: Option<Running>,
}

/// The namespaced APIs a job's objects are made with.
struct Apis {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    /// The API server, for errors.
    host: String,
    namespace: String,
}

/// What one job created.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) pod: PodRef,
    pub(crate) secrets: Api<Secret>,
    pub(crate) created_pod: bool,
    pub(crate) created_secrets: Vec<String>,
    pub(crate) legacy_exec: bool,
    pub(crate) grace: Option<i64>,
    pub(crate) poll_interval: Duration,
    /// A stage's output ends with this marker and its exit code (attach strategy).
    pub(crate) marker: String,
    /// Owner of copied files in the pod (the build container's user, when set).
    pub(crate) owner: Option<String>,
    /// The fingerprint of this host's directories when the pod's copy was last equal to them.
    pub(crate) synced: Option<u64>,
}

impl KubernetesExecutor {
    /// A Kubernetes executor with `settings`; the API server is contacted in `prepare`.
    pub fn new(settings: KubeSettings, kill_grace: Duration) -> Self {
        Self {
            settings,
            kill_grace,
            running: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    async fn prepare_job(&mut self, job: &PreparedJob, trace: &mut Trace) -> Result<(), KubeError> {
        // A copy: each try of the pod below borrows `self` mutably.
        let settings = &self.settings.clone();
        let mut notes = Vec::new();
        let overwrites =
            overwrites(settings, &job.variables, &mut notes).map_err(|err| KubeError::Job {
                reason: FailureReason::RunnerSystemFailure,
                message: format!("couldn't prepare overwrites: {err}"),
            })?;
        for note in notes {
            trace.println(&note);
        }
        let image = job_image(job, settings)?;
        let services = services(job, settings)?;
        let mut pulls = PullManager::default();
        pulls.add(
            &image,
            policy::pull_policies(job.payload.image.as_ref(), &image, settings)?,
        );
        for service in &services {
            let policies = policy::pull_policies(Some(service), &service.name, settings)?;
            pulls.add(&service.name, policies);
        }
        pulls.add(
            settings.helper_image(),
            policy::helper_pull_policies(settings),
        );
        let mut warnings = Vec::new();
        let build_user = policy::run_as(job.payload.image.as_ref(), settings, &mut warnings);
        let service_users: Vec<_> = services
            .iter()
            .map(|service| policy::run_as(Some(service), settings, &mut warnings))
            .collect();
        let legacy_exec = job
            .variables
            .bool("FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY");
        let config =
            connect::client_config(&settings.connection, overwrites.bearer_token.as_deref())
                .await?;
        let default_namespace = config.default_namespace.clone();
        let (client, host) = connect::client(config)?;
        let namespace = overwrites
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default_namespace);
        trace.println(&format!("Using Kubernetes namespace: {namespace}"));
        trace.println(&format!("Using Kubernetes executor with image {image} ..."));
        if legacy_exec {
            trace.println(
                "Using legacy execution strategy (FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY)",
            );
        } else {
            trace.println("Using attach strategy to execute scripts...");
        }
        if let Some(warning) = dns_policy_error(settings.dns_policy.as_deref()) {
            trace.warning(&warning);
        }
        for warning in warnings {
            trace.warning(&warning);
        }
        let apis = Apis {
            pods: Api::namespaced(client.clone(), &namespace),
            secrets: Api::namespaced(client, &namespace),
            host,
            namespace,
        };
        // gitlab-runner `Run`: while an image that failed to pull has another pull policy
        // left, the pod and what was made for it are deleted and made again.
        for attempt in 1.. {
            let build = Choices {
                pull_policy: pulls.current(&image),
                run_as: build_user,
            };
            let service_choices = services
                .iter()
                .zip(&service_users)
                .map(|(service, run_as)| Choices {
                    pull_policy: pulls.current(&service.name),
                    run_as: *run_as,
                })
                .collect();
            let plan = PodPlan {
                settings,
                overwrites: &overwrites,
                job,
                name: unique_name(&project_unique_name(job)),
                namespace: apis.namespace.clone(),
                image: image.clone(),
                services: services.clone(),
                credentials_secret: None,
                legacy_exec,
                helper_pull_policy: pulls.current(settings.helper_image()),
                build,
                service_choices,
            };
            match self.start_pod(plan, &apis, trace).await {
                Err(KubeError::ImagePull {
                    image: failed,
                    message,
                    ..
                }) if pulls.failed(&failed, &message, attempt, trace) => {
                    if let Some(running) = self.running.take() {
                        delete(running).await;
                    }
                }
                result => return result,
            }
        }
        unreachable!("the loop over attempts returns")
    }

    /// Makes the pod of `plan` (and its registry secret) and waits until it runs with its
    /// services up. What it made is in `self.running` from the first object on, for `cleanup`.
    async fn start_pod(
        &mut self,
        mut plan: PodPlan<'_>,
        apis: &Apis,
        trace: &mut Trace,
    ) -> Result<(), KubeError> {
        let (settings, job, name) = (plan.settings, plan.job, plan.name.clone());
        let namespace = &apis.namespace;
        self.running = Some(Running {
            pod: PodRef {
                api: apis.pods.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                host: apis.host.clone(),
            },
            secrets: apis.secrets.clone(),
            created_pod: false,
            created_secrets: Vec::new(),
            legacy_exec: plan.legacy_exec,
            grace: settings.cleanup_grace_period_seconds,
            poll_interval: settings.poll_interval,
            marker: format!("runnel-stage-end-{}", unique_name("m")),
            owner: build_owner(settings, plan.build.run_as),
            synced: None,
        });
        let secret_name = format!("{name}-registry");
        if let Some(secret) = credentials_secret(job, settings, &secret_name, trace)? {
            apis.secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(|source| KubeError::Api {
                    action: format!("create secret `{secret_name}` in namespace `{namespace}`"),
                    host: apis.host.clone(),
                    source,
                })?;
            if let Some(running) = self.running.as_mut() {
                running.created_secrets.push(secret_name.clone());
            }
            plan.credentials_secret = Some(secret_name);
        }
        let spec = pod(&plan);
        let created = apis
            .pods
            .create(&PostParams::default(), &spec)
            .await
            .map_err(|source| KubeError::Api {
                action: format!("create pod `{name}` in namespace `{namespace}`"),
                host: apis.host.clone(),
                source,
            })?;
        if let Some(running) = self.running.as_mut() {
            running.created_pod = true;
        }
        self.own_secrets(&created).await;
        let running = self.running.as_ref().ok_or(KubeError::NotPrepared)?;
        wait_for_running(&running.pod, namespace, settings, trace).await?;
        health::wait_for_services(running, &plan.services, &job.variables, trace).await?;
        Ok(())
    }

    /// Makes the pod the owner of the secrets made for it, so deleting the pod deletes them
    /// (gitlab-runner `setOwnerReferencesForResources`). A failure only costs that safety net.
    async fn own_secrets(&self, created: &Pod) {
        let (Some(running), Some(uid)) = (&self.running, created.metadata.uid.as_ref()) else {
            return;
        };
        let owner = OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: running.pod.name.clone(),
            uid: uid.clone(),
            controller: None,
            block_owner_deletion: None,
        };
        let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
        for name in &running.created_secrets {
            if let Err(err) = running
                .secrets
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(secret = %name, error = %err, "cannot set the owner of a secret");
            }
        }
    }
}

/// The build container's user (`uid:gid`) from the security contexts and the job's
/// `image:kubernetes:user`, for copied files.
fn build_owner(settings: &KubeSettings, run_as: Option<RunAs>) -> Option<String> {
    let context = &settings.build_container_security_context;
    let pod = &settings.pod_security_context;
    let uid = context
        .run_as_user
        .or(run_as.map(|r| r.uid))
        .or(pod.run_as_user)?;
    let gid = context
        .run_as_group
        .or(run_as.and_then(|r| r.gid))
        .or(pod.run_as_group)
        .unwrap_or(uid);
    Some(format!("{uid}:{gid}"))
}

/// The job's image (expanded) or the runner's `image`, checked against `allowed_images`.
fn job_image(job: &PreparedJob, settings: &KubeSettings) -> Result<String, KubeError> {
    let named = job
        .payload
        .image
        .as_ref()
        .map(|image| job.variables.expand(&image.name))
        .filter(|name| !name.trim().is_empty());
    match named {
        Some(name) => {
            let internal = settings.image.as_deref().map(|i| job.variables.expand(i));
            allowed(
                &name,
                "images",
                &settings.allowed_images,
                internal.as_deref(),
            )?;
            Ok(name)
        }
        None => settings
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| KubeError::Job {
                reason: FailureReason::RunnerSystemFailure,
                message: "no image specified to run the job in: set `image:` in the job or \
                          `image` in `[runners.kubernetes]`"
                    .to_owned(),
            }),
    }
}

/// gitlab-runner `VerifyAllowedImage`.
fn allowed(
    image: &str,
    option: &str,
    patterns: &[String],
    internal: Option<&str>,
) -> Result<(), KubeError> {
    if patterns.is_empty()
        || internal == Some(image)
        || patterns.iter().any(|p| glob_matches(p, image))
    {
        return Ok(());
    }
    Err(KubeError::Job {
        reason: FailureReason::RunnerSystemFailure,
        message: format!(
            "the {image:?} image is not present on list of allowed {option}: {}",
            patterns.join(", ")
        ),
    })
}

/// The runner's services, then the job's, names expanded and checked against
/// `allowed_services`.
fn services(job: &PreparedJob, settings: &KubeSettings) -> Result<Vec<Image>, KubeError> {
    let mut services = Vec::new();
    for service in &settings.services {
        let mut service = service.clone();
        service.name = job.variables.expand(&service.name);
        services.push(service);
    }
    for service in &job.payload.services {
        let mut service = service.clone();
        service.name = job.variables.expand(&service.name);
        allowed(&service.name, "services", &settings.allowed_services, None)?;
        services.push(service);
    }
    Ok(services)
}

/// A `kubernetes.io/dockercfg` secret with every registry's credentials the job has
/// (`DOCKER_AUTH_CONFIG`, the runner user's Docker config, the payload's `credentials`), or
/// `None` when it has none. GitLab: gitlab-runner `executors/kubernetes` `setupCredentials`
/// (the `.dockercfg` document maps each registry to Docker's `AuthConfig`).
fn credentials_secret(
    job: &PreparedJob,
    settings: &KubeSettings,
    name: &str,
    trace: &mut Trace,
) -> Result<Option<Secret>, KubeError> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let resolved = registry_auth::resolve(
        job.variables.get("DOCKER_AUTH_CONFIG"),
        home.as_deref(),
        &job.payload.credentials,
    )
    .map_err(|message| KubeError::Job {
        reason: FailureReason::RunnerSystemFailure,
        message: format!("couldn't resolve the registry credentials: {message}"),
    })?;
    for skipped in &resolved.skipped {
        trace.warning(&format!("Registry credentials skipped: {skipped}"));
    }
    let auths = resolved.auths;
    if auths.is_empty() {
        return Ok(None);
    }
    let document: std::collections::BTreeMap<&str, &registry_auth::AuthConfig> = auths
        .iter()
        .map(|(registry, info)| (registry.as_str(), &info.auth))
        .collect();
    let config = serde_json::to_vec(&document).map_err(|err| KubeError::Job {
        reason: FailureReason::RunnerSystemFailure,
        message: format!("couldn't encode the registry credentials: {err}"),
    })?;
    Ok(Some(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                [
                    (MANAGED_LABEL.to_owned(), "true".to_owned()),
                    (
                        RUNNER_LABEL.to_owned(),
                        sanitize_label(&settings.runner_short_token),
                    ),
                    (JOB_LABEL.to_owned(), job.payload.id.0.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockercfg".to_owned()),
        data: Some([(".dockercfg".to_owned(), ByteString(config))].into()),
        ..Secret::default()
    }))
}

impl Executor for KubernetesExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn prepare<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> runnel_exec::BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { self.prepare_job(job, trace).await.map_err(ExecError::from) })
    }

    /// The pod's name, its containers' host name.
    fn environment_host(&self, _job: &PreparedJob) -> Option<String> {
        self.running
            .as_ref()
            .map(|running| running.pod.name.clone())
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> runnel_exec::BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        let grace = self.kill_grace;
        Box::pin(async move {
            let running = self.running.as_mut().ok_or(KubeError::NotPrepared)?;
            // The pod has a copy of the project and temporary directories: send this host's
            // when runnel changed them since the copies were last equal, bring the pod's back
            // after the stage (see the crate's documentation).
            let now = stage::fingerprint(job).await;
            if running.synced.as_ref() != Some(&now) {
                stage::push(running, job).await?;
            }
            let end = stage::run_stage(running, job, stage, trace, grace).await?;
            stage::pull(running, job).await?;
            running.synced = Some(stage::fingerprint(job).await);
            Ok(end)
        })
    }

    fn terminal(&self, job: &PreparedJob) -> Option<Arc<dyn TerminalOpener>> {
        let running = self.running.as_ref()?;
        // The pod's environment lacks the variables that name the job's directories (see
        // `containers::build_container`); after the move to the pod they name its paths.
        let pod_builds = job.script_dirs.builds_dir.to_string_lossy().into_owned();
        let exports = job
            .variables
            .iter()
            .filter(|v| (v.public || v.internal) && !v.file && v.value.starts_with(&pod_builds))
            .map(|v| format!("export {}={}\n", v.key, crate::remote::quote(&v.value)))
            .collect();
        Some(Arc::new(KubeTerminal {
            pod: running.pod.clone(),
            project_dir: job.script_dirs.project_dir.to_string_lossy().into_owned(),
            exports,
            opened: AtomicU64::new(0),
        }))
    }

    fn remote_builds_dir(&self) -> Option<std::path::PathBuf> {
        Some(std::path::PathBuf::from(REMOTE_BUILDS_DIR))
    }

    fn cleanup<'a>(&'a mut self, _job: &'a PreparedJob) -> runnel_exec::BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(running) = self.running.take() {
                let _ = tokio::time::timeout(CLEANUP_TIMEOUT, delete(running)).await;
            }
        })
    }
}

impl Drop for KubernetesExecutor {
    /// A job future dropped before `cleanup` (a runner stopped mid-job) still deletes what it
    /// made, on the runtime if one is running.
    fn drop(&mut self) {
        if let (Some(running), Ok(runtime)) =
            (self.running.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLEANUP_TIMEOUT, delete(running)).await;
            });
        }
    }
}

/// Deletes the pod (with `cleanup_grace_period_seconds`) and the secrets made for it; what is
/// already gone is fine.
async fn delete(running: Running) {
    let mut params = DeleteParams::background();
    if let Some(grace) = running.grace.and_then(|g| u32::try_from(g).ok()) {
        params = params.grace_period(grace);
    }
    if running.created_pod
        && let Err(err) = running.pod.api.delete(&running.pod.name, &params).await
        && !is_not_found(&err)
    {
        tracing::warn!(pod = %running.pod.name, error = %err, "cannot delete the job's pod");
    }
    for name in &running.created_secrets {
        if let Err(err) = running
            .secrets
            .delete(name, &DeleteParams::background())
            .await
            && !is_not_found(&err)
        {
            tracing::warn!(secret = %name, error = %err, "cannot delete the job's secret");
        }
    }
}

/// Deletes the pods and secrets that runner `short_token` left in `namespace` (label
/// `runnel.dev/runner`), e.g. when the daemon was killed; returns how many were deleted. Call
/// it only when none of that runner's jobs is running.
pub async fn remove_leftovers(
    client: Client,
    namespace: &str,
    short_token: &str,
) -> Result<usize, kube::Error> {
    let selector = format!(
        "{MANAGED_LABEL}=true,{RUNNER_LABEL}={}",
        sanitize_label(short_token)
    );
    let params = kube::api::ListParams::default().labels(&selector);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let mut removed = 0;
    for pod in pods.list(&params).await? {
        if let Some(name) = pod.metadata.name {
            match pods.delete(&name, &DeleteParams::background()).await {
                Ok(_) => removed += 1,
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err),
            }
        }
    }
    for secret in secrets.list(&params).await? {
        if let Some(name) = secret.metadata.name {
            match secrets.delete(&name, &DeleteParams::background()).await {
                Ok(_) => removed += 1,
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(removed)
}
