//! What every request passes before a handler: it is recorded (method, path, query, JSON body,
//! answer status), authenticated (bearer token, 401) and authorised (forbidden namespaces,
//! 403 worded as RBAC words it).

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::listener::Peer;
use crate::options::Fault;
use crate::shared::{RecordedRequest, Shared, query_pairs};
use crate::status::ApiError;

/// Bodies above this size are refused, as the real server's 3 MiB request limit does.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The middleware: record, authenticate, authorise, then run the handler.
pub(crate) async fn gate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let response = ApiError::new_too_large().into_response();
            shared.record(RecordedRequest {
                method,
                path,
                query,
                body: None,
                status: 413,
            });
            return response;
        }
    };
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let peer = parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .and_then(|info| info.0.user.clone());
    let refusal = refuse(
        &shared,
        peer.as_deref(),
        &parts.method,
        &parts.headers,
        &path,
        &query,
    );
    let response = match refusal {
        Some(error) => error.into_response(),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    shared.record(RecordedRequest {
        method,
        path,
        query,
        body: json,
        status: response.status().as_u16(),
    });
    response
}

/// Why a request is refused, if it is. A verified client certificate authenticates as its
/// common name; otherwise the bearer token must match.
fn refuse(
    shared: &Shared,
    certificate_user: Option<&str>,
    method: &Method,
    headers: &axum::http::HeaderMap,
    path: &str,
    query: &str,
) -> Option<ApiError> {
    let control = shared.control();
    if control.fault == Fault::Unauthorized {
        return Some(ApiError::unauthorized());
    }
    if let Some(token) = &control.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if given != Some(token.as_str()) && certificate_user.is_none() {
            return Some(ApiError::unauthorized());
        }
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["api", "v1", "namespaces", namespace, resource, rest @ ..] = segments.as_slice()
        && control.forbidden.contains(*namespace)
    {
        let watch = query_pairs(query)
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        let (verb, resource, name) = match (method.as_str(), rest) {
            (_, [name, sub @ ("exec" | "attach" | "portforward")]) => {
                ("create", format!("{resource}/{sub}"), *name)
            }
            ("GET", [name, sub]) => ("get", format!("{resource}/{sub}"), *name),
            ("GET", [name]) => ("get", (*resource).to_owned(), *name),
            ("GET", []) if watch => ("watch", (*resource).to_owned(), ""),
            ("GET", _) => ("list", (*resource).to_owned(), ""),
            ("POST", [name, sub]) => ("create", format!("{resource}/{sub}"), *name),
            ("POST", _) => ("create", (*resource).to_owned(), ""),
            ("PUT", [name, ..]) => ("update", (*resource).to_owned(), *name),
            ("PATCH", [name, ..]) => ("patch", (*resource).to_owned(), *name),
            ("DELETE", [name, ..]) => ("delete", (*resource).to_owned(), *name),
            ("DELETE", _) => ("deletecollection", (*resource).to_owned(), ""),
            _ => ("get", (*resource).to_owned(), ""),
        };
        return Some(ApiError::forbidden(
            certificate_user.unwrap_or(&shared.options.user),
            verb,
            &resource,
            name,
            namespace,
        ));
    }
    None
}
