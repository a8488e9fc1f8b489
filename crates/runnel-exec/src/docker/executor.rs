//! [`DockerExecutor`]: the [`Executor`] that runs a job's scripts in a container of its image,
//! with its services next to it, and removes everything it made when the job ends.
//!
//! Helper work (sources, caches, artifacts) is done by runnel on the host against the build
//! directories, which the containers see at the same paths (bind mounts), so no helper image is
//! pulled and the `runnel` binary is not needed inside the container.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};

use super::config::{DEFAULT_WAIT_FOR_SERVICES_TIMEOUT, DockerConfig};
use super::container::{
    BuildContainer, Network, alternates, binds, build_dirs, create_build_container, host_config,
    run_quiet, run_stage,
};
use super::error::DockerError;
use super::image::{get_image, job_image_name, service_definitions};
use super::names::{MANAGED_LABEL, RUNNER_ID_LABEL, labels, unique_prefix};
use super::policy::{build_user, privileged_for};
use super::services::{
    Service, ServiceSetup, create_network, start_service, wait_for_services, write_logs,
};
use super::terminal::{DockerTerminal, SharedContainer};
use runnel_api::Image;

use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::script::shell_quote;
use crate::store::BoxFuture;
use crate::terminal::TerminalOpener;
use crate::trace::Trace;

/// How long giving the build directories back to `builds_owner` may take.
const OWNER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a job in a container of its image (or the runner's), with its `services:`.
#[derive(Debug)]
pub struct DockerExecutor {
    config: DockerConfig,
    docker: Option<Docker>,
    /// What this job created, removed by `cleanup`.
    created: Created,
    /// The job container to create at the first `run` (after the sources are in place, so
    /// the directories they borrow are known).
    spec: Option<BuildContainer>,
    /// The borrowed object directories the current job container mounts.
    mounted_alternates: Vec<PathBuf>,
    /// The job container, as the web terminal sees it.
    terminal_container: SharedContainer,
}

#[derive(Debug, Default)]
struct Created {
    build: Option<String>,
    services: Vec<Service>,
    network: Option<String>,
}

impl DockerExecutor {
    /// A Docker executor with `config`. The engine is contacted in `prepare`.
    pub fn new(config: DockerConfig) -> Self {
        Self {
            config,
            docker: None,
            created: Created::default(),
            spec: None,
            mounted_alternates: Vec::new(),
            terminal_container: SharedContainer::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    async fn prepare_job(
        &mut self,
        job: &PreparedJob,
        trace: &mut Trace,
    ) -> Result<(), DockerError> {
        let docker = connect(&self.config).await?;
        self.docker = Some(docker.clone());
        let config = &self.config;
        let image_name = job_image_name(job, config, trace)?;
        trace.println(&format!(
            "Using Docker executor with image {image_name} ..."
        ));
        // Every policy is checked before anything is pulled or started.
        let services = service_definitions(job, config, trace)?;
        let job_image = job.payload.image.as_ref();
        // GitLab: `getBuildContainerUser` expands the job's user with the job's variables.
        let job_user = job_image
            .and_then(|i| i.executor_opts.as_ref())
            .and_then(|o| o.docker.as_ref())
            .and_then(|d| d.user.as_deref())
            .map(|user| job.variables.expand(user));
        let user = build_user(
            config.user.as_deref(),
            job_user.as_deref(),
            &config.allowed_users,
        )
        .map_err(|refused| refused.report(trace))?;
        // The job's image first (as gitlab-runner does): a missing one fails before any
        // service starts.
        let image = get_image(&docker, &image_name, job_image, job, config, trace).await?;
        let prefix = unique_prefix(job.payload.id.0);
        let binds = binds(job, config, trace)?;
        let mut network = match (&config.network_mode, services.is_empty()) {
            (Some(mode), _) => Network::Mode {
                mode: mode.clone(),
                links: Vec::new(),
            },
            (None, true) => Network::Default,
            (None, false) => {
                let name = format!("{prefix}-network");
                create_network(&docker, &name, job).await?;
                self.created.network = Some(name.clone());
                Network::PerJob(name)
            }
        };
        self.start_services(
            &docker,
            job,
            &services,
            &prefix,
            &binds,
            &mut network,
            trace,
        )
        .await?;
        let config = &self.config;
        let mut host_config = host_config(config, binds, &network)?;
        // gitlab-runner `createContainer`: `privileged` only for allowed images. gitlab-runner
        // matches the name the job wrote; runnel matches the image that runs (expanded, or the
        // runner's `image`), so `image: $IMAGE` cannot slip past the list.
        host_config.privileged = Some(privileged_for(
            config.privileged,
            &image_name,
            &config.allowed_privileged_images,
        ));
        self.spec = Some(BuildContainer {
            name: format!("{prefix}-build"),
            image_id: image.id.clone().unwrap_or_else(|| image_name.clone()),
            entrypoint: job_image
                .map(|i| i.entrypoint.clone())
                .filter(|e| !e.is_empty()),
            user,
            hostname: hostname(config, job),
            working_dir: job.project_dir.to_string_lossy().into_owned(),
            labels: labels(job, "build", &[]),
            host_config,
            network,
        });
        Ok(())
    }

    /// Starts `services` (the runner's and the job's), waits for them, and gives the job
    /// container links to them on the default bridge (gitlab-runner's legacy mode).
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the parts of one job"
    )]
    async fn start_services(
        &mut self,
        docker: &Docker,
        job: &PreparedJob,
        services: &[Image],
        prefix: &str,
        binds: &[String],
        network: &mut Network,
        trace: &mut Trace,
    ) -> Result<(), DockerError> {
        if services.is_empty() {
            return Ok(());
        }
        let config = &self.config;
        let setup = ServiceSetup {
            config,
            prefix,
            network: match &*network {
                Network::PerJob(name) => Some(name.as_str()),
                Network::Mode { mode, .. } if is_user_network(mode) => Some(mode.as_str()),
                _ => None,
            },
            host_config: host_config(config, binds.to_vec(), network)?,
        };
        for (index, service) in services.iter().enumerate() {
            start_service(
                docker,
                job,
                &setup,
                index,
                service,
                trace,
                &mut self.created.services,
            )
            .await?;
        }
        let timeout = config
            .wait_for_services_timeout
            .unwrap_or(DEFAULT_WAIT_FOR_SERVICES_TIMEOUT);
        wait_for_services(
            docker,
            &self.created.services,
            setup.network,
            timeout,
            trace,
        )
        .await;
        if let Network::Mode { mode, links } = network
            && mode == "bridge"
        {
            for service in &self.created.services {
                for alias in &service.aliases {
                    links.push(format!("{}:{alias}", service.name));
                }
            }
        }
        Ok(())
    }

    /// The job container, created (or re-created, when the sources now borrow objects from a
    /// directory it does not mount) before a stage runs.
    async fn build_container(&mut self, job: &PreparedJob) -> Result<String, DockerError> {
        let (Some(docker), Some(spec)) = (&self.docker, &self.spec) else {
            return Err(DockerError::NotPrepared);
        };
        let needed = alternates(&job.project_dir);
        if let Some(id) = &self.created.build
            && needed
                .iter()
                .all(|dir| self.mounted_alternates.contains(dir))
        {
            return Ok(id.clone());
        }
        if let Some(old) = self.created.build.take() {
            remove_container(docker, &old).await;
        }
        let extra: Vec<String> = needed
            .iter()
            .map(|dir| format!("{0}:{0}:ro", dir.display()))
            .collect();
        let id = create_build_container(docker, spec, &extra).await?;
        self.created.build = Some(id.clone());
        if let Ok(mut shared) = self.terminal_container.lock() {
            *shared = Some(id.clone());
        }
        self.mounted_alternates = needed;
        Ok(id)
    }
}

/// The job container's host name: `hostname` from the config, else gitlab-runner's
/// `ProjectUniqueName`.
fn hostname(config: &DockerConfig, job: &PreparedJob) -> String {
    config.hostname.clone().unwrap_or_else(|| {
        format!(
            "runner-{}-project-{}-concurrent-{}",
            job.variables
                .get("CI_RUNNER_SHORT_TOKEN")
                .unwrap_or("local"),
            job.payload.job_info.project_id,
            job.variables.get("CI_CONCURRENT_PROJECT_ID").unwrap_or("0")
        )
    })
}

/// A network name the user created (not one of Docker's modes), where aliases work.
fn is_user_network(mode: &str) -> bool {
    !matches!(mode, "bridge" | "host" | "none" | "default") && !mode.starts_with("container:")
}

/// Connects to the engine of `config` (or `DOCKER_HOST`, or the local socket).
async fn connect(config: &DockerConfig) -> Result<Docker, DockerError> {
    let docker = match &config.host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_defaults(),
    }
    .map_err(DockerError::api("connect to the Docker engine"))?;
    docker
        .negotiate_version()
        .await
        .map_err(DockerError::api("connect to the Docker engine"))
}

impl Executor for DockerExecutor {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn prepare<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { self.prepare_job(job, trace).await.map_err(ExecError::from) })
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        Box::pin(async move {
            let id = self.build_container(job).await?;
            let Some(docker) = &self.docker else {
                return Err(DockerError::NotPrepared.into());
            };
            let end = run_stage(
                docker,
                &id,
                stage.script.as_bytes(),
                trace,
                &stage.cancel,
                stage.deadline,
                self.config.stop_timeout,
            )
            .await?;
            if stage.name.starts_with("step_") && end != ScriptEnd::Exited(0) {
                for service in &self.created.services {
                    trace.println("");
                    trace.println(&format!(
                        "Service container logs of {} ({}):",
                        service.image, service.name
                    ));
                    write_logs(docker, service, trace).await;
                }
            }
            Ok(end)
        })
    }

    fn environment_host(&self, job: &PreparedJob) -> Option<String> {
        Some(hostname(&self.config, job))
    }

    fn terminal(&self, job: &PreparedJob) -> Option<Arc<dyn TerminalOpener>> {
        let (exports, _) = job.variables.exports();
        Some(Arc::new(DockerTerminal {
            docker: self.docker.clone()?,
            container: self.terminal_container.clone(),
            env: exports
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            working_dir: job.project_dir.to_string_lossy().into_owned(),
        }))
    }

    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut shared) = self.terminal_container.lock() {
                *shared = None;
            }
            let created = std::mem::take(&mut self.created);
            if let Some(docker) = &self.docker {
                if let (Some((uid, gid)), Some(id)) = (self.config.builds_owner, &created.build) {
                    let dirs: Vec<String> =
                        build_dirs(&job.builds_dir, &job.project_dir, &job.tmp_dir)
                            .iter()
                            .map(|d| shell_quote(&d.to_string_lossy()))
                            .collect();
                    let script = format!(
                        "chown -R {uid}:{gid} {} 2>/dev/null\nexit 0\n",
                        dirs.join(" ")
                    );
                    run_quiet(docker, id, &script, OWNER_TIMEOUT).await;
                }
                remove(docker, created).await;
            }
        })
    }
}

impl Drop for DockerExecutor {
    /// A job future dropped before `cleanup` (a runner killed mid-job) still removes what it
    /// made, on the runtime if one is running.
    fn drop(&mut self) {
        let created = std::mem::take(&mut self.created);
        let nothing =
            created.build.is_none() && created.services.is_empty() && created.network.is_none();
        if let (false, Some(docker), Ok(runtime)) = (
            nothing,
            self.docker.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(async move { remove(&docker, created).await });
        }
    }
}

/// Removes containers (with their anonymous volumes), then the network.
async fn remove(docker: &Docker, created: Created) {
    let ids: Vec<String> = created
        .build
        .into_iter()
        .chain(created.services.into_iter().map(|s| s.id))
        .collect();
    let removals = ids.iter().map(|id| remove_container(docker, id));
    futures_util::future::join_all(removals).await;
    if let Some(network) = created.network {
        let _ = docker.remove_network(&network).await;
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let _ = docker.remove_container(id, Some(options)).await;
}

/// Removes the containers and networks that the runners with `runner_tokens` (short tokens)
/// made on the engine of `config` (labels `dev.runnel.managed=true` and
/// `com.gitlab.gitlab-runner.runner.id=<token>`), e.g. left by a runner that was killed;
/// returns how many objects were removed. Another runner's objects, and those of `runnel exec`,
/// are left alone: they may belong to jobs running now. Call it only when none of these
/// runners' jobs is running.
pub async fn remove_leftovers(
    config: &DockerConfig,
    runner_tokens: &[String],
) -> Result<usize, ExecError> {
    let docker = connect(config).await.map_err(ExecError::from)?;
    let mut removed = 0;
    for token in runner_tokens.iter().filter(|t| !t.is_empty()) {
        let filters = std::collections::HashMap::from([(
            "label",
            vec![
                format!("{MANAGED_LABEL}=true"),
                format!("{RUNNER_ID_LABEL}={token}"),
            ],
        )]);
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(DockerError::api("list containers"))
            .map_err(ExecError::from)?;
        for id in containers.into_iter().filter_map(|c| c.id) {
            remove_container(&docker, &id).await;
            removed += 1;
        }
        let networks = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(DockerError::api("list networks"))
            .map_err(ExecError::from)?;
        for id in networks.into_iter().filter_map(|n| n.id) {
            if docker.remove_network(&id).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}
