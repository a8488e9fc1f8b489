//! Errors as the real API server answers them: a `metav1.Status` JSON body with the reason and
//! code of `k8s.io/apimachinery/pkg/api/errors`, and the field errors of
//! `k8s.io/apimachinery/pkg/util/validation/field/errors.go` with their exact wording.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One failed request, answered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status (`Status.code`).
    pub code: u16,
    /// `Status.reason`: `NotFound`, `AlreadyExists`, `Invalid`, `BadRequest`, …
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the real server sends them.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, name: &str, kind: &str) -> Self {
        let mut details = Map::new();
        if !name.is_empty() {
            details.insert("name".into(), name.into());
        }
        details.insert("kind".into(), kind.into());
        self.details = Some(Value::Object(details));
        self
    }

    /// `pods "name" not found` (404).
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(name, resource)
    }

    /// `pods "name" already exists` (409).
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
        .with_details(name, resource)
    }

    /// An update against a stale `resourceVersion` (409 Conflict).
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
        .with_details(name, resource)
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A request without the right bearer token (401).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// RBAC said no (403), worded as the real authorizer's answer.
    pub fn forbidden(user: &str, verb: &str, resource: &str, name: &str, namespace: &str) -> Self {
        let object = if name.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource} \"{name}\"")
        };
        let mut message = format!(
            "{object} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"\""
        );
        if namespace.is_empty() {
            message.push_str(" at the cluster scope");
        } else {
            message.push_str(&format!(" in the namespace \"{namespace}\""));
        }
        let kind = resource.split('/').next().unwrap_or(resource);
        Self::new(403, "Forbidden", message).with_details(name, kind)
    }

    /// An admission plugin refused the object (403), e.g. a missing service account.
    pub fn forbidden_by_admission(resource: &str, name: &str, why: &str) -> Self {
        let object = if name.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource} \"{name}\"")
        };
        Self::new(403, "Forbidden", format!("{object} is forbidden: {why}"))
            .with_details(name, resource)
    }

    /// A watch from a resource version that is no longer kept (410).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// A verb the resource does not serve (405).
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// A patch type the fake does not implement (415).
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// A body above the request size limit (413).
    pub fn new_too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// A path the server does not serve (404 without details).
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// A server-side failure, e.g. the Docker engine refused (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The object failed validation (422), with one cause per field error.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let message = match errors {
            [] => format!("{kind} \"{name}\" is invalid"),
            [one] => format!("{kind} \"{name}\" is invalid: {one}"),
            many => {
                let all: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("{kind} \"{name}\" is invalid: [{}]", all.join(", "))
            }
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field}))
            .collect();
        let mut error = Self::new(422, "Invalid", message).with_details(name, kind);
        if let Some(Value::Object(details)) = error.details.as_mut() {
            details.insert("causes".into(), Value::Array(causes));
        }
        error
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let (Some(details), Value::Object(map)) = (&self.details, &mut status) {
            map.insert("details".into(), details.clone());
        }
        if let Value::Object(map) = &mut status {
            map.insert("code".into(), self.code.into());
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        let mut response = (code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// What is wrong with one field (`field.ErrorType`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldErrorKind {
    /// `Not found: "x"`.
    NotFound(Value),
    /// `Required value`.
    Required,
    /// `Duplicate value: "x"`.
    Duplicate(Value),
    /// `Invalid value: "x"`.
    Invalid(Value),
    /// `Unsupported value: "x": supported values: "a", "b"`.
    NotSupported(Value, Vec<&'static str>),
    /// `Forbidden`.
    Forbidden,
    /// `Too long: may not be more than N bytes`.
    TooLong(usize),
}

impl FieldErrorKind {
    fn cause(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate(_) => "FieldValueDuplicate",
            Self::Invalid(_) => "FieldValueInvalid",
            Self::NotSupported(..) => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong(_) => "FieldValueTooLong",
        }
    }
}

/// One validation error: the field path (`spec.containers[0].name`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The JSON path as the real server writes it.
    pub field: String,
    /// The error type and the offending value.
    pub kind: FieldErrorKind,
    /// The explanation after the value.
    pub detail: String,
}

impl FieldError {
    /// `Required value` at `field`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::make(field, FieldErrorKind::Required, detail)
    }

    /// `Invalid value` at `field`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::make(field, FieldErrorKind::Invalid(value.into()), detail)
    }

    /// `Duplicate value` at `field`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::make(field, FieldErrorKind::Duplicate(value.into()), "")
    }

    /// `Not found` at `field`.
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::make(field, FieldErrorKind::NotFound(value.into()), "")
    }

    /// `Unsupported value` at `field`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&'static str],
    ) -> Self {
        Self::make(
            field,
            FieldErrorKind::NotSupported(value.into(), supported.to_vec()),
            "",
        )
    }

    /// `Forbidden` at `field`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::make(field, FieldErrorKind::Forbidden, detail)
    }

    /// `Too long` at `field`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::make(field, FieldErrorKind::TooLong(max), "")
    }

    fn make(field: impl Into<String>, kind: FieldErrorKind, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind,
            detail: detail.into(),
        }
    }

    /// `ErrorBody()`: the message without the field path.
    pub fn body(&self) -> String {
        let mut body = match &self.kind {
            FieldErrorKind::Required => "Required value".to_owned(),
            FieldErrorKind::Forbidden => "Forbidden".to_owned(),
            FieldErrorKind::TooLong(max) => format!("Too long: may not be more than {max} bytes"),
            FieldErrorKind::NotFound(v) => format!("Not found: {}", go_value(v)),
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {}", go_value(v)),
            FieldErrorKind::Invalid(v) => format!("Invalid value: {}", go_value(v)),
            FieldErrorKind::NotSupported(v, supported) => {
                let quoted: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "Unsupported value: {}: supported values: {}",
                    go_value(v),
                    quoted.join(", ")
                )
            }
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A value as Go's `%q`/`%v` prints it in field errors: strings quoted, numbers bare.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ApiError, FieldError};

    #[test]
    fn invalid_status_has_real_wording_and_causes() {
        let errors = [
            FieldError::invalid(
                "metadata.name",
                "Bad_Name",
                "a lowercase RFC 1123 subdomain",
            ),
            FieldError::required("spec.containers", ""),
        ];
        let status = ApiError::invalid("Pod", "Bad_Name", &errors).to_status();
        assert_eq!(
            status["message"],
            "Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain, spec.containers: Required value]"
        );
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["details"]["causes"][1]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(status["details"]["kind"], "Pod");
    }

    #[test]
    fn not_found_status() {
        assert_eq!(
            ApiError::not_found("pods", "x").to_status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"pods"},"code":404})
        );
    }

    #[test]
    fn forbidden_wording() {
        let error = ApiError::forbidden("runnel", "create", "pods", "", "secret-ns");
        assert_eq!(
            error.message,
            "pods is forbidden: User \"runnel\" cannot create resource \"pods\" in API group \"\" in the namespace \"secret-ns\""
        );
    }
}
