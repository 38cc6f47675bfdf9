//! The registry the `schema` commands and the served API use, and `outbox-relay registry
//! serve`.

use std::future::Future;

use outbox_core::Result;
use outbox_core::registry::{EitherStore, Registry, RemoteSchemaStore};
use outbox_sqlx::{OutboxDatabase, SqlxSchemaStore};
use sqlx::Pool;

use crate::registry_api::ApiOptions;
use crate::server::Server;
use crate::settings::Settings;
use crate::validate::invalid;

/// The embedded tables, or the remote registry the configuration names.
pub(super) type CommandRegistry<DB> = Registry<EitherStore<SqlxSchemaStore<DB>, RemoteSchemaStore>>;

/// The registry `settings` describe, linting new schemas as configured.
pub(super) fn registry<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
) -> Result<CommandRegistry<DB>> {
    let lint_config = match &settings.registry.lint_config {
        Some(path) => outbox_core::lint::LintConfig::from_file(path)?,
        None => outbox_core::lint::LintConfig::default(),
    };
    Ok(Registry::new(match settings.remote_registry()? {
        Some(remote) => EitherStore::Right(RemoteSchemaStore::new(remote)),
        None => EitherStore::Left(SqlxSchemaStore::new(pool, settings.statements_for::<DB>()?)),
    })
    .with_lint(settings.registry.lint, lint_config)
    .on_lint(|subject, report| {
        for v in &report.violations {
            tracing::warn!(subject, violation = %v, "schema design rule broken");
        }
    }))
}

/// What the served API allows: writes only with `read_only = false`, no remote registry, and
/// a credential (the configuration refuses writes without one).
pub(super) fn api_options(settings: &Settings) -> ApiOptions {
    ApiOptions {
        writable: settings.registry_writable(),
        auth: settings.registry.auth.clone(),
    }
}

/// Binds `addr`, naming the configuration `key` on failure.
pub(super) async fn bind(addr: std::net::SocketAddr, key: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| invalid(key, format!("cannot listen on {addr}: {e}")))
}

/// `registry serve`: serves the embedded registry's REST API until `shutdown`.
///
/// # Errors
///
/// Binding the address, migration.
pub(super) async fn serve<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let Some(addr) = settings.registry_listen else {
        return Err(invalid(
            "registry.listen",
            "empty: give an address to serve on",
        ));
    };
    super::migrate(&pool, settings).await?;
    let server = Server::new(&settings.registry.server, "registry.server")?;
    let listener = bind(addr, "registry.listen").await?;
    crate::registry_api::serve(
        listener,
        registry(pool, settings)?,
        api_options(settings),
        &server,
        shutdown,
    )
    .await
    .map_err(|e| invalid("registry.listen", e.to_string()))
}
