//! The handlers. Those that parse or check schemas (or read them back, which parses on a
//! cache miss) run their work through [`off_workers`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use outbox_core::compat::{CompatibilityMode, CompatibilityReport, Problem, check_compatibility};
use outbox_core::registry::{RegisteredSchema, SchemaStore};
use outbox_core::{Error, Schema};
use serde_json::{Value as Json, json};

use super::errors::{ApiError, reply};
use super::{Api, off_workers};

type ApiResult = Result<Response, ApiError>;
type Shared<S> = State<Arc<Api<S>>>;
/// Query parameters, read leniently as Confluent's server does (unknown ones ignored).
type Params = Query<Vec<(String, String)>>;

fn ok(body: &Json) -> Response {
    reply(StatusCode::OK, body)
}

/// A boolean query parameter as Confluent's server (JAX-RS, `Boolean.valueOf`) reads it:
/// `true` in any letter case is true; anything else, or no value, is false.
fn flag(params: &[(String, String)], name: &str) -> bool {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
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

/// The `schema` field of a request body, parsed. Schema references are refused (42201):
/// the embedded registry does not resolve them, and ignoring them would accept a schema that
/// names types it does not define.
fn schema_from_body(body: &Bytes) -> Result<Schema, ApiError> {
    let json = json_body(body)?;
    if let Some(kind) = json.get("schemaType").and_then(Json::as_str)
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(ApiError::invalid_schema(&format!(
            "schemaType {kind} is not supported (AVRO only)"
        )));
    }
    if json
        .get("references")
        .and_then(Json::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(ApiError::invalid_schema(
            "schema references are not supported by this registry",
        ));
    }
    let text = json
        .get("schema")
        .and_then(Json::as_str)
        .ok_or_else(|| ApiError::invalid_schema("the body has no \"schema\" string"))?;
    Ok(Schema::parse_str(text)?)
}

/// The longest subject a write accepts: the width of the subject columns (MySQL
/// `VARCHAR(255)`).
const MAX_SUBJECT_BYTES: usize = 255;

/// Refuses, for a write, a subject Confluent refuses (empty, or with control characters) or
/// one the tables cannot hold (42208).
fn valid_subject(subject: &str) -> Result<(), ApiError> {
    if !storable(subject) {
        let shown: String = subject.chars().take(40).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42208,
            format!(
                "The specified subject '{}' is not valid (1 to {MAX_SUBJECT_BYTES} bytes, no control characters).",
                shown.escape_default()
            ),
        ));
    }
    Ok(())
}

/// Whether a write could have stored `subject`. Reads of any other subject answer as for an
/// absent one without asking the database, which may fail on it (PostgreSQL text cannot
/// hold a NUL: the query would be a 500).
fn storable(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_BYTES
        && !subject.chars().any(char::is_control)
}

/// 40401 for a subject no write accepts (see [`storable`]).
fn existing_subject(subject: &str) -> Result<(), ApiError> {
    if storable(subject) {
        return Ok(());
    }
    Err(Error::SubjectNotFound {
        subject: subject.to_owned(),
    }
    .into())
}

/// `latest` (or -1) or a version number in 1..=2^31-1.
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
                "The specified version '{}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
                text.chars().take(40).collect::<String>()
            ),
        )),
    }
}

fn parse_id(text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, 40403, "Schema not found"))
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

fn version_json(r: &RegisteredSchema) -> Json {
    json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema.canonical_json()})
}

fn schema_value(schema: &Schema) -> Json {
    serde_json::from_str(schema.canonical_json()).unwrap_or(Json::Null)
}

pub(super) async fn subjects<S: SchemaStore + 'static>(State(api): Shared<S>) -> ApiResult {
    Ok(ok(&json!(api.registry.subjects().await?)))
}

pub(super) async fn versions<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    existing_subject(&subject)?;
    let versions = if flag(&params, "deleted") {
        let states = api.registry.store().version_states(&subject).await?;
        states.iter().map(|s| s.version).collect()
    } else {
        api.registry.store().version_numbers(&subject).await?
    };
    if versions.is_empty() {
        return Err(Error::SubjectNotFound { subject }.into());
    }
    Ok(ok(&json!(versions)))
}

pub(super) async fn version<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let version = parse_version(&version)?;
    existing_subject(&subject)?;
    off_workers(&api, move |api| async move {
        let r = api.registry.version(&subject, version).await?;
        Ok(ok(&version_json(&r)))
    })
    .await
}

pub(super) async fn version_schema<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let version = parse_version(&version)?;
    existing_subject(&subject)?;
    off_workers(&api, move |api| async move {
        let r = api.registry.version(&subject, version).await?;
        Ok(ok(&schema_value(&r.schema)))
    })
    .await
}

pub(super) async fn register<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    valid_subject(&subject)?;
    off_workers(&api, move |api| async move {
        let schema = schema_from_body(&body)?;
        // A schema that is already registered is answered without a credential: serializers
        // "register" on start-up and expect the id.
        if let Some(existing) = api.registry.lookup(&subject, &schema).await? {
            return Ok(ok(&json!({"id": existing.id})));
        }
        api.authorize_write(&headers, Some(&subject))?;
        let registered = api.registry.register(&subject, &schema).await?;
        Ok(ok(&json!({"id": registered.id})))
    })
    .await
}

pub(super) async fn lookup<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    off_workers(&api, move |api| async move {
        let schema = schema_from_body(&body)?;
        existing_subject(&subject)?;
        if let Some(r) = api.registry.lookup(&subject, &schema).await? {
            return Ok(ok(&version_json(&r)));
        }
        if api
            .registry
            .store()
            .version_numbers(&subject)
            .await?
            .is_empty()
        {
            return Err(Error::SubjectNotFound { subject }.into());
        }
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            "Schema not found",
        ))
    })
    .await
}

pub(super) async fn schema_types() -> Response {
    ok(&json!(["AVRO"]))
}

pub(super) async fn schema_by_id<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    off_workers(&api, move |api| async move {
        let schema = api.registry.schema_by_id(id).await?;
        Ok(ok(&json!({"schema": schema.canonical_json()})))
    })
    .await
}

pub(super) async fn raw_schema_by_id<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    off_workers(&api, move |api| async move {
        let schema = api.registry.schema_by_id(id).await?;
        Ok(ok(&schema_value(&schema)))
    })
    .await
}

/// Every live (subject, version) holding schema `id` (one query, not a scan).
async fn holders<S: SchemaStore + 'static>(
    api: &Api<S>,
    id: u32,
) -> Result<Vec<(String, u32)>, ApiError> {
    api.registry.schema_by_id(id).await?;
    Ok(api.registry.store().holders(id).await?)
}

pub(super) async fn id_versions<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    off_workers(&api, move |api| async move {
        let found: Vec<Json> = holders(&api, id)
            .await?
            .into_iter()
            .map(|(subject, version)| json!({"subject": subject, "version": version}))
            .collect();
        Ok(ok(&Json::Array(found)))
    })
    .await
}

pub(super) async fn id_subjects<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    off_workers(&api, move |api| async move {
        let mut subjects: Vec<String> = holders(&api, id).await?.into_iter().map(|h| h.0).collect();
        subjects.dedup();
        Ok(ok(&json!(subjects)))
    })
    .await
}

/// One incompatibility as Confluent prints it in `messages` and 409 details.
pub(super) fn describe_problem(p: &Problem) -> String {
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
}

fn compatibility_reply(report: &CompatibilityReport, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": report.is_compatible()});
    if verbose {
        let messages: Vec<String> = report.problems.iter().map(describe_problem).collect();
        body["messages"] = json!(messages);
    }
    ok(&body)
}

pub(super) async fn compatibility_all<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let verbose = flag(&params, "verbose");
    off_workers(&api, move |api| async move {
        let schema = schema_from_body(&body)?;
        let report = if storable(&subject) {
            api.registry.check(&subject, &schema).await?
        } else {
            check_compatibility(global_mode(&api).await?, &schema, &[])
        };
        Ok(compatibility_reply(&report, verbose))
    })
    .await
}

pub(super) async fn compatibility_one<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let verbose = flag(&params, "verbose");
    let version = parse_version(&version)?;
    off_workers(&api, move |api| async move {
        let schema = schema_from_body(&body)?;
        existing_subject(&subject)?;
        let against = api.registry.version(&subject, version).await?;
        let mode = api.registry.effective_mode(&subject).await?;
        let report = check_compatibility(mode, &schema, std::slice::from_ref(&against.schema));
        Ok(compatibility_reply(&report, verbose))
    })
    .await
}

async fn global_mode<S: SchemaStore>(api: &Api<S>) -> Result<CompatibilityMode, ApiError> {
    Ok(api
        .registry
        .store()
        .compatibility(None)
        .await?
        .unwrap_or(api.registry.default_mode()))
}

pub(super) async fn global_config<S: SchemaStore + 'static>(State(api): Shared<S>) -> ApiResult {
    Ok(ok(
        &json!({"compatibilityLevel": global_mode(&api).await?.as_str()}),
    ))
}

pub(super) async fn set_global_config<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    api.authorize_write(&headers, None)?;
    let mode = mode_from_body(&body)?;
    api.registry.set_compatibility(None, Some(mode)).await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

pub(super) async fn delete_global_config<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    headers: HeaderMap,
) -> ApiResult {
    api.authorize_write(&headers, None)?;
    let previous = global_mode(&api).await?;
    api.registry.set_compatibility(None, None).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

fn no_subject_config(subject: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        40408,
        format!("Subject '{subject}' does not have subject-level compatibility configured"),
    )
}

pub(super) async fn subject_config<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let configured = if storable(&subject) {
        api.registry.store().compatibility(Some(&subject)).await?
    } else {
        None
    };
    match configured {
        Some(mode) => Ok(ok(&json!({"compatibilityLevel": mode.as_str()}))),
        None if flag(&params, "defaultToGlobal") => Ok(ok(
            &json!({"compatibilityLevel": global_mode(&api).await?.as_str()}),
        )),
        None => Err(no_subject_config(&subject)),
    }
}

pub(super) async fn set_subject_config<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    api.authorize_write(&headers, Some(&subject))?;
    valid_subject(&subject)?;
    let mode = mode_from_body(&body)?;
    api.registry
        .set_compatibility(Some(&subject), Some(mode))
        .await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

pub(super) async fn delete_subject_config<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    api.authorize_write(&headers, Some(&subject))?;
    if !storable(&subject) {
        return Err(no_subject_config(&subject));
    }
    let Some(previous) = api.registry.store().compatibility(Some(&subject)).await? else {
        return Err(no_subject_config(&subject));
    };
    api.registry.set_compatibility(Some(&subject), None).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

pub(super) async fn delete_subject<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path(subject): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    api.authorize_write(&headers, Some(&subject))?;
    existing_subject(&subject)?;
    let permanent = flag(&params, "permanent");
    let deleted = api.registry.delete_subject(&subject, permanent).await?;
    Ok(ok(&json!(deleted)))
}

pub(super) async fn delete_version<S: SchemaStore + 'static>(
    State(api): Shared<S>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult {
    api.authorize_write(&headers, Some(&subject))?;
    let version = parse_version(&version)?;
    existing_subject(&subject)?;
    let permanent = flag(&params, "permanent");
    let deleted = api
        .registry
        .delete_version(&subject, version, permanent)
        .await?;
    Ok(ok(&json!(deleted)))
}

/// Confluent's mode: `READWRITE` when this API accepts writes, `READONLY` otherwise.
pub(super) async fn mode<S: SchemaStore + 'static>(State(api): Shared<S>) -> Response {
    let mode = if api.options.writable {
        "READWRITE"
    } else {
        "READONLY"
    };
    ok(&json!({ "mode": mode }))
}
