//! Applying the table contract's migrations, once, even with several processes starting.

use outbox_core::Result;
use outbox_core::table::Statements;
use sqlx::Pool;

use crate::database::OutboxDatabase;
use crate::pool::SqlxPool;

/// Creates or upgrades the outbox tables named by `stmts` to the current contract, with
/// `outbox-core`'s one runner ([`outbox_core::sql::migrate`]).
///
/// Safe to call at every start-up and from several processes at once: PostgreSQL runs it in
/// one transaction under an advisory lock, SQLite under its write lock, MySQL (whose DDL is
/// not transactional) under a named lock; applied versions are recorded in
/// `<prefix>_migrations`.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub async fn migrate<DB: OutboxDatabase>(pool: &Pool<DB>, stmts: &Statements) -> Result<()> {
    outbox_core::sql::migrate(&SqlxPool::from(pool.clone()), &stmts.migrations).await
}
