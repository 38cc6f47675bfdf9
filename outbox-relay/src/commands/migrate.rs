//! `outbox-relay migrate`: creates or upgrades the outbox tables.

use outbox_core::Result;
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

use crate::settings::Settings;

/// Creates or upgrades the tables `settings` names (`run`, `registry serve` and
/// `schema register` do it first too).
///
/// # Errors
///
/// Database errors; [`outbox_core::Error::InvalidConfig`] when `pool` is of another database
/// kind than the settings' URL.
pub async fn migrate<DB: OutboxDatabase>(pool: &Pool<DB>, settings: &Settings) -> Result<()> {
    outbox_sqlx::migrate(pool, &*settings.statements_for::<DB>()?).await?;
    #[cfg(feature = "postgres")]
    if settings.source == crate::config::EventSource::Wal {
        // First use only: later runs find the recorded slot and check it.
        crate::wal::command::migrate(settings).await?;
    }
    Ok(())
}
