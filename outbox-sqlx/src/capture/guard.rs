//! PostgreSQL's guard against DDL that bypasses `capture migrate`: an event trigger.

use outbox_core::Result;
use outbox_core::capture::{MIGRATE_SETTING, guard_statements};
use outbox_core::sql::{Query, SqlConnection};
use outbox_core::table::{Dialect, TableNames};

use super::run_all;

/// PostgreSQL: installs the event trigger that refuses DDL bypassing `capture migrate`,
/// when the user may (event triggers need a superuser); otherwise says so in the log.
pub(super) async fn guard<C: SqlConnection>(conn: &mut C, names: &TableNames) -> Result<()> {
    let superuser: Query<i64> = Query::new(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_roles WHERE rolname = current_user AND rolsuper",
    );
    let superuser = conn
        .fetch("capture: check privileges", &superuser, vec![])
        .await?
        .first()
        == Some(&1);
    if superuser {
        run_all(conn, &guard_statements(names)?).await
    } else {
        tracing::warn!(
            "not a superuser: no event trigger guards captured tables against DDL that \
             bypasses `capture migrate`"
        );
        Ok(())
    }
}

/// PostgreSQL: lets this transaction's DDL past the guard.
pub(super) async fn pass_guard<C: SqlConnection>(conn: &mut C) -> Result<()> {
    if conn.dialect() == Dialect::Postgres {
        let pass: Query<String> = Query::new(format!(
            "SELECT set_config('{MIGRATE_SETTING}', 'on', true)"
        ));
        conn.fetch("capture migrate: pass the DDL guard", &pass, vec![])
            .await?;
    }
    Ok(())
}
