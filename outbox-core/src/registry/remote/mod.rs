//! A remote Confluent-compatible schema registry as a [`SchemaStore`] (`https://` needs the
//! `registry-tls` feature): the writers register at start-up against it instead of the embedded
//! tables, and cache the ids, so publishing never does a network round trip afterwards.
//!
//! The HTTP client blocks (core has no async runtime); its calls run off the async runtime
//! (see [`RemoteSchemaStore`]), so awaiting them never stalls other tasks, and blocking callers
//! such as diesel drive the same futures with a blocking executor.

mod client;
mod config;
mod offload;

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::store::{RegisteredSchema, SchemaStore};
use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::{Error, Result, SchemaId};
use client::{Client, Method, Reply, segment};
pub use config::RemoteRegistryConfig;

/// A [`SchemaStore`] over a Confluent-compatible registry's REST API.
///
/// Each request blocks a thread for at most the configured timeout, never an async runtime's
/// worker: with the `tokio` feature (on through `outbox-sqlx`) and a tokio runtime current, it
/// runs on the runtime's blocking pool (`spawn_blocking`), also when called from inside
/// `spawn_blocking`; otherwise it runs on the calling thread, which must then be one allowed
/// to block (a plain thread, diesel's).
///
/// # Cancel safety
///
/// Dropping a future stops waiting, not the request in flight: a registration may still land.
/// Registration is idempotent, so calling again is safe.
#[derive(Debug, Clone)]
pub struct RemoteSchemaStore {
    client: Arc<Client>,
}

impl RemoteSchemaStore {
    /// A store for the registry `config` describes.
    /// A bad `ca_pem` is reported by every call.
    pub fn new(config: RemoteRegistryConfig) -> Self {
        Self {
            client: Arc::new(Client::new(config)),
        }
    }

    /// Sends one request off the async runtime.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: String,
        body: Option<Json>,
    ) -> Result<Reply> {
        let client = Arc::clone(&self.client);
        offload::off_runtime(operation, move || {
            client.call(operation, method, &path, body.as_ref())
        })
        .await
    }

    fn registered(subject: &str, json: &Json) -> Result<RegisteredSchema> {
        let number = |key: &str| {
            json.get(key)
                .and_then(Json::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(-1)
        };
        let schema = json
            .get("schema")
            .and_then(Json::as_str)
            .unwrap_or_default();
        RegisteredSchema::from_row(number("id"), subject, number("version"), schema)
    }
}

/// The path of a subject's compatibility setting, or of the global one.
fn config_path(subject: Option<&str>) -> String {
    subject.map_or_else(
        || "/config".to_owned(),
        |s| format!("/config/{}", segment(s)),
    )
}

impl SchemaStore for RemoteSchemaStore {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        let path = format!("/subjects/{}/versions", segment(subject));
        let Reply::Ok(list) = self
            .call("list versions", Method::Get, path.clone(), None)
            .await?
        else {
            return Ok(Vec::new());
        };
        let numbers: Vec<u64> = list
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_u64).collect())
            .unwrap_or_default();
        let mut versions = Vec::with_capacity(numbers.len());
        for v in numbers {
            let read = self
                .call("read version", Method::Get, format!("{path}/{v}"), None)
                .await?;
            versions.push(match read {
                Reply::Ok(json) => Self::registered(subject, &json)?,
                Reply::NotFound => {
                    return Err(Error::VersionNotFound {
                        subject: subject.to_owned(),
                        version: u32::try_from(v).unwrap_or_default(),
                    });
                }
            });
        }
        Ok(versions)
    }

    async fn insert_version(
        &self,
        subject: &str,
        _version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        // The remote registry assigns the version (and checks compatibility itself).
        let body = json!({"schema": schema.canonical_json()});
        let path = format!("/subjects/{}/versions", segment(subject));
        self.call("register schema", Method::Post, path, Some(body.clone()))
            .await?;
        let path = format!("/subjects/{}", segment(subject));
        match self
            .call("look up schema", Method::Post, path, Some(body))
            .await?
        {
            Reply::Ok(json) => Self::registered(subject, &json),
            Reply::NotFound => Err(Error::SubjectNotFound {
                subject: subject.to_owned(),
            }),
        }
    }

    async fn schema_by_id(&self, id: SchemaId) -> Result<Option<Schema>> {
        let path = format!("/schemas/ids/{id}");
        match self
            .call("read schema by id", Method::Get, path, None)
            .await?
        {
            Reply::Ok(json) => json
                .get("schema")
                .and_then(Json::as_str)
                .map(super::stored_schema)
                .transpose(),
            Reply::NotFound => Ok(None),
        }
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        let reply = self
            .call("list subjects", Method::Get, "/subjects".to_owned(), None)
            .await?;
        let Reply::Ok(list) = reply else {
            return Ok(Vec::new());
        };
        let mut subjects: Vec<String> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        subjects.sort();
        Ok(subjects)
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        let path = config_path(subject);
        match self
            .call("read compatibility", Method::Get, path, None)
            .await?
        {
            Reply::Ok(json) => json
                .get("compatibilityLevel")
                .or_else(|| json.get("compatibility"))
                .and_then(Json::as_str)
                .map(str::parse)
                .transpose(),
            Reply::NotFound => Ok(None),
        }
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let path = config_path(subject);
        match mode {
            Some(mode) => {
                let body = json!({"compatibility": mode.as_str()});
                self.call("set compatibility", Method::Put, path, Some(body))
                    .await?
            }
            None => {
                self.call("delete compatibility", Method::Delete, path, None)
                    .await?
            }
        };
        Ok(())
    }
}
