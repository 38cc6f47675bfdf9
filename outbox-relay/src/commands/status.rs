//! `outbox-relay status`: backlog, lag, dead letters and leader, for an operator.

use std::fmt::Write as _;
use std::time::Duration;

use outbox_core::relay::AdminStore;
use outbox_core::table::Table;
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

use super::CommandError;
use crate::settings::Settings;

/// The status, as lines for a person.
///
/// # Errors
///
/// [`CommandError::TablesMissing`] on a database never migrated; database errors.
pub(super) async fn status<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
) -> Result<String, CommandError> {
    let store = settings.relay_store(pool)?;
    let status = match store.status(&settings.relay.lease_name).await {
        Ok(status) => status,
        Err(e) if is_missing_table(&e) => {
            return Err(CommandError::TablesMissing {
                events: settings.tables.name(Table::Events).to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = String::new();
    if status.backlog_estimated {
        let _ = writeln!(
            out,
            "backlog:      about {} events waiting (more than {}: estimated from the id range)",
            status.backlog,
            outbox_core::relay::BACKLOG_EXACT_UP_TO
        );
    } else {
        let _ = writeln!(out, "backlog:      {} events waiting", status.backlog);
    }
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
    #[cfg(feature = "postgres")]
    if settings.source == crate::config::EventSource::Wal {
        out.push_str(&crate::wal::command::status(settings).await?);
    }
    Ok(out)
}

/// Whether a store error says a table does not exist: SQLSTATE `42P01` (PostgreSQL), `42S02`
/// (MySQL/MariaDB, error 1146), or SQLite's "no such table".
fn is_missing_table(error: &outbox_core::Error) -> bool {
    let outbox_core::Error::Store { source, .. } = error else {
        return false;
    };
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    matches!(db.code().as_deref(), Some("42P01" | "42S02"))
        || db.message().starts_with("no such table")
}
