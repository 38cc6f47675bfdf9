//! The embedded schema registry served over the Confluent Schema Registry REST API, so any
//! Confluent-aware consumer (Java, Python, Go, .NET) decodes the outbox's records with it.
//!
//! Endpoints: `GET /subjects`, `GET /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{v|latest}` (and `/schema`), `POST /subjects/{s}/versions`
//! (register), `POST /subjects/{s}` (look up), `GET /schemas/ids/{id}` (and `/schema`,
//! `/versions`, `/subjects`), `GET /schemas/types`,
//! `POST /compatibility/subjects/{s}/versions[/{v|latest}]` (`?verbose=true`),
//! `GET|PUT|DELETE /config[/{s}]`, `GET /mode[/{s}]`, `DELETE /subjects/{s}` and
//! `DELETE /subjects/{s}/versions/{v}` (soft, then `?permanent=true`, with Confluent's rules;
//! a permanent delete is refused, 42206, while unpublished outbox rows carry the schema's id
//! and no other version keeps it).
//!
//! # Safe to expose
//!
//! - Read-only by default. Reads are defined by route, not method: look-up
//!   (`POST /subjects/{s}`) and compatibility tests stay open, and registering a schema that is
//!   already registered answers its id. Writes (a new registration, configuration changes)
//!   need [`ApiOptions::writable`] and a credential of [`ApiOptions::auth`] (401 otherwise).
//! - Parsing and checking run on blocking threads, [`CHECK_CONCURRENCY`] at a time, never on
//!   the async workers that serve other requests and drain the outbox.
//! - Bodies must be JSON (415 otherwise); errors have Confluent's shape and codes; a 500 says
//!   nothing about its cause (the log does).
//!
//! Codes: 40401 subject, 40402 version, 40403 schema not found, 40404/40406 subject/version
//! soft-deleted, 40405/40407 not soft-deleted first, 40408 no subject compatibility, 409
//! incompatible, 42201 invalid schema, 42202 invalid version, 42203
//! invalid compatibility level, 42205 read-only, 42206 schema still in use, 42208 invalid
//! subject, 401 unauthorized, 415, 50001.

mod errors;
mod request;
mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use outbox_core::registry::{Registry, SchemaStore};
use tokio::sync::Semaphore;

pub use errors::{ApiError, CONTENT_TYPE};

use crate::auth::AuthConfig;
use crate::server::Server;

/// How many requests parse or check schemas at once; the others wait their turn.
pub const CHECK_CONCURRENCY: usize = 2;

/// What the served API allows.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Accept writes (new registrations, configuration changes, deletes) from clients
    /// presenting a credential of `auth`. Off, writes answer 42205.
    pub writable: bool,
    /// The credentials writes need.
    pub auth: AuthConfig,
}

struct Api<S> {
    registry: Registry<S>,
    options: ApiOptions,
    checks: Arc<Semaphore>,
}

impl<S: SchemaStore + 'static> Api<S> {
    /// Refuses a write: 42205 when the API is read-only, 401 without a valid credential.
    fn authorize_write(&self, headers: &HeaderMap, subject: Option<&str>) -> Result<(), ApiError> {
        if !self.options.writable {
            return Err(ApiError::read_only(subject));
        }
        if !self.options.auth.allows(headers) {
            return Err(ApiError::unauthorized());
        }
        Ok(())
    }
}

/// Runs `work` on a blocking thread (parsing and checking a schema can take a while), at
/// most [`CHECK_CONCURRENCY`] at a time. The permit stays with the work, so a client that
/// disconnects does not free a slot while its check still runs; a panic is a generic 500.
///
/// # Cancel safety
///
/// Dropping the returned future (the request timed out with a 408, or the connection
/// closed) stops `work` at its next await: a registration that has not committed is rolled
/// back instead of committing behind a 408 the client already holds.
async fn off_workers<S, T, F, Fut>(api: &Arc<Api<S>>, work: F) -> Result<T, ApiError>
where
    S: SchemaStore + 'static,
    T: Send + 'static,
    F: FnOnce(Arc<Api<S>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let permit = Arc::clone(&api.checks)
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let runtime = tokio::runtime::Handle::current();
    let api = Arc::clone(api);
    // Dropped with this future; the work sees its receiver close and stops.
    let (_alive, mut dropped) = tokio::sync::oneshot::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runtime.block_on(async move {
            tokio::select! {
                biased;
                _ = &mut dropped => Err(ApiError::abandoned()),
                result = work(api) => result,
            }
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// The REST API over `registry`.
pub fn router<S: SchemaStore + 'static>(registry: Registry<S>, options: ApiOptions) -> Router {
    use routes::*;
    Router::new()
        .route("/subjects", get(subjects::<S>))
        .route(
            "/subjects/{subject}",
            post(lookup::<S>).delete(delete_subject::<S>),
        )
        .route(
            "/subjects/{subject}/versions",
            get(versions::<S>).post(register::<S>),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version::<S>).delete(delete_version::<S>),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema::<S>),
        )
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id::<S>))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id::<S>))
        .route("/schemas/ids/{id}/versions", get(id_versions::<S>))
        .route("/schemas/ids/{id}/subjects", get(id_subjects::<S>))
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
        .route("/mode", get(mode::<S>))
        .route("/mode/{subject}", get(mode::<S>))
        .with_state(Arc::new(Api {
            registry,
            options,
            checks: Arc::new(Semaphore::new(CHECK_CONCURRENCY)),
        }))
        .layer(axum::middleware::from_fn(errors::require_json))
}

/// Serves the API on `listener` through `server` (TLS, timeouts, limits) until `shutdown`
/// completes.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve<S: SchemaStore + 'static>(
    listener: tokio::net::TcpListener,
    registry: Registry<S>,
    options: ApiOptions,
    server: &Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            writable = options.writable,
            https = server.is_tls(),
            "serving the schema registry REST API"
        );
    }
    let app = router(registry, options);
    let shape = |app: Router| app.layer(axum::middleware::map_response(errors::confluent_shape));
    server.serve_shaped(listener, app, shape, shutdown).await
}
