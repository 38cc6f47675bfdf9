//! The table contract's migrations on a diesel connection (the same runner and DDL
//! `outbox-sqlx` runs).

use outbox_core::Result;
use outbox_core::table::{MigrationStatements, Statements};

use crate::connection::OutboxConnection;
use crate::pool::DieselPool;

/// Creates or upgrades the outbox tables named by `stmts` to the current contract, with
/// `outbox-core`'s one runner ([`outbox_core::sql::migrate`]), recording applied versions in
/// `<prefix>_migrations` (shared with `outbox-sqlx`).
///
/// PostgreSQL runs it in one transaction under an advisory lock, MySQL under a named lock;
/// SQLite in one transaction. The same DDL ships as SQL files for the diesel CLI in
/// `outbox-diesel/migrations/<dialect>/`.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub fn migrate<C: OutboxConnection>(conn: &mut C, stmts: &Statements) -> Result<()> {
    // diesel is blocking: the runner's futures are ready when first polled; block_on
    // drives them on this thread.
    futures_executor::block_on(outbox_core::sql::migrate(
        &DieselPool::new(conn),
        &stmts.migrations,
    ))
}

/// Creates or upgrades the inbox consumer's tables (`<prefix>_inbox`,
/// `<prefix>_inbox_dead_letters`) as [`migrate`] does the outbox's, with the same runner:
/// versions from 1001 on in the same `<prefix>_migrations` table (shared with `outbox-sqlx`).
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub fn migrate_inbox<C: OutboxConnection>(conn: &mut C, stmts: &Statements) -> Result<()> {
    let inbox = MigrationStatements::inbox(stmts.dialect, stmts.names());
    futures_executor::block_on(outbox_core::sql::migrate(&DieselPool::new(conn), &inbox))
}
