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
use super::request::{
    existing_subject, flag, mode_from_body, parse_id, parse_version, schema_from_body, storable,
    valid_subject,
};
use super::{Api, off_workers};

type ApiResult = Result<Response, ApiError>;
type Shared<S> = State<Arc<Api<S>>>;
/// Query parameters, read leniently as Confluent's server does (unknown ones ignored).
type Params = Query<Vec<(String, String)>>;

fn ok(body: &Json) -> Response {
    reply(StatusCode::OK, body)
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
        // Parsing can outlast the request: let a 408 in between stop the work (see
        // `off_workers`) before anything is written.
        tokio::task::yield_now().await;
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
    id: outbox_core::SchemaId,
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
