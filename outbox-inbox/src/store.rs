//! The inbox's bookkeeping, written once over `outbox-core`'s connection contract
//! ([`SqlConnection`], [`SqlPool`]): recording an id, setting a record aside, the keys set
//! aside, retention. Each writer runs these on its own connections; only the transaction around
//! the effect (whose type the application's handler sees) is the writer's.

use std::time::Duration;

use outbox_core::sql::{SqlConnection, SqlPool};
use outbox_core::table::{InboxStatements, SqlValue};

#[cfg(doc)]
use crate::DeadLetter;

/// Records `(group, ce_id)` as processed on `conn` (inside the event's transaction); `false`
/// when it already was: the event is a duplicate, roll back.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when the statement fails.
pub async fn record_processed(
    conn: &mut impl SqlConnection,
    stmts: &InboxStatements,
    group: &str,
    ce_id: &str,
) -> outbox_core::Result<bool> {
    let params = vec![
        SqlValue::Text(group.to_owned()),
        SqlValue::Text(ce_id.to_owned()),
    ];
    let inserted = conn
        .execute("inbox: record ce_id", &stmts.insert_processed, params)
        .await?;
    Ok(inserted > 0)
}

/// Sets a record aside (idempotent per position); `params` are its [`DeadLetter::params`],
/// made by the caller so a blocking writer can move them to its thread.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when the statement fails.
pub async fn dead_letter(
    pool: &impl SqlPool,
    stmts: &InboxStatements,
    params: Vec<SqlValue>,
) -> outbox_core::Result<()> {
    let mut conn = pool.acquire().await?;
    conn.execute("inbox: dead letter", &stmts.insert_dead_letter, params)
        .await?;
    Ok(())
}

/// The `(topic, key)` pairs `group` has set aside.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when the query fails.
pub async fn dead_letter_keys(
    pool: &impl SqlPool,
    stmts: &InboxStatements,
    group: &str,
) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
    let mut conn = pool.acquire().await?;
    conn.fetch(
        "inbox: dead-lettered keys",
        &stmts.select_dead_letter_keys,
        vec![SqlValue::Text(group.to_owned())],
    )
    .await
}

/// Deletes `group`'s ids older than `age`, a batch per statement so no lock is held long;
/// returns how many.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] when a statement fails.
pub async fn purge(
    pool: &impl SqlPool,
    stmts: &InboxStatements,
    group: &str,
    age: Duration,
) -> outbox_core::Result<u64> {
    let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    let mut total = 0;
    loop {
        let mut conn = pool.acquire().await?;
        let params = vec![SqlValue::Text(group.to_owned()), SqlValue::I64(seconds)];
        let deleted = conn
            .execute("inbox: retention", &stmts.purge, params)
            .await?;
        total += deleted;
        if deleted < stmts.purge_batch() as u64 {
            return Ok(total);
        }
    }
}
