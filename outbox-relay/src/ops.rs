//! What each `outbox-relay` subcommand does, written once over any database.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outbox_core::registry::{
    EitherStore, RegisteredSchema, Registry, RemoteSchemaStore, SchemaStore,
};
use outbox_core::relay::{DeadLetter, RelayStore};
use outbox_core::table::{Dialect, Statements};
use outbox_core::{Result, Schema};
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore, SqlxSchemaStore};
use sqlx::Pool;

use crate::config::RelayConfig;
use crate::metrics::Metrics;
use crate::{Relay, RunSummary};

fn statements<DB: OutboxDatabase>(config: &RelayConfig) -> Result<Arc<Statements>> {
    Ok(Arc::new(Statements::new(
        DB::DIALECT,
        &config.table_names()?,
    )))
}

/// The relay store the configuration describes.
///
/// # Errors
///
/// Invalid table names.
pub fn relay_store<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
) -> Result<SqlxRelayStore<DB>> {
    Ok(SqlxRelayStore::new(pool, statements::<DB>(config)?)
        .with_strict_order(config.relay.strict_order))
}

/// The registry the `schema` commands and the served API use: the embedded tables, or the
/// remote registry the configuration names.
type CommandRegistry<DB> = Registry<EitherStore<SqlxSchemaStore<DB>, RemoteSchemaStore>>;

fn registry<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
) -> Result<CommandRegistry<DB>> {
    let lint_config = match &config.registry.lint_config {
        Some(path) => outbox_core::lint::LintConfig::from_file(path)?,
        None => outbox_core::lint::LintConfig::default(),
    };
    Ok(Registry::new(match config.remote_registry()? {
        Some(remote) => EitherStore::Right(RemoteSchemaStore::new(remote)),
        None => EitherStore::Left(SqlxSchemaStore::new(pool, statements::<DB>(config)?)),
    })
    .with_lint(config.registry.lint, lint_config)
    .on_lint(|subject, report| {
        for v in &report.violations {
            tracing::warn!(subject, violation = %v, "schema design rule broken");
        }
    }))
}

/// `migrate`: creates or upgrades the tables.
///
/// # Errors
///
/// Database errors.
pub async fn migrate<DB: OutboxDatabase>(pool: &Pool<DB>, config: &RelayConfig) -> Result<()> {
    outbox_sqlx::migrate(pool, &*statements::<DB>(config)?).await
}

/// `run`: migrates, serves metrics and health, drains until `shutdown`.
///
/// # Errors
///
/// Configuration, migration, or binding the HTTP address.
pub async fn run<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunSummary> {
    config.require_kafka()?;
    crate::preflight::check_broker(&config.kafka).await?;
    migrate(&pool, config).await?;
    let metrics = Arc::new(Metrics::new());
    let producer = crate::producer::producer(&config.kafka)?;
    let mut relay = Relay::new(
        relay_store(pool, config)?,
        producer,
        config.relay.clone(),
        config.instance_id(),
    )
    .with_producer_config(config.kafka.clone())?
    .with_metrics(Arc::clone(&metrics));
    let listener = if config.relay.listen_notify && DB::DIALECT == Dialect::Postgres {
        let wakeup = Arc::new(tokio::sync::Notify::new());
        relay = relay.with_wakeup(Arc::clone(&wakeup));
        let channel = statements::<DB>(config)?.notify_channel();
        Some(tokio::spawn(listen(
            config.database_url()?.to_owned(),
            channel,
            wakeup,
        )))
    } else {
        None
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let http = match config.http_listen()? {
        Some(addr) => {
            let listener = bind(addr, "http.listen").await?;
            let stuck_after = config.relay.stuck_after;
            let stopped = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            let server = crate::server::Server::new(&config.http.server, "http.server")?;
            let metrics_auth = config
                .http
                .protect_metrics
                .then(|| config.http.auth.clone());
            let metrics = Arc::clone(&metrics);
            Some(tokio::spawn(async move {
                crate::http::serve(
                    listener,
                    metrics,
                    stuck_after,
                    &server,
                    metrics_auth,
                    stopped,
                )
                .await
            }))
        }
        None => None,
    };
    let api = match config.registry_listen()? {
        Some(addr) => {
            let listener = bind(addr, "registry.listen").await?;
            let mut rx = stop_tx.subscribe();
            let stopped = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let server = crate::server::Server::new(&config.registry.server, "registry.server")?;
            // Its own small pool: API load cannot take the drain's connections.
            let pool =
                crate::database::connect_with::<DB>(config.database_url()?, REGISTRY_POOL_SIZE)
                    .await?;
            let registry = registry(pool, config)?;
            let options = api_options(config);
            Some(tokio::spawn(async move {
                crate::registry_api::serve(listener, registry, options, &server, stopped).await
            }))
        }
        None => None,
    };
    let summary = relay.run(shutdown).await?;
    let _ = stop_tx.send(true);
    if let Some(api) = api
        && let Ok(Err(e)) = api.await
    {
        tracing::warn!(error = %e, "the schema registry API failed");
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    if let Some(http) = http
        && let Ok(Err(e)) = http.await
    {
        tracing::warn!(error = %e, "the metrics endpoint failed");
    }
    Ok(summary)
}

async fn bind(addr: std::net::SocketAddr, key: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| outbox_core::Error::InvalidConfig {
            key: key.to_owned(),
            reason: format!("cannot listen on {addr}: {e}"),
        })
}

/// Connections of the served registry API's own pool.
const REGISTRY_POOL_SIZE: u32 = 2;

/// What the served API allows: writes only with `read_only = false`, no remote registry, and
/// a credential (the configuration refuses writes without one).
fn api_options(config: &RelayConfig) -> crate::registry_api::ApiOptions {
    crate::registry_api::ApiOptions {
        writable: config.registry_writable(),
        auth: config.registry.auth.clone(),
    }
}

/// `registry serve`: serves the embedded registry's REST API until `shutdown`.
///
/// # Errors
///
/// Binding the address, migration.
pub async fn registry_serve<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let Some(addr) = config.registry_listen()? else {
        return Err(outbox_core::Error::InvalidConfig {
            key: "registry.listen".to_owned(),
            reason: "empty: give an address to serve on".to_owned(),
        });
    };
    migrate(&pool, config).await?;
    let server = crate::server::Server::new(&config.registry.server, "registry.server")?;
    let listener = bind(addr, "registry.listen").await?;
    crate::registry_api::serve(
        listener,
        registry(pool, config)?,
        api_options(config),
        &server,
        shutdown,
    )
    .await
    .map_err(|e| outbox_core::Error::InvalidConfig {
        key: "registry.listen".to_owned(),
        reason: e.to_string(),
    })
}

/// Listens on `channel` and notifies `wakeup` on every notification, reconnecting with backoff.
async fn listen(url: String, channel: String, wakeup: Arc<tokio::sync::Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listened: std::result::Result<std::convert::Infallible, sqlx::Error> = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(&channel).await?;
            tracing::info!(%channel, "listening for outbox notifications");
            loop {
                listener.recv().await?;
                wakeup.notify_one();
            }
        }
        .await;
        let Err(e) = listened;
        tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection failed; polling meanwhile");
        // A notification may have been missed while reconnecting: wake once to look.
        wakeup.notify_one();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// `status`: backlog, lag, dead letters and leader, for an operator.
///
/// # Errors
///
/// Database errors.
pub async fn status<DB: OutboxDatabase>(pool: Pool<DB>, config: &RelayConfig) -> Result<String> {
    let store = relay_store(pool, config)?;
    let status = store.status(&config.relay.lease_name).await?;
    let mut out = String::new();
    let _ = writeln!(out, "backlog:      {} events waiting", status.backlog);
    let _ = writeln!(
        out,
        "oldest event: {}",
        status.oldest_age.map_or_else(
            || "none".to_owned(),
            |a| format!(
                "{} ago",
                humantime::format_duration(Duration::from_millis(a.as_millis() as u64))
            )
        )
    );
    let _ = writeln!(
        out,
        "dead letters: {}{}",
        status.dead_letters,
        if status.dead_letters > 0 {
            " (see `outbox-relay dead-letters list`)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "leader:       {}",
        status
            .leader
            .as_deref()
            .unwrap_or("none (no relay holds the lease)")
    );
    Ok(out)
}

fn describe(d: &DeadLetter) -> String {
    let key = d.record.event_key.as_deref().map_or_else(
        || "-".to_owned(),
        |k| String::from_utf8_lossy(k).into_owned(),
    );
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        d.record.id, d.record.event_id, d.record.topic, key, d.attempts, d.error
    )
}

/// `dead-letters list`.
///
/// # Errors
///
/// Database errors.
pub async fn dead_letters_list<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    limit: usize,
    json: bool,
) -> Result<String> {
    let letters = relay_store(pool, config)?.dead_letters(limit).await?;
    if json {
        let list: Vec<serde_json::Value> = letters
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.record.id,
                    "event_id": d.record.event_id.hyphenated().to_string(),
                    "topic": d.record.topic,
                    "key": d.record.event_key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "event_type": d.record.event_type,
                    "payload_bytes": d.record.payload.len(),
                    "attempts": d.attempts,
                    "error": d.error,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::Value::Array(list)));
    }
    let mut out = String::from("id\tevent_id\ttopic\tkey\tattempts\terror\n");
    for d in &letters {
        out.push_str(&describe(d));
        out.push('\n');
    }
    Ok(out)
}

/// `dead-letters retry` or `discard`: returns the ids that were not found.
///
/// # Errors
///
/// Database errors.
pub async fn dead_letters_apply<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    ids: &[i64],
    retry: bool,
) -> Result<Vec<i64>> {
    let store = relay_store(pool, config)?;
    let mut missing = Vec::new();
    // In outbox order: a later dead letter of a key retried first would be held back behind
    // an earlier one still dead.
    let mut ids = ids.to_vec();
    if retry {
        ids.sort_unstable();
        ids.dedup();
    }
    for id in ids {
        let found = if retry {
            store.retry_dead_letter(id).await?
        } else {
            store.discard_dead_letter(id).await?
        };
        if !found {
            missing.push(id);
        }
    }
    Ok(missing)
}

/// `dead-letters retry --key`: retries every dead letter of `key` (of `topic`, or of every
/// topic), in outbox order; returns their ids.
///
/// # Errors
///
/// Database errors.
pub async fn dead_letters_retry_key<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    key: &str,
    topic: Option<&str>,
) -> Result<Vec<i64>> {
    let store = relay_store(pool, config)?;
    let mut ids: Vec<i64> = store
        .dead_letters(usize::MAX)
        .await?
        .into_iter()
        .filter(|d| {
            d.record.event_key.as_deref() == Some(key.as_bytes())
                && topic.is_none_or(|t| d.record.topic == t)
        })
        .map(|d| d.record.id)
        .collect();
    ids.sort_unstable();
    let mut retried = Vec::with_capacity(ids.len());
    for id in ids {
        if store.retry_dead_letter(id).await? {
            retried.push(id);
        }
    }
    Ok(retried)
}

/// `schema register`: registers a schema under a subject (compatibility-checked).
///
/// # Errors
///
/// [`outbox_core::Error::IncompatibleSchema`] and database errors.
pub async fn schema_register<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    subject: &str,
    schema: &Schema,
) -> Result<RegisteredSchema> {
    migrate(&pool, config).await?;
    registry(pool, config)?.register(subject, schema).await
}

/// `schema list`: subjects, or the versions of one.
///
/// # Errors
///
/// Database errors.
pub async fn schema_list<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    subject: Option<&str>,
) -> Result<String> {
    let registry = registry(pool, config)?;
    let mut out = String::new();
    match subject {
        None => {
            for subject in registry.subjects().await? {
                let _ = writeln!(out, "{subject}");
            }
        }
        Some(subject) => {
            for v in registry.store().versions(subject).await? {
                let _ = writeln!(
                    out,
                    "version {}\tid {}\t{}",
                    v.version,
                    v.id,
                    v.schema.full_name().unwrap_or_default()
                );
            }
        }
    }
    Ok(out)
}

/// `schema get`: a version of a subject (latest when `version` is `None`), or a schema by id.
///
/// # Errors
///
/// Not found, database errors.
pub async fn schema_get<DB: OutboxDatabase>(
    pool: Pool<DB>,
    config: &RelayConfig,
    subject: Option<&str>,
    version: Option<u32>,
    id: Option<u32>,
) -> Result<String> {
    let registry = registry(pool, config)?;
    let schema = match (subject, id) {
        (_, Some(id)) => registry.schema_by_id(id).await?,
        (Some(subject), None) => registry.version(subject, version).await?.schema,
        (None, None) => {
            return Err(outbox_core::Error::InvalidConfig {
                key: "schema get".to_owned(),
                reason: "give a SUBJECT or --id".to_owned(),
            });
        }
    };
    Ok(format!("{}\n", schema.canonical_json()))
}
