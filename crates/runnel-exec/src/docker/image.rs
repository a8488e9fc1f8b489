//! Choosing and getting images: the job's `image:` (or the runner's `image`) and its services
//! (the runner's `[[services]]` first) checked against the runner's policies, and the pull
//! policies tried in order.
//!
//! GitLab: gitlab-runner `executors/docker/internal/pull/manager.go` (`GetDockerImage`: the
//! job's policies win over the runner's, one of them must be allowed, each is tried in turn, a
//! failed pull is an `image_pull_failure`), `executors/docker/docker.go` (`expandImageName`)
//! and `executors/docker/services.go` (`getServicesDefinitions`).

use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::ImageInspect;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use runnel_api::{FailureReason, Image};

use super::config::{DockerConfig, PullPolicy, policy_list};
use super::error::{DockerError, is_not_found};
use super::policy::{
    PolicySource, verify_allowed_image, verify_pull_policies, verify_services_limit,
};
use crate::executor::PreparedJob;
use crate::registry_auth;
use crate::trace::Trace;

/// A pull that takes longer than this fails (`prepare` cannot be cancelled, so it is bounded).
const PULL_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The image name the job container runs: the job's `image:` expanded and checked against
/// `allowed_images` (the runner's `image` is always allowed), else the runner's `image`.
pub(crate) fn job_image_name(
    job: &PreparedJob,
    config: &DockerConfig,
    trace: &mut Trace,
) -> Result<String, DockerError> {
    let named = job
        .payload
        .image
        .as_ref()
        .map(|image| job.variables.expand(&image.name))
        .filter(|name| !name.trim().is_empty());
    match named {
        Some(name) => {
            let internal: Vec<String> = config
                .image
                .iter()
                .map(|image| job.variables.expand(image))
                .collect();
            verify_allowed_image(&name, "images", &config.allowed_images, &internal)
                .map_err(|refused| refused.report(trace))?;
            Ok(name)
        }
        None => config.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            DockerError::config(
                "no Docker image specified to run the job in: set `image:` in the job or `image` \
                 in `[runners.docker]`",
            )
        }),
    }
}

/// The services of the job in the order they start: the runner's `[[services]]`, then the
/// job's `services:`, each name expanded with the job's variables. The job's must match
/// `allowed_services` unless the runner's own list names them; together they must fit in
/// `services_limit`.
///
/// GitLab: gitlab-runner `executors/docker/services.go` `getServicesDefinitions`.
pub(crate) fn service_definitions(
    job: &PreparedJob,
    config: &DockerConfig,
    trace: &mut Trace,
) -> Result<Vec<Image>, DockerError> {
    let expand = |service: &Image| Image {
        name: job.variables.expand(&service.name),
        ..service.clone()
    };
    let mut services: Vec<Image> = config.services.iter().map(expand).collect();
    let internal: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    for service in job.payload.services.iter().map(expand) {
        verify_allowed_image(
            &service.name,
            "services",
            &config.allowed_services,
            &internal,
        )
        .map_err(|refused| refused.report(trace))?;
        services.push(service);
    }
    verify_services_limit(services.len(), config.services_limit)
        .map_err(|refused| refused.report(trace))?;
    Ok(services)
}

/// Gets `name` locally or by pulling, following the pull policies of `image` (the job's) or of
/// the runner; prints what it does as gitlab-runner does.
pub(crate) async fn get_image(
    docker: &Docker,
    name: &str,
    image: Option<&Image>,
    job: &PreparedJob,
    config: &DockerConfig,
    trace: &mut Trace,
) -> Result<ImageInspect, DockerError> {
    let job_policies = image.map(|i| i.pull_policy.as_slice()).unwrap_or_default();
    let (policies, source) = if job_policies.is_empty() {
        let source = if config.pull_policy.is_empty() {
            PolicySource::Default
        } else {
            PolicySource::Runner
        };
        (config.pull_policies(), source)
    } else {
        let parsed = job_policies
            .iter()
            .map(|p| p.parse::<PullPolicy>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(DockerError::config)?;
        (parsed, PolicySource::Job)
    };
    verify_pull_policies(name, &policies, &config.allowed_pull_policies(), source)
        .map_err(|refused| refused.report(trace))?;
    let mut last_error = String::new();
    for (index, policy) in policies.iter().enumerate() {
        if index > 0 {
            trace.info(&format!(
                "Attempt #{}: Trying \"{policy}\" pull policy",
                index + 1
            ));
        }
        match image_with_policy(docker, name, *policy, job, trace).await {
            Ok(found) => {
                let id = found.id.clone().unwrap_or_default();
                if id != name {
                    trace.println(&format!("Using docker image {id} for {name} ..."));
                }
                return Ok(found);
            }
            Err(err) => {
                trace.warning(&format!(
                    "Failed to pull image with policy \"{policy}\": {err}"
                ));
                last_error = err;
            }
        }
    }
    Err(DockerError::Job {
        reason: FailureReason::ImagePullFailure,
        message: format!(
            "failed to pull image \"{name}\" with specified policies {}: {last_error}",
            policy_list(&policies)
        ),
    })
}

/// One policy: the local image, a pull, or why neither worked.
async fn image_with_policy(
    docker: &Docker,
    name: &str,
    policy: PullPolicy,
    job: &PreparedJob,
    trace: &mut Trace,
) -> Result<ImageInspect, String> {
    let local = docker.inspect_image(name).await;
    match (&local, policy) {
        (Ok(_), PullPolicy::Never) => return local.map_err(|e| e.to_string()),
        (Ok(found), _) if found.id.as_deref() == Some(name) => {
            return local.map_err(|e| e.to_string());
        }
        (Ok(_), PullPolicy::IfNotPresent) => {
            trace.println(&format!(
                "Using locally found image version due to \"{policy}\" pull policy"
            ));
            return local.map_err(|e| e.to_string());
        }
        (Err(err), PullPolicy::Never) if is_not_found(err) => {
            return Err(format!(
                "no such image `{name}` locally, and the pull policy is `never`"
            ));
        }
        (Err(err), _) if !is_not_found(err) => return Err(err.to_string()),
        _ => {}
    }
    let credentials = credentials_for(name, job, trace).map(|(credentials, source)| {
        trace.println(&format!("Authenticating with credentials from {source}"));
        credentials
    });
    trace.println(&format!("Pulling docker image {name} ..."));
    pull(docker, name, job, credentials).await?;
    docker.inspect_image(name).await.map_err(|e| e.to_string())
}

async fn pull(
    docker: &Docker,
    name: &str,
    job: &PreparedJob,
    credentials: Option<DockerCredentials>,
) -> Result<(), String> {
    let (repository, tag) = split_tag(name);
    let mut options = CreateImageOptionsBuilder::default().from_image(repository);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let platform = job
        .payload
        .image
        .as_ref()
        .and_then(|i| i.executor_opts.as_ref())
        .and_then(|o| o.docker.as_ref())
        .and_then(|d| d.platform.clone());
    if let Some(platform) = &platform {
        options = options.platform(platform);
    }
    let mut stream = docker.create_image(Some(options.build()), None, credentials);
    let drain = async {
        while let Some(item) = stream.next().await {
            item.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(PULL_TIMEOUT, drain).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the pull did not finish within {} s",
            PULL_TIMEOUT.as_secs()
        )),
    }
}

/// `name` without its tag, and the tag (`latest` when there is none; `None` for a digest).
fn split_tag(name: &str) -> (&str, Option<&str>) {
    if name.contains('@') {
        return (name, None);
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(&name[last_slash + colon + 1..]),
        ),
        None => (name, Some("latest")),
    }
}

/// The job's registry credentials for image `name`, from `DOCKER_AUTH_CONFIG`, the runner
/// user's Docker config and the payload's `credentials` (gitlab-runner `ResolveConfigForImage`).
/// A source that cannot be read is skipped with a warning in the trace; a credential helper
/// named by a path is refused with a warning, and the pull goes on without credentials.
fn credentials_for(
    name: &str,
    job: &PreparedJob,
    trace: &mut Trace,
) -> Option<(DockerCredentials, String)> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let resolved = registry_auth::resolve(
        job.variables.get("DOCKER_AUTH_CONFIG"),
        home.as_deref(),
        &job.payload.credentials,
    );
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(err) => {
            trace.warning(&format!("Registry credentials not used: {err}"));
            return None;
        }
    };
    for skipped in &resolved.skipped {
        trace.warning(&format!("Registry credentials skipped: {skipped}"));
    }
    let info = registry_auth::for_image(&resolved.auths, name)?;
    let auth = &info.auth;
    let given = |s: &String| (!s.is_empty()).then(|| s.clone());
    let credentials = DockerCredentials {
        username: given(&auth.username),
        password: given(&auth.password),
        email: given(&auth.email),
        serveraddress: given(&auth.serveraddress),
        identitytoken: given(&auth.identitytoken),
        registrytoken: given(&auth.registrytoken),
        ..DockerCredentials::default()
    };
    Some((credentials, info.source.clone()))
}

#[cfg(test)]
mod tests {
    use runnel_api::{FailureReason, Image, JobId};
    use tokio::sync::mpsc;

    use super::{service_definitions, split_tag};
    use crate::docker::config::DockerConfig;
    use crate::docker::error::DockerError;
    use crate::executor::PreparedJob;
    use crate::mask::Masker;
    use crate::trace::Trace;
    use crate::variables::JobVariables;

    fn image(name: &str) -> Image {
        Image {
            name: name.to_owned(),
            ..Image::default()
        }
    }

    fn job(services: &[&str]) -> PreparedJob {
        let mut payload: runnel_api::JobPayload = serde_json::from_value(serde_json::json!({
            "id": 1, "token": "t", "job_info": {"name": "j"}, "git_info": {},
            "variables": [], "steps": []
        }))
        .expect("a minimal payload");
        payload.services = services.iter().map(|name| image(name)).collect();
        PreparedJob {
            payload,
            builds_dir: "/b".into(),
            project_dir: "/b/p".into(),
            tmp_dir: "/b/p.tmp".into(),
            script_dirs: crate::executor::JobDirs {
                builds_dir: "/b".into(),
                project_dir: "/b/p".into(),
                tmp_dir: "/b/p.tmp".into(),
            },
            variables: JobVariables::from_pairs(&[("REGISTRY", "registry.local")]),
        }
    }

    fn definitions(job: &PreparedJob, config: &DockerConfig) -> Result<Vec<String>, String> {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut trace = Trace::new(JobId(1), tx, Masker::default(), false, 1 << 20);
        match service_definitions(job, config, &mut trace) {
            Ok(services) => Ok(services.into_iter().map(|s| s.name).collect()),
            Err(DockerError::Job { reason, message }) => {
                assert_eq!(reason, FailureReason::RunnerSystemFailure);
                Err(message)
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn runner_services_come_first_expanded_and_count_towards_the_limit() {
        let config = DockerConfig {
            services: vec![image("$REGISTRY/postgres:16")],
            allowed_services: vec!["redis:*".into()],
            ..DockerConfig::default()
        };
        // The job's service with the runner's service's image is allowed, as gitlab-runner's
        // "internal" images are; `redis:*` matches the other.
        let job_with = job(&["redis:7", "$REGISTRY/postgres:16"]);
        assert_eq!(
            definitions(&job_with, &config),
            Ok(vec![
                "registry.local/postgres:16".to_owned(),
                "redis:7".to_owned(),
                "registry.local/postgres:16".to_owned(),
            ])
        );
        assert_eq!(
            definitions(&job(&["mysql:8"]), &config),
            Err("disallowed image".to_owned())
        );
        let limited = DockerConfig {
            services_limit: Some(2),
            ..config
        };
        assert_eq!(
            definitions(&job_with, &limited),
            Err("too many services requested: 3, only 2 allowed".to_owned())
        );
    }

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("python:3.11-slim"), ("python", Some("3.11-slim")));
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", Some("latest"))
        );
        assert_eq!(split_tag("a/b@sha256:00"), ("a/b@sha256:00", None));
    }
}
