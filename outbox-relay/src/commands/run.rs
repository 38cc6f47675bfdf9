//! `outbox-relay run`: drains the outbox to Kafka, serving metrics, health and the registry
//! API beside it.

use std::future::Future;
use std::sync::Arc;

use outbox_core::Result;
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

use super::registry::{api_options, bind, registry};
use crate::metrics::Metrics;
use crate::server::Server;
use crate::settings::Settings;
use crate::{Relay, RunSummary};

/// Connections of the served registry API's own pool.
const REGISTRY_POOL_SIZE: u32 = 2;

/// Checks the broker, migrates, serves metrics, health and the registry API as configured,
/// and drains until `shutdown`.
///
/// # Errors
///
/// Configuration, the broker's refusal of the TLS or SASL settings, migration, or binding an
/// HTTP address.
pub async fn run<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunSummary> {
    settings.require_kafka()?;
    crate::preflight::check_broker(&settings.kafka).await?;
    super::migrate(&pool, settings).await?;
    let metrics = Arc::new(Metrics::new());
    let producer = crate::producer::producer(&settings.kafka)?;
    let schemas = super::registry::registry(pool.clone(), settings)?;
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut builder = Relay::builder(settings.relay_store(pool)?, producer)
        .with_settings(settings.relay.clone())
        .with_instance(settings.instance_id.clone())
        .with_producer_config(settings.kafka.clone())?
        .with_metrics(Arc::clone(&metrics))
        .with_capture_schemas(schemas);
    #[cfg(feature = "postgres")]
    let listener =
        if settings.relay.listen_notify && DB::DIALECT == outbox_core::table::Dialect::Postgres {
            let wakeup = Arc::new(tokio::sync::Notify::new());
            builder = builder.with_wakeup(Arc::clone(&wakeup));
            let channel = settings.statements().notify_channel();
            Some(tokio::spawn(listen(
                settings.database_url().to_owned(),
                channel,
                wakeup,
            )))
        } else {
            None
        };
    // LISTEN/NOTIFY is PostgreSQL's: a build without it polls.
    #[cfg(not(feature = "postgres"))]
    let listener: Option<tokio::task::JoinHandle<()>> = None;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let http = match settings.http_listen {
        Some(addr) => {
            let listener = bind(addr, "http.listen").await?;
            let stuck_after = settings.relay.stuck_after;
            let stopped = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            let server = Server::new(&settings.http.server, "http.server")?;
            let metrics_auth = settings
                .http
                .protect_metrics
                .then(|| settings.http.auth.clone());
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
    let api = match settings.registry_listen {
        Some(addr) => {
            let listener = bind(addr, "registry.listen").await?;
            let mut rx = stop_tx.subscribe();
            let stopped = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let server = Server::new(&settings.registry.server, "registry.server")?;
            // Its own small pool: API load cannot take the drain's connections.
            let pool =
                crate::database::connect_with::<DB>(settings.database_url(), REGISTRY_POOL_SIZE)
                    .await?;
            let registry = registry(pool, settings)?;
            let options = api_options(settings);
            Some(tokio::spawn(async move {
                crate::registry_api::serve(listener, registry, options, &server, stopped).await
            }))
        }
        None => None,
    };
    let summary = match settings.source {
        crate::config::EventSource::Table => builder.build().run(shutdown).await?,
        #[cfg(feature = "postgres")]
        crate::config::EventSource::Wal => {
            crate::wal::command::run(settings, Arc::clone(&metrics), shutdown).await?
        }
        #[cfg(not(feature = "postgres"))]
        crate::config::EventSource::Wal => {
            unreachable!("source = \"wal\" is refused without the postgres feature")
        }
    };
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

/// Listens on `channel` and notifies `wakeup` on every notification, reconnecting with backoff.
#[cfg(feature = "postgres")]
async fn listen(url: String, channel: String, wakeup: Arc<tokio::sync::Notify>) {
    use std::time::Duration;
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
