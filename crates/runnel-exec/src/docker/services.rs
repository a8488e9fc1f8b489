//! `services:`: containers started before the job on the job's network, reachable by their
//! aliases, waited for, and their logs shown when something goes wrong.
//!
//! GitLab: gitlab-runner `executors/docker/docker.go` (`createFromServiceDefinition`,
//! `createService`: the job's variables plus the service's, `entrypoint`/`command` overrides,
//! `services_privileged` and `allowed_privileged_services`,
//! `waitForServices` with `wait_for_services_timeout`, the warning with the service logs) and
//! `executors/docker/internal/networks/manager.go` (the per-job network). gitlab-runner waits
//! for the exposed TCP ports from a helper container; runnel connects from the host, so nothing
//! extra is pulled.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use runnel_api::Image;
use tokio::time::Instant;

use super::config::DockerConfig;
use super::error::DockerError;
use super::image::get_image;
use super::names::{ServiceName, labels, service_aliases, slug};
use super::policy::privileged_for;
use crate::executor::PreparedJob;
use crate::trace::Trace;

/// A started service container.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The image name as the job wrote it (expanded).
    pub(crate) image: String,
    pub(crate) aliases: Vec<String>,
    /// TCP ports to wait for: `HEALTHCHECK_TCP_PORT`, else the image's exposed ports.
    pub(crate) ports: Vec<u16>,
}

/// Creates the job's network (a user-defined bridge, so containers resolve each other's
/// aliases).
pub(crate) async fn create_network(
    docker: &Docker,
    name: &str,
    job: &PreparedJob,
) -> Result<(), DockerError> {
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".into()),
        labels: Some(labels(job, "network", &[])),
        ..NetworkCreateRequest::default()
    };
    docker
        .create_network(request)
        .await
        .map_err(DockerError::api(format!("create the network `{name}`")))?;
    Ok(())
}

/// What every service container shares.
pub(crate) struct ServiceSetup<'a> {
    pub(crate) config: &'a DockerConfig,
    pub(crate) prefix: &'a str,
    pub(crate) network: Option<&'a str>,
    pub(crate) host_config: HostConfig,
}

/// Pulls (per the pull policies), creates and starts the service `index` of the job (its
/// name already expanded and allowed, see `image::service_definitions`), adding it to `started`
/// as soon as it exists.
pub(crate) async fn start_service(
    docker: &Docker,
    job: &PreparedJob,
    setup: &ServiceSetup<'_>,
    index: usize,
    service: &Image,
    trace: &mut Trace,
    started: &mut Vec<Service>,
) -> Result<(), DockerError> {
    let config = setup.config;
    let image_name = service.name.clone();
    let parsed = ServiceName::parse(&image_name)
        .ok_or_else(|| DockerError::config(format!("invalid service name: `{}`", service.name)))?;
    trace.println(&format!(
        "Starting service {}:{} ...",
        parsed.service, parsed.version
    ));
    let image = get_image(docker, &image_name, Some(service), job, config, trace).await?;
    let aliases = service_aliases(service, &image_name);
    let name = format!("{}-svc-{}-{index}", setup.prefix, slug(&parsed.service));
    let mut env: Vec<String> = job
        .variables
        .iter()
        .filter(|v| (v.public || v.internal) && !v.file)
        .map(|v| format!("{}={}", v.key, v.value))
        .collect();
    let own: Vec<(String, String)> = service
        .variables
        .iter()
        .map(|v| (v.key.clone(), job.variables.expand(&v.value)))
        .collect();
    env.extend(own.iter().map(|(k, v)| format!("{k}={v}")));
    let networking_config = setup.network.map(|network| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.to_owned(),
            EndpointSettings {
                aliases: Some(aliases.clone()),
                ..EndpointSettings::default()
            },
        )])),
    });
    let service_label = parsed.service.clone();
    // gitlab-runner `createHostConfigForService` + `isInPrivilegedServiceList`.
    let mut host_config = setup.host_config.clone();
    host_config.privileged = Some(privileged_for(
        config.services_privileged.unwrap_or(config.privileged),
        &image_name,
        &config.allowed_privileged_services,
    ));
    let body = ContainerCreateBody {
        image: image.id.clone(),
        env: Some(env),
        cmd: (!service.command.is_empty()).then(|| service.command.clone()),
        entrypoint: (!service.entrypoint.is_empty()).then(|| service.entrypoint.clone()),
        labels: Some(labels(
            job,
            "service",
            &[
                ("service", &service_label),
                ("service.version", &parsed.version),
            ],
        )),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(DockerError::api(format!(
            "create the service container `{name}`"
        )))?;
    let id = created.id.clone();
    // Recorded before the start, so cleanup removes it even if the start fails.
    started.push(Service {
        id: created.id,
        name: name.clone(),
        image: image_name,
        aliases,
        ports: health_ports(&own, job, &image),
    });
    docker
        .start_container(&id, None)
        .await
        .map_err(DockerError::api(format!(
            "start the service container `{name}`"
        )))
}

/// The ports to wait for (gitlab-runner: `HEALTHCHECK_TCP_PORT`, else the exposed TCP ports).
fn health_ports(
    own: &[(String, String)],
    job: &PreparedJob,
    image: &bollard::models::ImageInspect,
) -> Vec<u16> {
    let explicit = own
        .iter()
        .rev()
        .find(|(k, _)| k == "HEALTHCHECK_TCP_PORT")
        .map(|(_, v)| v.as_str())
        .or_else(|| job.variables.get("HEALTHCHECK_TCP_PORT"));
    if let Some(port) = explicit.and_then(|p| p.trim().parse().ok()) {
        return vec![port];
    }
    let mut ports: Vec<u16> = image
        .config
        .as_ref()
        .and_then(|c| c.exposed_ports.as_ref())
        .map(|exposed| {
            exposed
                .iter()
                .filter_map(|p| {
                    let (number, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                    (proto == "tcp").then(|| number.parse().ok()).flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort_unstable();
    ports
}

/// Waits until every service accepts TCP connections on its ports, or `timeout` passes; a
/// service that does not is reported with its logs, and the job goes on (as in gitlab-runner).
pub(crate) async fn wait_for_services(
    docker: &Docker,
    services: &[Service],
    network: Option<&str>,
    timeout: Duration,
    trace: &mut Trace,
) {
    if timeout.is_zero() || services.iter().all(|s| s.ports.is_empty()) {
        return;
    }
    trace.println(&format!(
        "Waiting for services to be up and running (timeout {} seconds)...",
        timeout.as_secs()
    ));
    let deadline = Instant::now() + timeout;
    let checks = services
        .iter()
        .map(|service| wait_for_service(docker, service, network, deadline));
    let results = futures_util::future::join_all(checks).await;
    for (service, result) in services.iter().zip(results) {
        if let Err(problem) = result {
            trace.println("");
            trace.warning(&format!(
                "Service {} probably didn't start properly.",
                service.name
            ));
            trace.println("");
            trace.println("Health check error:");
            trace.println(&problem);
            trace.println("");
            trace.println("Service container logs:");
            write_logs(docker, service, trace).await;
            trace.println("");
            trace.println("*********");
            trace.println("");
        }
    }
}

async fn wait_for_service(
    docker: &Docker,
    service: &Service,
    network: Option<&str>,
    deadline: Instant,
) -> Result<(), String> {
    if service.ports.is_empty() {
        return Ok(());
    }
    let inspected = docker
        .inspect_container(&service.id, None)
        .await
        .map_err(|e| format!("failed to inspect the service container: {e}"))?;
    let settings = inspected.network_settings.as_ref();
    let ip = settings
        .and_then(|s| s.networks.as_ref())
        .and_then(|networks| match network {
            Some(name) => networks.get(name),
            None => networks.values().next(),
        })
        .and_then(|endpoint| endpoint.ip_address.clone())
        .filter(|ip| !ip.is_empty());
    let ip: IpAddr = match ip {
        Some(ip) => ip
            .parse()
            .map_err(|_| format!("the service has an invalid address `{ip}`"))?,
        // `network_mode = "host"`: the service listens on this host.
        None => IpAddr::from([127, 0, 0, 1]),
    };
    for port in &service.ports {
        let address = SocketAddr::new(ip, *port);
        loop {
            let attempt =
                tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(address)).await;
            match attempt {
                Ok(Ok(_)) => break,
                Err(_) => {
                    return Err(format!(
                        "service \"{}\" timeout: nothing accepted connections on {address}",
                        service.name
                    ));
                }
                Ok(Err(_)) => {
                    if !running(docker, &service.id).await {
                        return Err(format!("service \"{}\" exited", service.name));
                    }
                    // Polling a port is the only way to learn that it opened.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Ok(())
}

async fn running(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// Writes the last 1,000 lines of a service's output to the trace.
pub(crate) async fn write_logs(docker: &Docker, service: &Service, trace: &mut Trace) {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail("1000")
        .build();
    let mut logs = docker.logs(&service.id, Some(options));
    let until = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, logs.next()).await {
        trace.write(frame.as_ref());
    }
    trace.flush();
}

#[cfg(test)]
mod tests {
    use bollard::models::{ImageConfig, ImageInspect};

    use super::health_ports;
    use crate::executor::PreparedJob;

    #[test]
    fn exposed_tcp_ports_are_waited_for_unless_a_port_is_named() {
        let image = ImageInspect {
            config: Some(ImageConfig {
                exposed_ports: Some(vec!["8080/tcp".into(), "53/udp".into(), "5432/tcp".into()]),
                ..ImageConfig::default()
            }),
            ..ImageInspect::default()
        };
        let job = PreparedJob {
            payload: serde_json::from_value(serde_json::json!({
                "id": 1, "token": "t", "job_info": {"name": "j"}, "git_info": {},
                "variables": [], "steps": []
            }))
            .expect("a minimal payload"),
            builds_dir: "/b".into(),
            project_dir: "/b/p".into(),
            tmp_dir: "/b/p.tmp".into(),
            script_dirs: crate::executor::JobDirs {
                builds_dir: "/b".into(),
                project_dir: "/b/p".into(),
                tmp_dir: "/b/p.tmp".into(),
            },
            variables: Default::default(),
        };
        assert_eq!(health_ports(&[], &job, &image), [5432, 8080]);
        let own = [("HEALTHCHECK_TCP_PORT".to_owned(), "8000".to_owned())];
        assert_eq!(health_ports(&own, &job, &image), [8000]);
    }
}
