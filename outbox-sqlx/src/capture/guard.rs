//! PostgreSQL's guard against DDL that bypasses `capture migrate`: an event trigger.

use outbox_core::Result;
use outbox_core::capture::{MIGRATE_SETTING, guard_statements};
use outbox_core::table::{Dialect, TableNames};

use super::run_all;
use crate::database::{Column, Decoded, OutboxDatabase};
use crate::error::store;

/// PostgreSQL: installs the event trigger that refuses DDL bypassing `capture migrate`,
/// when the user may (event triggers need a superuser); otherwise says so in the log.
pub(super) async fn guard<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    names: &TableNames,
) -> Result<()> {
    let superuser = DB::rows(
        conn,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_roles WHERE rolname = current_user AND rolsuper",
        vec![],
        &[Column::I64],
    )
    .await
    .map_err(store("capture: check privileges"))?
    .into_iter()
    .flatten()
    .next()
    .map(Decoded::i64)
        == Some(1);
    if superuser {
        run_all::<DB>(conn, &guard_statements(names)?).await
    } else {
        tracing::warn!(
            "not a superuser: no event trigger guards captured tables against DDL that \
             bypasses `capture migrate`"
        );
        Ok(())
    }
}

/// PostgreSQL: lets this transaction's DDL past the guard.
pub(super) async fn pass_guard<DB: OutboxDatabase>(conn: &mut DB::Connection) -> Result<()> {
    if DB::DIALECT == Dialect::Postgres {
        let sql = format!("SELECT set_config('{MIGRATE_SETTING}', 'on', true)");
        DB::rows(conn, &sql, vec![], &[Column::Text])
            .await
            .map_err(store("capture migrate: pass the DDL guard"))?;
    }
    Ok(())
}
