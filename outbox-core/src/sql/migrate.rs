//! The one migration runner: the table contract's migrations, applied once, even with several
//! processes starting at the same time.

use super::{SqlConnection, SqlPool, SqlTransaction};
use crate::Result;
use crate::table::{MigrationLock, MigrationStatements};

/// Creates or upgrades the outbox tables named by `stmts` to the current contract.
///
/// Safe to call at every start-up and from several processes at once: PostgreSQL runs it in
/// one transaction under an advisory lock, SQLite in one write transaction, MySQL (whose DDL
/// is not transactional) under a named session lock. Applied versions are recorded in
/// `<prefix>_migrations`, so each migration runs once.
///
/// # Errors
///
/// [`Error::Store`](crate::Error::Store) when a statement fails.
pub async fn migrate<P: SqlPool>(pool: &P, stmts: &MigrationStatements) -> Result<()> {
    match &stmts.lock {
        MigrationLock::Session { lock, unlock, key } => {
            let mut conn = pool.acquire().await?;
            conn.execute("migrate: lock", lock, vec![key.clone()])
                .await?;
            let result = apply(&mut conn, stmts).await;
            match conn
                .execute("migrate: unlock", unlock, vec![key.clone()])
                .await
            {
                Ok(_) => result,
                Err(e) => {
                    // A connection still holding the named lock must not be reused.
                    conn.discard();
                    result.and(Err(e))
                }
            }
        }
        lock => {
            let mut tx = pool.begin_write().await?;
            if let MigrationLock::InTransaction { lock, key } = lock {
                tx.execute("migrate: lock", lock, vec![key.clone()]).await?;
            }
            apply(&mut tx, stmts).await?;
            tx.commit().await
        }
    }
}

async fn apply<C: SqlConnection>(conn: &mut C, stmts: &MigrationStatements) -> Result<()> {
    conn.execute(
        "migrate: create migrations table",
        &stmts.create_table,
        vec![],
    )
    .await?;
    let applied = conn
        .fetch("migrate: read applied versions", &stmts.select, vec![])
        .await?;
    for (statement, params) in stmts.pending(&applied) {
        conn.execute("migrate: apply", &statement, params).await?;
    }
    Ok(())
}
