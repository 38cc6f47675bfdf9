//! WAL mode on PostgreSQL: the relay's logical replication slot (created once, its identity
//! recorded), the checks a writer and the relay make before trusting it, and emitting events
//! as transactional logical messages.
//!
//! A message emitted while no slot exists is lost for good, so nothing here creates a slot
//! except [`create_wal_slot`] (run by `outbox-relay migrate` with `source = "wal"`), and a slot
//! recorded once but gone since is an error, never silently re-created.

use outbox_core::table::{Dialect, Table, TableNames};
use outbox_core::wal::WalNames;
use outbox_core::{Error, Result};

use crate::database::{Column, OutboxDatabase, Value};
use crate::error::store;

#[cfg(feature = "postgres")]
mod dead_letter;
#[cfg(feature = "postgres")]
mod slot;
#[cfg(feature = "postgres")]
pub use dead_letter::dead_letter_wal_event;
#[cfg(feature = "postgres")]
pub use slot::{WalSlotStatus, check_wal_slot, create_wal_slot, drop_wal_slot, wal_slot_status};

/// The recorded identity of a WAL mode slot.
// Named through `outbox_sqlx::postgres`; without that feature only the writer check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(unreachable_pub))]
pub struct WalSlotIdentity {
    /// The slot, publication and message prefix.
    pub names: WalNames,
    /// The LSN the slot was created at (`0/16B3748` form).
    pub created_lsn: String,
    /// `pg_control_system().system_identifier` of the cluster the slot was created on.
    pub system_identifier: String,
    /// The OID of the database the slot decodes.
    pub database_oid: i64,
}

/// Checks that the recorded slot still exists on this cluster and is usable (the generic
/// writer's `build` and `check_wal_slot` run it).
pub(crate) async fn check_wal_slot_on<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    names: &TableNames,
) -> Result<WalSlotIdentity> {
    let wal = WalNames::new(names);
    let table = names.qualified(Dialect::Postgres, Table::WalSlot);
    let sql = format!(
        "SELECT CAST(s.created_lsn AS TEXT), s.system_identifier, s.database_oid, \
         COALESCE(r.wal_status, 'missing'), \
         CASE WHEN s.system_identifier = CAST(c.system_identifier AS TEXT) THEN 'same' ELSE 'other' END \
         FROM {table} s CROSS JOIN pg_control_system() c \
         LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name AND r.database = current_database() \
         WHERE s.slot_name = $1"
    );
    let text = [
        Column::Text,
        Column::Text,
        Column::I64,
        Column::Text,
        Column::Text,
    ];
    let rows = DB::rows(conn, &sql, vec![Value::Text(wal.slot.clone())], &text)
        .await
        .map_err(store("wal slot: check"))?;
    let refuse = |reason: &str| Error::WalSlot {
        slot: wal.slot.clone(),
        reason: reason.to_owned(),
    };
    let Some(row) = rows.into_iter().next() else {
        return Err(refuse(
            "no slot recorded for this outbox: run `outbox-relay migrate` with source = \"wal\" first \
             (a message emitted without a slot is lost)",
        ));
    };
    let mut row = row.into_iter();
    let mut next = || row.next().unwrap_or(Value::Text(String::new()));
    let (created_lsn, system_identifier, oid, status, cluster) =
        (next(), next(), next(), next(), next());
    let text = |v: Value| match v {
        Value::Text(s) => s,
        _ => String::new(),
    };
    if text(cluster) != "same" {
        return Err(refuse(
            "the slot was created on another cluster (a failover or a restore?): its messages \
             may be lost; see the README's WAL mode failover section before re-creating it",
        ));
    }
    match text(status).as_str() {
        "missing" => Err(refuse(
            "the slot recorded for this outbox is gone (dropped, or a failover to a replica): \
             it is never re-created silently; see the README's WAL mode section",
        )),
        "lost" => Err(refuse(
            "the slot is lost (max_slot_wal_keep_size removed WAL it needed): events may be \
             missing; see the README's WAL mode section",
        )),
        _ => Ok(WalSlotIdentity {
            names: wal.clone(),
            created_lsn: text(created_lsn),
            system_identifier: text(system_identifier),
            database_oid: match oid {
                Value::I64(v) => v,
                _ => 0,
            },
        }),
    }
}

/// The statement that emits `count` envelopes (parameters `$2..`), in order, as
/// transactional logical messages with prefix `$1`: one round trip for a batch.
pub(crate) fn emit_messages_sql(count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| format!("(CAST(${} AS BYTEA))", i + 2))
        .collect();
    format!(
        "SELECT pg_logical_emit_message(true, $1, e) FROM (VALUES {}) AS m(e)",
        values.join(", ")
    )
}

/// The writer's check at `build`: WAL publishing needs PostgreSQL and the relay's slot.
pub(crate) async fn check_for_writer<DB: OutboxDatabase>(
    pool: &sqlx::Pool<DB>,
    names: &TableNames,
) -> Result<WalNames> {
    if DB::DIALECT != Dialect::Postgres {
        return Err(Error::InvalidConfig {
            key: "wal".to_owned(),
            reason: "WAL publishing needs PostgreSQL".to_owned(),
        });
    }
    let mut conn = pool.acquire().await.map_err(store("wal slot: connect"))?;
    Ok(check_wal_slot_on::<DB>(&mut conn, names).await?.names)
}

/// Emits `rows` as logical messages in the caller's transaction, one statement per batch.
pub(crate) async fn emit<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    wal: &WalNames,
    rows: &[outbox_core::NewOutboxRow],
) -> Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    // PostgreSQL binds at most 65 535 parameters per statement.
    for chunk in rows.chunks(10_000) {
        let mut params = Vec::with_capacity(chunk.len() + 1);
        params.push(Value::Text(wal.message_prefix.clone()));
        for row in chunk {
            params.push(Value::Bytes(outbox_core::wal::encode_envelope(
                row, now_ms,
            )?));
        }
        DB::run(conn, &emit_messages_sql(chunk.len()), params)
            .await
            .map_err(store("emit wal messages"))?;
    }
    Ok(())
}
