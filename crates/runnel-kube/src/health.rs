//! Waiting for the job's services before its scripts run.
//!
//! GitLab: gitlab-runner merge request !4545 (issue #27215): Kubernetes cannot tell which
//! ports an image exposes, so the Kubernetes executor waits only for services that name one
//! in their `HEALTHCHECK_TCP_PORT` variable. Once the pod runs, the helper container (which
//! shares the pod's network) dials those ports on 127.0.0.1; a service that does not answer
//! within the timeout is a warning, not a failure, as with the Docker executor.

use std::time::Duration;

use runnel_api::Image;
use runnel_exec::{JobVariables, Trace};

use crate::error::KubeError;
use crate::executor::Running;
use crate::pod::HELPER_CONTAINER;

/// gitlab-runner's `DefaultWaitForServicesTimeout`.
pub(crate) const WAIT_FOR_SERVICES_TIMEOUT: Duration = Duration::from_secs(30);

/// The `HEALTHCHECK_TCP_PORT` of each service that has one: (container, image, port).
fn health_ports(services: &[Image], variables: &JobVariables) -> Vec<(String, String, u16)> {
    services
        .iter()
        .enumerate()
        .filter_map(|(index, service)| {
            let port = service
                .variables
                .iter()
                .rev()
                .find(|v| v.key == "HEALTHCHECK_TCP_PORT")?;
            let port = variables.expand(&port.value).trim().parse().ok()?;
            Some((format!("svc-{index}"), service.name.clone(), port))
        })
        .collect()
}

/// Waits (at most [`WAIT_FOR_SERVICES_TIMEOUT`]) for the services with a health check port.
pub(crate) async fn wait_for_services(
    running: &Running,
    services: &[Image],
    variables: &JobVariables,
    trace: &mut Trace,
) -> Result<(), KubeError> {
    let ports = health_ports(services, variables);
    if ports.is_empty() {
        return Ok(());
    }
    let timeout = WAIT_FOR_SERVICES_TIMEOUT.as_secs();
    trace.println(&format!(
        "Waiting for services to be up and running (timeout {timeout} seconds)..."
    ));
    let mut command = vec![
        "runnel".to_owned(),
        "helper".to_owned(),
        "health-check".to_owned(),
        "--timeout".to_owned(),
        timeout.to_string(),
    ];
    for (_, _, port) in &ports {
        command.push("--port".to_owned());
        command.push(port.to_string());
    }
    let mut output = Vec::new();
    let (code, stderr) = running
        .pod
        .run_collect(HELPER_CONTAINER, command, None, &mut output)
        .await?;
    if code == 0 {
        return Ok(());
    }
    let error = String::from_utf8_lossy(&stderr);
    for (container, image, port) in &ports {
        trace.warning(&format!(
            "Service {container} ({image}) probably didn't start properly: health check of \
             port {port}: {}",
            error.trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use runnel_api::{Image, JobVariable};
    use runnel_exec::test_support::{PayloadBuilder, TestProject, prepared_job};

    use super::health_ports;

    #[test]
    fn only_services_with_a_health_check_port_are_waited_for() {
        let service = |name: &str, port: Option<&str>| Image {
            name: name.to_owned(),
            variables: port
                .map(|p| vec![JobVariable::new("HEALTHCHECK_TCP_PORT", p)])
                .unwrap_or_default(),
            ..Image::default()
        };
        let project = TestProject::new();
        let payload = PayloadBuilder::new(1, "test")
            .var("DB_PORT", "5432")
            .build();
        let job = prepared_job(payload, &project.context("k8s"), "kubernetes");
        let services = [
            service("redis", None),
            service("postgres", Some("$DB_PORT")),
            service("broken", Some("not a port")),
        ];
        assert_eq!(
            health_ports(&services, &job.variables),
            vec![("svc-1".to_owned(), "postgres".to_owned(), 5432)]
        );
    }
}
