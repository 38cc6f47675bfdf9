//! The embedded schema registry served over the Confluent Schema Registry REST API, so any
//! Confluent-aware consumer (Java, Python, Go, .NET) decodes the outbox's records with it.
//!
//! Endpoints: `GET /subjects`, `GET /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{v|latest}` (and `/schema`), `POST /subjects/{s}/versions`
//! (register), `POST /subjects/{s}` (look up), `GET /schemas/ids/{id}` (and `/schema`,
//! `/versions`), `POST /compatibility/subjects/{s}/versions[/{v|latest}]` (`?verbose=true`),
//! `GET|PUT|DELETE /config[/{s}]`. Errors carry Confluent's codes: 40401 subject, 40402
//! version, 40403 schema, 40408 subject compatibility not found, 40901 incompatible (HTTP
//! 409), 42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level,
//! 42205 read-only, 50001 store failure.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use outbox_core::compat::{CompatibilityMode, CompatibilityReport, check_compatibility};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::{Error, Schema};
use serde_json::{Value as Json, json};

/// Confluent's response content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A REST error with Confluent's code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn read_only() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42205,
            "The registry is in read-only mode",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::SubjectNotFound { .. } => (StatusCode::NOT_FOUND, 40401),
            Error::VersionNotFound { .. } => (StatusCode::NOT_FOUND, 40402),
            Error::SchemaNotFound { .. } => (StatusCode::NOT_FOUND, 40403),
            Error::IncompatibleSchema { .. } => (StatusCode::CONFLICT, 40901),
            Error::InvalidSchema { .. } | Error::LintFailed { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, 42201)
            }
            Error::InvalidConfig { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: &Json) -> Response {
    reply(StatusCode::OK, body)
}

type ApiResult = Result<Response, ApiError>;

struct Api<S> {
    registry: Registry<S>,
    read_only: bool,
}

type Shared<S> = State<Arc<Api<S>>>;

/// The REST API over `registry`; with `read_only`, registration and configuration changes
/// are refused (for deployments that register only at application start-up).
pub fn router<S: SchemaStore + 'static>(registry: Registry<S>, read_only: bool) -> Router {
    Router::new()
        .route("/subjects", get(subjects::<S>))
        .route("/subjects/{subject}", post(lookup::<S>))
        .route(
            "/subjects/{subject}/versions",
            get(versions::<S>).post(register::<S>),
        )
        .route("/subjects/{subject}/versions/{version}", get(version::<S>))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema::<S>),
        )
        .route("/schemas/ids/{id}", get(schema_by_id::<S>))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id::<S>))
        .route("/schemas/ids/{id}/versions", get(id_versions::<S>))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all::<S>),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one::<S>),
        )
        .route(
            "/config",
            get(global_config::<S>)
                .put(set_global_config::<S>)
                .delete(delete_global_config::<S>),
        )
        .route(
            "/config/{subject}",
            get(subject_config::<S>)
                .put(set_subject_config::<S>)
                .delete(delete_subject_config::<S>),
        )
        .with_state(Arc::new(Api {
            registry,
            read_only,
        }))
}

/// Serves the API on `listener` until `shutdown` completes.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve<S: SchemaStore + 'static>(
    listener: tokio::net::TcpListener,
    registry: Registry<S>,
    read_only: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, read_only, "serving the schema registry REST API");
    }
    axum::serve(listener, router(registry, read_only))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A request body as JSON; a malformed one is a 400, as Confluent answers.
fn json_body(body: &Bytes) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            400,
            format!("malformed JSON body: {e}"),
        )
    })
}

/// The `schema` field of a request body, parsed.
fn schema_from_body(body: &Bytes) -> Result<Schema, ApiError> {
    let json = json_body(body)?;
    if let Some(kind) = json.get("schemaType").and_then(Json::as_str)
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: schemaType {kind} is not supported (AVRO only)"),
        ));
    }
    if json
        .get("references")
        .and_then(Json::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Invalid schema: schema references are not supported",
        ));
    }
    let text = json.get("schema").and_then(Json::as_str).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Invalid schema: the body has no \"schema\" string",
        )
    })?;
    Ok(Schema::parse_str(text)?)
}

/// `latest` or a version number in 1..=2^31-1.
fn parse_version(text: &str) -> Result<Option<u32>, ApiError> {
    if text == "latest" || text == "-1" {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(v) if (1..=i32::MAX as u32).contains(&v) => Ok(Some(v)),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

fn parse_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {text} not found"),
        )
    })
}

fn mode_from_body(body: &Bytes) -> Result<CompatibilityMode, ApiError> {
    let json = json_body(body)?;
    let level = json
        .get("compatibility")
        .or_else(|| json.get("compatibilityLevel"))
        .and_then(Json::as_str);
    level.and_then(|l| l.parse().ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            "Invalid compatibility level",
        )
    })
}

async fn subjects<S: SchemaStore>(State(api): Shared<S>) -> ApiResult {
    Ok(ok(&json!(api.registry.subjects().await?)))
}

async fn versions<S: SchemaStore>(State(api): Shared<S>, Path(subject): Path<String>) -> ApiResult {
    let versions = api.registry.store().versions(&subject).await?;
    if versions.is_empty() {
        return Err(Error::SubjectNotFound { subject }.into());
    }
    Ok(ok(&json!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>()
    )))
}

async fn registered<S: SchemaStore>(
    api: &Api<S>,
    subject: &str,
    version: &str,
) -> Result<outbox_core::registry::RegisteredSchema, ApiError> {
    Ok(api
        .registry
        .version(subject, parse_version(version)?)
        .await?)
}

async fn version<S: SchemaStore>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let r = registered(&api, &subject, &version).await?;
    Ok(ok(
        &json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema.canonical_json()}),
    ))
}

async fn version_schema<S: SchemaStore>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let r = registered(&api, &subject, &version).await?;
    Ok(reply(
        StatusCode::OK,
        &serde_json::from_str(r.schema.canonical_json()).unwrap_or(Json::Null),
    ))
}

async fn register<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_from_body(&body)?;
    if api.read_only {
        // A schema that is already registered is still answered, as the writers expect.
        if let Some(existing) = api.registry.lookup(&subject, &schema).await? {
            return Ok(ok(&json!({"id": existing.id})));
        }
        return Err(ApiError::read_only());
    }
    let registered = api.registry.register(&subject, &schema).await?;
    Ok(ok(&json!({"id": registered.id})))
}

async fn lookup<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_from_body(&body)?;
    if api.registry.store().versions(&subject).await?.is_empty() {
        return Err(Error::SubjectNotFound { subject }.into());
    }
    match api.registry.lookup(&subject, &schema).await? {
        Some(r) => Ok(ok(
            &json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema.canonical_json()}),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            "Schema not found",
        )),
    }
}

async fn schema_by_id<S: SchemaStore>(State(api): Shared<S>, Path(id): Path<String>) -> ApiResult {
    let schema = api.registry.schema_by_id(parse_id(&id)?).await?;
    Ok(ok(&json!({"schema": schema.canonical_json()})))
}

async fn raw_schema_by_id<S: SchemaStore>(
    State(api): Shared<S>,
    Path(id): Path<String>,
) -> ApiResult {
    let schema = api.registry.schema_by_id(parse_id(&id)?).await?;
    Ok(reply(
        StatusCode::OK,
        &serde_json::from_str(schema.canonical_json()).unwrap_or(Json::Null),
    ))
}

async fn id_versions<S: SchemaStore>(State(api): Shared<S>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    api.registry.schema_by_id(id).await?;
    let mut found = Vec::new();
    for subject in api.registry.subjects().await? {
        for v in api.registry.store().versions(&subject).await? {
            if v.id == id {
                found.push(json!({"subject": v.subject, "version": v.version}));
            }
        }
    }
    Ok(ok(&Json::Array(found)))
}

#[derive(serde::Deserialize)]
struct Verbose {
    #[serde(default)]
    verbose: bool,
}

fn compatibility_reply(report: &CompatibilityReport, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": report.is_compatible()});
    if verbose {
        let messages: Vec<String> = report
            .problems
            .iter()
            .map(|p| {
                let i = &p.incompatibility;
                format!(
                    "{{errorType:'{}', description:'{} at {} ({} version index {})', additionalInfo:'{}'}}",
                    i.kind,
                    i.kind,
                    i.location,
                    p.direction.as_str(),
                    p.existing,
                    i.message
                )
            })
            .collect();
        body["messages"] = json!(messages);
    }
    ok(&body)
}

async fn compatibility_all<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(q): Query<Verbose>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_from_body(&body)?;
    let report = api.registry.check(&subject, &schema).await?;
    Ok(compatibility_reply(&report, q.verbose))
}

async fn compatibility_one<S: SchemaStore>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<Verbose>,
    body: Bytes,
) -> ApiResult {
    let schema = schema_from_body(&body)?;
    let against = registered(&api, &subject, &version).await?;
    let mode = api.registry.effective_mode(&subject).await?;
    let report = check_compatibility(mode, &schema, std::slice::from_ref(&against.schema));
    Ok(compatibility_reply(&report, q.verbose))
}

async fn global_mode<S: SchemaStore>(api: &Api<S>) -> Result<CompatibilityMode, ApiError> {
    Ok(api
        .registry
        .store()
        .compatibility(None)
        .await?
        .unwrap_or(api.registry.default_mode()))
}

async fn global_config<S: SchemaStore>(State(api): Shared<S>) -> ApiResult {
    Ok(ok(
        &json!({"compatibilityLevel": global_mode(&api).await?.as_str()}),
    ))
}

async fn set_global_config<S: SchemaStore>(State(api): Shared<S>, body: Bytes) -> ApiResult {
    let mode = mode_from_body(&body)?;
    if api.read_only {
        return Err(ApiError::read_only());
    }
    api.registry.set_compatibility(None, Some(mode)).await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

async fn delete_global_config<S: SchemaStore>(State(api): Shared<S>) -> ApiResult {
    if api.read_only {
        return Err(ApiError::read_only());
    }
    let previous = global_mode(&api).await?;
    api.registry.set_compatibility(None, None).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

#[derive(serde::Deserialize)]
struct DefaultToGlobal {
    #[serde(default, rename = "defaultToGlobal")]
    default_to_global: bool,
}

fn no_subject_config(subject: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        40408,
        format!("Subject '{subject}' does not have subject-level compatibility configured"),
    )
}

async fn subject_config<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(q): Query<DefaultToGlobal>,
) -> ApiResult {
    match api.registry.store().compatibility(Some(&subject)).await? {
        Some(mode) => Ok(ok(&json!({"compatibilityLevel": mode.as_str()}))),
        None if q.default_to_global => Ok(ok(
            &json!({"compatibilityLevel": global_mode(&api).await?.as_str()}),
        )),
        None => Err(no_subject_config(&subject)),
    }
}

async fn set_subject_config<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mode = mode_from_body(&body)?;
    if api.read_only {
        return Err(ApiError::read_only());
    }
    api.registry
        .set_compatibility(Some(&subject), Some(mode))
        .await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

async fn delete_subject_config<S: SchemaStore>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
) -> ApiResult {
    if api.read_only {
        return Err(ApiError::read_only());
    }
    let Some(previous) = api.registry.store().compatibility(Some(&subject)).await? else {
        return Err(no_subject_config(&subject));
    };
    api.registry.set_compatibility(Some(&subject), None).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}
