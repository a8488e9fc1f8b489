//! The routes of the core/v1 API the fake serves, and the few discovery endpoints clients
//! call first (`/version`, `/api`, `/api/v1`).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{crud, gate, log, stream};
use crate::kind::Kind;
use crate::shared::Shared;
use crate::status::ApiError;

/// The fake API server's router; every route passes the gate.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let namespaced = "/api/v1/namespaces/{namespace}";
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/api", get(api_versions))
        .route("/api/v1", get(api_resources))
        .route(
            "/api/v1/{resource}",
            get(crud::list_cluster).post(crud::create_cluster),
        )
        .route(
            namespaced,
            get(crud::get_namespace).delete(crud::delete_namespace),
        )
        .route(
            &format!("{namespaced}/{{resource}}"),
            get(crud::list)
                .post(crud::create)
                .delete(crud::delete_collection),
        )
        .route(
            &format!("{namespaced}/{{resource}}/{{name}}"),
            get(crud::get)
                .put(crud::replace)
                .patch(crud::patch)
                .delete(crud::delete),
        )
        .route(&format!("{namespaced}/pods/{{name}}/log"), get(log::log))
        .route(
            &format!("{namespaced}/pods/{{name}}/exec"),
            get(stream::exec).post(stream::exec),
        )
        .route(
            &format!("{namespaced}/pods/{{name}}/attach"),
            get(stream::attach).post(stream::attach),
        )
        .route(
            &format!("{namespaced}/pods/{{name}}/eviction"),
            post(crud::evict),
        )
        .route(
            &format!("{namespaced}/{{resource}}/{{name}}/status"),
            get(crud::get_status),
        )
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            gate::gate,
        ))
        .with_state(shared)
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Response {
    let body = json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-runnel-fake",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"
    });
    crud::json_response(StatusCode::OK, &body, &[])
}

async fn api_versions() -> Response {
    let body = json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]});
    crud::json_response(StatusCode::OK, &body, &[])
}

async fn api_resources() -> Response {
    let resources: Vec<Value> = Kind::ALL
        .iter()
        .map(|kind| {
            json!({
                "name": kind.resource(), "singularName": kind.name().to_lowercase(), "namespaced": kind.namespaced(),
                "kind": kind.name(), "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            })
        })
        .chain(["pods/log", "pods/exec", "pods/attach", "pods/status"].iter().map(|sub| {
            json!({"name": sub, "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]})
        }))
        .collect();
    let body = json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources});
    crud::json_response(StatusCode::OK, &body, &[]).into_response()
}
