//! Applying the table contract's migrations, once, even with several processes starting.

use outbox_core::Result;
use outbox_core::table::{Dialect, Statements, Table, migrations};
use sqlx::Pool;

use crate::database::{Column, Decoded, OutboxDatabase, Value, begin_write};
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
    let key = Value::Text(format!(
        "outbox-migrate:{}",
        stmts.names().name(Table::Events)
    ));
    match DB::DIALECT {
        Dialect::Postgres | Dialect::Sqlite => {
            let mut tx = begin_write(pool).await.map_err(store("migrate: begin"))?;
            if DB::DIALECT == Dialect::Postgres {
                let lock = "SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)";
                DB::run(&mut *tx, lock, vec![key])
                    .await
                    .map_err(store("migrate: lock"))?;
            }
            apply::<DB>(&mut *tx, stmts).await?;
            tx.commit().await.map_err(store("migrate: commit"))
        }
        Dialect::MySql => {
            let mut conn = pool.acquire().await.map_err(store("migrate: connect"))?;
            DB::run(&mut *conn, "SELECT GET_LOCK(?, 60)", vec![key.clone()])
                .await
                .map_err(store("migrate: lock"))?;
            let result = apply::<DB>(&mut *conn, stmts).await;
            let unlocked = DB::run(&mut *conn, "SELECT RELEASE_LOCK(?)", vec![key]).await;
            if unlocked.is_err() {
                // A connection still holding the named lock must not go back to the pool.
                drop(conn.detach());
            }
            result
        }
    }
}

async fn apply<DB: OutboxDatabase>(conn: &mut DB::Connection, stmts: &Statements) -> Result<()> {
    let all = migrations(DB::DIALECT, stmts.names());
    // The first statement of the first migration creates the bookkeeping table.
    if let Some(create) = all.first().and_then(|m| m.statements.first()) {
        DB::run(conn, create, vec![])
            .await
            .map_err(store("migrate: create migrations table"))?;
    }
    let applied: Vec<i64> = DB::rows(conn, &stmts.select_migrations, vec![], &[Column::I64])
        .await
        .map_err(store("migrate: read applied versions"))?
        .into_iter()
        .filter_map(|mut row| row.pop())
        .map(Value::i64)
        .collect();
    for migration in all.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = migration.version,
            "applying outbox migration: {}",
            migration.description
        );
        for statement in &migration.statements {
            DB::run(conn, statement, vec![])
                .await
                .map_err(store("migrate: apply"))?;
        }
        DB::run(
            conn,
            &stmts.insert_migration,
            vec![
                Value::I64(migration.version),
                Value::Text(migration.description.to_owned()),
            ],
        )
        .await
        .map_err(store("migrate: record version"))?;
    }
    Ok(())
}
