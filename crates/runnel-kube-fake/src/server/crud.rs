//! The REST handlers of core/v1 objects: create, get, list (and watch, see `watch`), replace,
//! patch, delete and delete-collection, for namespaced kinds and for namespaces.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::watch;
use crate::kind::Kind;
use crate::ops::{self, DeleteOptions, Written};
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::{Shared, query_pairs};
use crate::status::ApiError;
use crate::validate::FieldValidation;

type Result<T> = std::result::Result<T, ApiError>;

/// Query parameters, decoded, in order.
pub(crate) struct Query(pub Vec<(String, String)>);

impl Query {
    pub(crate) fn from_raw(raw: Option<String>) -> Self {
        Self(query_pairs(raw.as_deref().unwrap_or("")))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    pub(crate) fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False" | "") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "strconv.ParseBool: parsing {other:?}: invalid syntax"
            ))),
        }
    }

    fn dry_run(&self) -> Result<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    fn validation(&self) -> Result<FieldValidation> {
        FieldValidation::from_query(self.get("fieldValidation"))
    }
}

pub(crate) fn kind_of(resource: &str) -> Result<Kind> {
    Kind::from_resource(resource).ok_or_else(ApiError::no_route)
}

fn namespaced(resource: &str) -> Result<Kind> {
    let kind = kind_of(resource)?;
    if kind.namespaced() {
        Ok(kind)
    } else {
        Err(ApiError::no_route())
    }
}

fn json_body(bytes: &Bytes) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

/// A JSON answer with `Warning` headers.
pub(crate) fn json_response(status: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for warning in warnings {
        if let Ok(value) =
            HeaderValue::from_str(&format!("299 - {}", Value::String(warning.clone())))
        {
            headers.append(header::WARNING, value);
        }
    }
    (status, headers, body.to_string()).into_response()
}

fn written(status: StatusCode, written: Written) -> Response {
    json_response(status, &written.object, &written.warnings)
}

/// `POST /api/v1/namespaces/{namespace}/{resource}`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    let query = Query::from_raw(raw);
    let body = json_body(&body)?;
    let done = ops::create(
        &shared,
        kind,
        &namespace,
        &body,
        query.validation()?,
        query.dry_run()?,
    )?;
    Ok(written(StatusCode::CREATED, done))
}

/// `POST /api/v1/namespaces` (and any other cluster-level collection, which is not served).
pub(crate) async fn create_cluster(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    let kind = kind_of(&resource)?;
    if kind.namespaced() {
        return Err(ApiError::method_not_allowed());
    }
    let query = Query::from_raw(raw);
    let body = json_body(&body)?;
    let done = ops::create(
        &shared,
        kind,
        "",
        &body,
        query.validation()?,
        query.dry_run()?,
    )?;
    Ok(written(StatusCode::CREATED, done))
}

/// `GET /api/v1/namespaces/{namespace}/{resource}/{name}`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    get_object(&shared, kind, &namespace, &name)
}

/// `GET /api/v1/namespaces/{name}`.
pub(crate) async fn get_namespace(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Response> {
    get_object(&shared, Kind::Namespace, "", &name)
}

fn get_object(shared: &Shared, kind: Kind, namespace: &str, name: &str) -> Result<Response> {
    let object = shared.store().get(kind, namespace, name).cloned();
    let object = object.ok_or_else(|| ApiError::not_found(kind.resource(), name))?;
    Ok(json_response(StatusCode::OK, &object, &[]))
}

/// `GET /api/v1/namespaces/{namespace}/{resource}`: a list, or a watch with `watch=true`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    list_or_watch(shared, kind, Some(namespace), Query::from_raw(raw))
}

/// `GET /api/v1/{resource}`: across all namespaces (or the namespaces themselves).
pub(crate) async fn list_cluster(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let kind = kind_of(&resource)?;
    list_or_watch(shared, kind, None, Query::from_raw(raw))
}

fn list_or_watch(
    shared: Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    query: Query,
) -> Result<Response> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), kind)?;
    if query.flag("watch")? {
        return watch::watch(shared, kind, namespace, labels, fields, &query);
    }
    let store = shared.store();
    let items: Vec<Value> = store
        .list(kind, namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|mut o| {
            // Items of a list carry no kind or apiVersion, as the real server sends them.
            if let Value::Object(map) = &mut o {
                map.remove("kind");
                map.remove("apiVersion");
            }
            o
        })
        .collect();
    let list = json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

/// `PUT /api/v1/namespaces/{namespace}/{resource}/{name}`.
pub(crate) async fn replace(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    let query = Query::from_raw(raw);
    let body = json_body(&body)?;
    let done = ops::replace(&shared, kind, &namespace, &name, &body, query.validation()?)?;
    Ok(written(StatusCode::OK, done))
}

/// `PATCH /api/v1/namespaces/{namespace}/{resource}/{name}` (merge and strategic merge).
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    let query = Query::from_raw(raw);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media != "application/merge-patch+json" && media != "application/strategic-merge-patch+json"
    {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let body = json_body(&body)?;
    let done = ops::merge_patch(&shared, kind, &namespace, &name, &body, query.validation()?)?;
    Ok(written(StatusCode::OK, done))
}

/// `DELETE /api/v1/namespaces/{namespace}/{resource}/{name}`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    delete_object(&shared, kind, &namespace, &name, raw, &body)
}

/// `DELETE /api/v1/namespaces/{name}`.
pub(crate) async fn delete_namespace(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    delete_object(&shared, Kind::Namespace, "", &name, raw, &body)
}

fn delete_object(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    name: &str,
    raw: Option<String>,
    body: &Bytes,
) -> Result<Response> {
    let query = Query::from_raw(raw);
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        Some(json_body(body)?)
    };
    let options = DeleteOptions::read(body.as_ref(), &query.0)?;
    let answer = ops::delete(shared, kind, namespace, name, &options)?;
    Ok(json_response(StatusCode::OK, &answer, &[]))
}

/// `DELETE /api/v1/namespaces/{namespace}/{resource}`: every matching object; the answer is
/// the list of what was deleted.
pub(crate) async fn delete_collection(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    let query = Query::from_raw(raw);
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), kind)?;
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        Some(json_body(&body)?)
    };
    let options = DeleteOptions::read(body.as_ref(), &query.0)?;
    let targets: Vec<Value> = shared
        .store()
        .list(kind, Some(&namespace))
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    let mut items = Vec::new();
    for target in targets {
        let name = ops::meta_str(&target, "name");
        if let Ok(answer) = ops::delete(&shared, kind, &namespace, &name, &options) {
            items.push(if answer.get("kind") == Some(&json!("Status")) {
                target
            } else {
                answer
            });
        }
    }
    let list = json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": shared.store().resource_version().to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

/// `GET …/{name}/status`: the object, as the status subresource returns it.
pub(crate) async fn get_status(
    State(shared): State<Arc<Shared>>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
) -> Result<Response> {
    let kind = namespaced(&resource)?;
    get_object(&shared, kind, &namespace, &name)
}

/// `POST …/pods/{name}/eviction`: an API-initiated eviction (`policy/v1` `Eviction`), which
/// deletes the pod gracefully (no disruption budgets exist in the fake).
pub(crate) async fn evict(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&body)?;
    // The group, version and kind default to the endpoint's when the body has none.
    let version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("policy/v1");
    if version != "policy/v1" && version != "policy/v1beta1" {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({version}) does not match the expected API version (policy/v1)"
        )));
    }
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "Eviction in version \"v1\" cannot be handled as a Eviction: {why}"
        ))
    };
    let typed: k8s_openapi::api::policy::v1::Eviction =
        serde_json::from_value(body.clone()).map_err(|e| cannot(e.to_string()))?;
    let written = serde_json::to_value(&typed).map_err(|e| cannot(e.to_string()))?;
    let mut unknown = Vec::new();
    crate::validate::dropped_fields(&body, &written, "", &mut unknown);
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(cannot(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = DeleteOptions::read(body.get("deleteOptions"), &[])?;
    ops::delete(&shared, Kind::Pod, &namespace, &name, &options)?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(StatusCode::CREATED, &status, &[]))
}
