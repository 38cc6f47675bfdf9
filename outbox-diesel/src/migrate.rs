//! The table contract's migrations on a diesel connection (the same DDL `outbox-sqlx` runs).

use outbox_core::Result;
use outbox_core::table::{MigrationLock, Statements};

use crate::connection::OutboxConnection;
use crate::error::{InTransaction, store};

/// Creates or upgrades the outbox tables named by `stmts` to the current contract, recording
/// applied versions in `<prefix>_migrations` (shared with `outbox-sqlx`).
///
/// PostgreSQL runs it in one transaction under an advisory lock, MySQL under a named lock;
/// SQLite in one transaction. The same DDL ships as SQL files for the diesel CLI in
/// `outbox-diesel/migrations/<dialect>/`.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub fn migrate<C: OutboxConnection>(conn: &mut C, stmts: &Statements) -> Result<()> {
    match stmts.migration_lock() {
        MigrationLock::Session { lock, unlock, key } => {
            conn.run(&lock, vec![key.clone()])
                .map_err(store("migrate: lock"))?;
            let result = apply(conn, stmts);
            let unlocked = conn
                .run(&unlock, vec![key])
                .map_err(store("migrate: unlock"));
            result.and(unlocked.map(drop))
        }
        lock => conn
            .transaction::<_, InTransaction, _>(|conn| {
                if let MigrationLock::InTransaction { lock, key } = lock {
                    conn.run(&lock, vec![key]).map_err(store("migrate: lock"))?;
                }
                Ok(apply(conn, stmts)?)
            })
            .map_err(|e| e.0),
    }
}

fn apply<C: OutboxConnection>(conn: &mut C, stmts: &Statements) -> Result<()> {
    conn.run(&stmts.create_migrations_table(), vec![])
        .map_err(store("migrate: create migrations table"))?;
    let applied = conn
        .load_i64(&stmts.select_migrations, vec![])
        .map_err(store("migrate: read applied versions"))?;
    for (sql, params) in stmts.pending_migrations(&applied) {
        conn.run(&sql, params).map_err(store("migrate: apply"))?;
    }
    Ok(())
}
