//! Reading a request as Confluent's server does: boolean query flags, JSON bodies, the schema
//! and compatibility level in them, subjects, versions and ids, each refused with Confluent's
//! status and error code.

use axum::body::Bytes;
use axum::http::StatusCode;
use outbox_core::compat::CompatibilityMode;
use outbox_core::{Error, Schema};
use serde_json::Value as Json;

use super::errors::ApiError;

/// A boolean query parameter as Confluent's server (JAX-RS, `Boolean.valueOf`) reads it:
/// `true` in any letter case is true; anything else, or no value, is false.
pub(super) fn flag(params: &[(String, String)], name: &str) -> bool {
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

/// The `schema` field of a request body, parsed. A `schemaType` other than AVRO (or not a
/// string) and schema references are refused (42201): the embedded registry does not resolve
/// references, and ignoring them would accept a schema that names types it does not define.
pub(super) fn schema_from_body(body: &Bytes) -> Result<Schema, ApiError> {
    let json = json_body(body)?;
    match json.get("schemaType") {
        None | Some(Json::Null) => {}
        Some(Json::String(kind)) if kind.eq_ignore_ascii_case("AVRO") => {}
        Some(Json::String(kind)) => {
            return Err(ApiError::invalid_schema(&format!(
                "schemaType {} is not supported (AVRO only)",
                kind.chars().take(40).collect::<String>().escape_default()
            )));
        }
        Some(_) => {
            return Err(ApiError::invalid_schema(
                "schemaType must be a string (AVRO only)",
            ));
        }
    }
    match json.get("references") {
        None | Some(Json::Null) => {}
        Some(Json::Array(r)) if r.is_empty() => {}
        Some(Json::Array(_)) => {
            return Err(ApiError::invalid_schema(
                "schema references are not supported by this registry",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid_schema(
                "references must be an array, and schema references are not supported by this registry",
            ));
        }
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
pub(super) fn valid_subject(subject: &str) -> Result<(), ApiError> {
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
pub(super) fn storable(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_BYTES
        && !subject.chars().any(char::is_control)
}

/// 40401 for a subject no write accepts (see [`storable`]).
pub(super) fn existing_subject(subject: &str) -> Result<(), ApiError> {
    if storable(subject) {
        return Ok(());
    }
    Err(Error::SubjectNotFound {
        subject: subject.to_owned(),
    }
    .into())
}

/// `latest` (or -1) or a version number in 1..=2^31-1.
pub(super) fn parse_version(text: &str) -> Result<Option<u32>, ApiError> {
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

pub(super) fn parse_id(text: &str) -> Result<outbox_core::SchemaId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, 40403, "Schema not found"))
}

pub(super) fn mode_from_body(body: &Bytes) -> Result<CompatibilityMode, ApiError> {
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
