//! `pods/log`: a container's output from the Docker engine (stdout and stderr interleaved as
//! the kubelet's log files have them), with `follow`, `timestamps`, `tailLines`,
//! `sinceSeconds` and `limitBytes`; and the container choice shared with exec and attach.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use serde_json::Value;

use super::crud::Query;
use crate::kind::Kind;
use crate::shared::Shared;
use crate::status::ApiError;

/// The container a subresource request means (`streamLocation` of the pod registry).
pub(crate) fn choose_container(
    pod: &Value,
    requested: Option<&str>,
    name: &str,
) -> Result<String, ApiError> {
    let names = |group: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{group}"))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (main, init) = (names("containers"), names("initContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(container) if main.iter().chain(&init).any(|n| n == container) => {
            Ok(container.to_owned())
        }
        Some(container) => Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        ))),
        None if main.len() == 1 => Ok(main[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                main.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// The container's status in the pod (`containerStatuses` or `initContainerStatuses`).
pub(crate) fn container_status(pod: &Value, container: &str) -> Option<Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .find_map(|group| {
            pod.pointer(&format!("/status/{group}"))
                .and_then(Value::as_array)
                .and_then(|l| {
                    l.iter()
                        .find(|s| s.get("name").and_then(Value::as_str) == Some(container))
                })
                .cloned()
        })
}

/// The Docker id of a container that has been started at least once.
pub(crate) fn docker_id(status: &Value) -> Option<String> {
    status
        .get("containerID")
        .and_then(Value::as_str)
        .and_then(|id| id.strip_prefix("docker://"))
        .map(str::to_owned)
}

/// `GET /api/v1/namespaces/{namespace}/pods/{name}/log`.
pub(crate) async fn log(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::from_raw(raw);
    let pod = shared
        .store()
        .get(Kind::Pod, &namespace, &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let container = choose_container(&pod, query.get("container"), &name)?;
    let text = |body: Body| {
        let mut response = (StatusCode::OK, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    };
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Ok(text(Body::empty()));
    }
    let status = container_status(&pod, &container).unwrap_or(Value::Null);
    if let Some(reason) = status
        .pointer("/state/waiting/reason")
        .and_then(Value::as_str)
        && docker_id(&status).is_none()
    {
        let why = match reason {
            "ErrImagePull" => "trying and failing to pull image",
            "ImagePullBackOff" => "image can't be pulled",
            other => other,
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    if query.flag("previous")?
        && status
            .get("restartCount")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            == 0
    {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let (Some(id), Some(docker)) = (docker_id(&status), shared.kubelet.docker().cloned()) else {
        return Ok(text(Body::empty()));
    };
    let number = |key: &str| -> Result<Option<i64>, ApiError> {
        query
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{key}: Invalid value: {v:?}")))
            })
            .transpose()
    };
    let mut options = LogsOptionsBuilder::default()
        .follow(query.flag("follow")?)
        .stdout(true)
        .stderr(true)
        .timestamps(query.flag("timestamps")?);
    if let Some(tail) = number("tailLines")? {
        options = options.tail(&tail.to_string());
    }
    if let Some(since) = number("sinceSeconds")? {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        options = options.since(i32::try_from(now - since).unwrap_or(0));
    }
    let limit = number("limitBytes")?.map(|l| usize::try_from(l).unwrap_or(0));
    let logs = docker.logs(&id, Some(options.build()));
    let cancel = shared.streams();
    let stream = futures_util::stream::unfold(
        (Box::pin(logs), cancel, limit),
        |(mut logs, cancel, limit)| async move {
            if limit == Some(0) {
                return None;
            }
            let frame = tokio::select! {
                () = cancel.cancelled() => return None,
                frame = logs.next() => frame,
            };
            let mut bytes = frame?.ok()?.into_bytes();
            let limit = limit.map(|left| {
                bytes = bytes.slice(..bytes.len().min(left));
                left - bytes.len()
            });
            Some((
                Ok::<Bytes, std::convert::Infallible>(bytes),
                (logs, cancel, limit),
            ))
        },
    );
    Ok(text(Body::from_stream(stream)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::choose_container;

    #[test]
    fn container_choice_as_the_registry_makes_it() {
        let pod = json!({"spec": {"containers": [{"name": "build"}, {"name": "helper"}], "initContainers": [{"name": "init"}]}});
        assert_eq!(
            choose_container(&pod, Some("helper"), "p").unwrap(),
            "helper"
        );
        assert_eq!(
            choose_container(&pod, None, "p").unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [build helper] or one of the init containers: [init]"
        );
        assert_eq!(
            choose_container(&pod, Some("x"), "p").unwrap_err().message,
            "container x is not valid for pod p"
        );
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(choose_container(&single, None, "p").unwrap(), "only");
    }
}
