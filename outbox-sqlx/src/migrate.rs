//! Applying the table contract's migrations, once, even with several processes starting.

use outbox_core::Result;
use outbox_core::table::{MigrationLock, Statements};
use sqlx::Pool;

use crate::database::{Column, Decoded, OutboxDatabase, begin_write};
use crate::error::store;

/// Creates or upgrades the outbox tables named by `stmts` to the current contract.
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
    match stmts.migration_lock() {
        MigrationLock::Session { lock, unlock, key } => {
            let mut conn = pool.acquire().await.map_err(store("migrate: connect"))?;
            DB::run(&mut *conn, &lock, vec![key.clone()])
                .await
                .map_err(store("migrate: lock"))?;
            let result = apply::<DB>(&mut *conn, stmts).await;
            if DB::run(&mut *conn, &unlock, vec![key]).await.is_err() {
                // A connection still holding the named lock must not go back to the pool.
                drop(conn.detach());
            }
            result
        }
        lock => {
            let mut tx = begin_write(pool).await.map_err(store("migrate: begin"))?;
            if let MigrationLock::InTransaction { lock, key } = lock {
                DB::run(&mut *tx, &lock, vec![key])
                    .await
                    .map_err(store("migrate: lock"))?;
            }
            apply::<DB>(&mut *tx, stmts).await?;
            tx.commit().await.map_err(store("migrate: commit"))
        }
    }
}

async fn apply<DB: OutboxDatabase>(conn: &mut DB::Connection, stmts: &Statements) -> Result<()> {
    DB::run(conn, &stmts.create_migrations_table(), vec![])
        .await
        .map_err(store("migrate: create migrations table"))?;
    let applied: Vec<i64> = DB::rows(conn, &stmts.select_migrations, vec![], &[Column::I64])
        .await
        .map_err(store("migrate: read applied versions"))?
        .into_iter()
        .filter_map(|mut row| row.pop())
        .map(Decoded::i64)
        .collect();
    for (sql, params) in stmts.pending_migrations(&applied) {
        DB::run(conn, &sql, params)
            .await
            .map_err(store("migrate: apply"))?;
    }
    Ok(())
}
