//! Applying the table contract's migrations, once, even with several processes starting.

use outbox_core::Result;
use outbox_core::table::{MigrationStatements, Statements};
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

/// Creates or upgrades the inbox consumer's tables (`<prefix>_inbox`,
/// `<prefix>_inbox_dead_letters`) named by `stmts`, as [`migrate`] does the outbox's: the same
/// runner and locking, versions from 1001 on in the same `<prefix>_migrations` table, so one
/// database can hold both.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub async fn migrate_inbox<DB: OutboxDatabase>(pool: &Pool<DB>, stmts: &Statements) -> Result<()> {
    let inbox = MigrationStatements::inbox(stmts.dialect, stmts.names());
    outbox_core::sql::migrate(&SqlxPool::from(pool.clone()), &inbox).await
}
