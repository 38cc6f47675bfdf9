//! WAL mode on PostgreSQL: the relay's logical replication slot (created once, its identity
//! recorded) and the checks a writer and the relay make before trusting it. The check's query
//! and verdict, and the statement that emits events as transactional logical messages, are
//! `outbox-core`'s [`WalStatements`], which the diesel writers run too.
//!
//! A message emitted while no slot exists is lost for good, so nothing here creates a slot
//! except [`create_wal_slot`] (run by `outbox-relay migrate` with `source = "wal"`), and a slot
//! recorded once but gone since is an error, never silently re-created.

use outbox_core::Result;
use outbox_core::sql::SqlPool;
use outbox_core::wal::WalStatements;

use crate::database::OutboxDatabase;
use crate::pool::SqlxPool;

#[cfg(feature = "postgres")]
mod dead_letter;
#[cfg(feature = "postgres")]
mod slot;
#[cfg(feature = "postgres")]
pub use dead_letter::{
    WalRetryTarget, dead_letter_wal_event, first_wal_dead_letter, remove_wal_dead_letter,
    retry_wal_dead_letter, wal_retry_target,
};
#[cfg(feature = "postgres")]
pub use slot::{WalSlotStatus, check_wal_slot, create_wal_slot, drop_wal_slot, wal_slot_status};

#[cfg(feature = "postgres")]
pub use outbox_core::wal::WalSlotIdentity;

/// Checks that the recorded slot still exists on this cluster and is usable, with
/// `outbox-core`'s one query and verdict (every writer runs the same).
pub(crate) async fn check_wal_slot_on<DB: OutboxDatabase>(
    pool: &sqlx::Pool<DB>,
    stmts: &WalStatements,
) -> Result<outbox_core::wal::WalSlotIdentity> {
    let pool = SqlxPool::from(pool.clone());
    let mut conn = pool.acquire().await?;
    outbox_core::wal::check_wal_slot(&mut conn, stmts).await
}
