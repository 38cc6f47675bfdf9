//! The relay's commands in WAL mode (`source = "wal"`): `migrate` creates the slot once,
//! `run` streams it, `status` shows it.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use outbox_core::Result;
use sqlx::PgPool;

use super::WalRelay;
use crate::metrics::Metrics;
use crate::relay::RunSummary;
use crate::settings::Settings;

/// Connections of the WAL relay's pool: dead letters, slot checks and lag reads.
const WAL_POOL_SIZE: u32 = 4;

/// `Settings` refuse `source = "wal"` on another database, so the URL is PostgreSQL's.
pub(crate) async fn pool(settings: &Settings) -> Result<PgPool> {
    crate::database::connect_with::<sqlx::Postgres>(settings.database_url(), WAL_POOL_SIZE).await
}

/// `migrate` in WAL mode: after the tables, creates the slot and publication (first use
/// only) and records the slot's identity.
///
/// # Errors
///
/// [`outbox_core::Error::WalSlot`] when `wal_level` is not `logical`, the role lacks `REPLICATION`, or a
/// recorded slot is gone; database errors.
pub async fn migrate(settings: &Settings) -> Result<()> {
    let pool = pool(settings).await?;
    let identity = outbox_sqlx::postgres::create_wal_slot(&pool, &settings.tables).await?;
    tracing::info!(
        slot = identity.names.slot,
        created_lsn = identity.created_lsn,
        "the replication slot is ready"
    );
    Ok(())
}

/// `run` in WAL mode: streams the slot until `shutdown`.
///
/// # Errors
///
/// [`outbox_core::Error::WalSlot`] when the slot is gone or lost; configuration errors.
pub async fn run(
    settings: &Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary> {
    relay(settings, metrics).await?.run(shutdown).await
}

/// The WAL relay `run` streams with: its pool connected and its producer created, nothing
/// streamed yet (a caller may warm the producer up first, see [`WalRelay::producer`]).
///
/// # Errors
///
/// Configuration errors; [`outbox_core::Error::Store`] when the database cannot be reached.
pub async fn relay(settings: &Settings, metrics: Arc<Metrics>) -> Result<WalRelay> {
    let pool = pool(settings).await?;
    Ok(WalRelay::new(
        pool,
        settings.tables.clone(),
        settings.database_url().to_owned(),
        crate::producer::producer(&settings.kafka)?,
        settings.relay.clone(),
    )
    .with_max_message_bytes(crate::producer::max_message_bytes(&settings.kafka)?)
    .with_lag_alarm_bytes(settings.wal.lag_alarm_bytes)
    .with_metrics(metrics))
}

/// The slot's lines of `status`.
///
/// # Errors
///
/// Database errors.
pub async fn status(settings: &Settings) -> Result<String> {
    let pool = pool(settings).await?;
    let mut out = String::new();
    match outbox_sqlx::postgres::wal_slot_status(&pool, &settings.tables).await? {
        None => {
            let _ = writeln!(
                out,
                "wal slot:     none (run `outbox-relay migrate` with source = \"wal\")"
            );
        }
        Some(s) => {
            let _ = writeln!(
                out,
                "wal slot:     {} ({}, {})",
                s.slot,
                s.wal_status,
                s.active_pid.map_or_else(
                    || "no relay streaming".to_owned(),
                    |pid| format!("streamed by pid {pid}")
                )
            );
            let _ = writeln!(
                out,
                "wal lag:      {} bytes{}, confirmed up to {}",
                s.lag_bytes,
                s.lag_seconds
                    .map_or_else(String::new, |t| format!(", {t:.3} s")),
                s.confirmed_flush_lsn.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(out)
}
