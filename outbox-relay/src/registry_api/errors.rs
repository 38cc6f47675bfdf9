//! Errors in Confluent's shape, `{"error_code": .., "message": ..}`, with Confluent's codes:
//! from the registry engine, from the HTTP layers (404 unknown route, 405, 408, 413, 415), and
//! the generic 500 (whose detail goes to the log, never to the client).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use outbox_core::Error;
use serde_json::{Value as Json, json};

/// Confluent's response content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types the API accepts (with or without parameters such as `charset`).
const ACCEPTED_TYPES: [&str; 3] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
];

/// A REST error with Confluent's code.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: u32,
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn read_only(subject: Option<&str>) -> Self {
        let message = match subject {
            Some(s) => format!("Subject {s} is in read-only mode"),
            None => "The registry is in read-only mode".to_owned(),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, message)
    }

    pub(super) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 401, "Unauthorized")
    }

    /// A failure whose detail must not reach the client: logged, answered generically.
    pub(super) fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "schema registry API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            "Error in the backend data store",
        )
    }

    /// The answer to a request whose client is gone (timed out or disconnected): nobody
    /// reads it, but the work behind it stops.
    pub(super) fn abandoned() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, 408, "HTTP 408 Request Timeout")
    }

    pub(super) fn invalid_schema(reason: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {reason}"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::SubjectNotFound { subject } => Self::new(
                StatusCode::NOT_FOUND,
                40401,
                format!("Subject '{subject}' not found."),
            ),
            Error::VersionNotFound { version, .. } => Self::new(
                StatusCode::NOT_FOUND,
                40402,
                format!("Version {version} not found."),
            ),
            Error::SchemaNotFound { id } => Self::new(
                StatusCode::NOT_FOUND,
                40403,
                format!("Schema {id} not found"),
            ),
            Error::IncompatibleSchema {
                subject, problems, ..
            } => {
                let details: Vec<String> = problems
                    .iter()
                    .map(super::routes::describe_problem)
                    .collect();
                Self::new(
                    StatusCode::CONFLICT,
                    409,
                    format!(
                        "Schema being registered is incompatible with an earlier schema for \
                         subject \"{subject}\", details: [{}] (make the change compatible, or \
                         publish it to a new stream such as `{subject}.v2`)",
                        details.join(", ")
                    ),
                )
            }
            Error::InvalidSchema { reason } => Self::invalid_schema(reason),
            // A schema breaking a design rule the registry enforces (`lint = "deny"`).
            Error::LintFailed { .. } => Self::invalid_schema(&e.to_string()),
            Error::DeleteRefused {
                subject,
                version,
                refusal,
            } => {
                use outbox_core::DeleteRefusal::{InUse, NotSoftDeleted, SoftDeleted};
                let (status, code, message) = match (refusal, version) {
                    (SoftDeleted, None) => (
                        StatusCode::NOT_FOUND,
                        40404,
                        format!(
                            "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                        ),
                    ),
                    (NotSoftDeleted, None) => (
                        StatusCode::NOT_FOUND,
                        40405,
                        format!(
                            "Subject '{subject}' was not deleted first before being permanently deleted"
                        ),
                    ),
                    (SoftDeleted, Some(v)) => (
                        StatusCode::NOT_FOUND,
                        40406,
                        format!(
                            "Subject '{subject}' Version {v} was soft deleted.Set permanent=true to delete permanently"
                        ),
                    ),
                    (NotSoftDeleted, Some(v)) => (
                        StatusCode::NOT_FOUND,
                        40407,
                        format!(
                            "Subject '{subject}' Version {v} was not deleted first before being permanently deleted"
                        ),
                    ),
                    (InUse { .. } | _, _) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        42206,
                        format!("Cannot delete permanently: {refusal}"),
                    ),
                };
                Self::new(status, code, message)
            }
            Error::Unsupported { operation } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42205,
                format!("{operation} is not permitted by this registry"),
            ),
            Error::InvalidConfig { reason, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42203,
                format!("Invalid compatibility level: {reason}"),
            ),
            _ => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = reply(
            self.status,
            &json!({"error_code": self.code, "message": self.message}),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"outbox-registry\""),
            );
        }
        response
    }
}

/// A JSON answer with Confluent's content type.
pub(super) fn reply(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// Refuses a request with a body whose content type is none of the three the API speaks
/// (415), so a web page cannot post a form or `text/plain` to a registry on localhost.
pub(super) async fn require_json(request: Request, next: Next) -> Response {
    let has_body = matches!(*request.method(), Method::POST | Method::PUT);
    if has_body {
        let essence = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if !essence.is_some_and(|e| ACCEPTED_TYPES.contains(&e.as_str())) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                415,
                "HTTP 415 Unsupported Media Type",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Gives error answers made outside the handlers (unknown route, method not allowed, body
/// too large, timeout, malformed query) Confluent's JSON shape.
pub(super) async fn confluent_shape(response: Response) -> Response {
    let status = response.status();
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE.as_bytes());
    if ours || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut shaped = reply(
        status,
        &json!({"error_code": status.as_u16(), "message": message}),
    );
    if status.is_server_error() {
        shaped = ApiError::internal(&message).into_response();
    }
    // Keep headers such as `Allow` (405); the body and its type are replaced.
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (new_parts, body) = shaped.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    parts.status = new_parts.status;
    Response::from_parts(parts, Body::new(body))
}
