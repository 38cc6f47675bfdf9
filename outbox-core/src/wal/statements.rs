//! The SQL of a WAL mode writer, written once for every writer (sqlx, diesel, diesel-async):
//! the check that the relay's recorded slot still exists, and the statement that emits
//! envelopes as transactional logical messages.

use super::{WalNames, encode_envelope};
use crate::sql::{Query, SqlConnection};
use crate::table::{Dialect, PublishStatement, SqlValue, Table, TableNames};
use crate::{Error, NewOutboxRow, Result};

/// Envelopes per emit statement: PostgreSQL binds at most 65 535 parameters.
const MESSAGES_PER_STATEMENT: usize = 10_000;

/// A row of [`WalStatements::check_slot`]: the recorded identity and the slot's state.
pub type SlotCheckRow = (String, String, i64, String, String);

/// The recorded identity of a WAL mode slot.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The statements of WAL mode for one outbox (PostgreSQL only), I/O-free like
/// [`Statements`](crate::table::Statements): the writers run them through their own
/// connections.
#[derive(Debug, Clone)]
pub struct WalStatements {
    /// The recorded slot and its state on this cluster: (slot name) -> (created_lsn,
    /// system_identifier, database_oid, `wal_status` or `missing`, `same` or `other`
    /// cluster). Read by [`slot_identity`](Self::slot_identity).
    pub check_slot: Query<SlotCheckRow>,
    names: WalNames,
}

impl WalStatements {
    /// The statements for the outbox whose tables are `names`, on `dialect`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (key `wal`) unless `dialect` is PostgreSQL: logical messages
    /// and replication slots are PostgreSQL's.
    pub fn new(dialect: Dialect, names: &TableNames) -> Result<Self> {
        if dialect != Dialect::Postgres {
            return Err(Error::InvalidConfig {
                key: "wal".to_owned(),
                reason: format!(
                    "WAL publishing needs PostgreSQL (logical messages and a replication slot); \
                     this outbox is on {dialect:?}: leave wal off"
                ),
            });
        }
        let table = names.qualified(Dialect::Postgres, Table::WalSlot);
        Ok(Self {
            check_slot: Query::new(format!(
                "SELECT CAST(s.created_lsn AS TEXT), s.system_identifier, s.database_oid, \
                 COALESCE(r.wal_status, 'missing'), \
                 CASE WHEN s.system_identifier = CAST(c.system_identifier AS TEXT) THEN 'same' ELSE 'other' END \
                 FROM {table} s CROSS JOIN pg_control_system() c \
                 LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name AND r.database = current_database() \
                 WHERE s.slot_name = $1"
            )),
            names: WalNames::new(names),
        })
    }

    /// The slot, publication and message prefix.
    pub fn names(&self) -> &WalNames {
        &self.names
    }

    /// The parameters of [`check_slot`](Self::check_slot).
    pub fn check_slot_params(&self) -> Vec<SqlValue> {
        vec![SqlValue::Text(self.names.slot.clone())]
    }

    /// The verdict on [`check_slot`](Self::check_slot)'s rows: the identity of a slot that
    /// exists on this cluster and is usable.
    ///
    /// # Errors
    ///
    /// [`Error::WalSlot`] when no slot is recorded, the recorded one is gone or lost, or it
    /// was created on another cluster.
    pub fn slot_identity(&self, rows: Vec<SlotCheckRow>) -> Result<WalSlotIdentity> {
        let refuse = |reason: &str| Error::WalSlot {
            slot: self.names.slot.clone(),
            reason: reason.to_owned(),
        };
        let Some((created_lsn, system_identifier, database_oid, status, cluster)) =
            rows.into_iter().next()
        else {
            return Err(refuse(
                "no slot recorded for this outbox: run `outbox-relay migrate` with source = \"wal\" first \
                 (a message emitted without a slot is lost)",
            ));
        };
        if cluster != "same" {
            return Err(refuse(
                "the slot was created on another cluster (a failover or a restore?): its messages \
                 may be lost; see the README's WAL mode failover section before re-creating it",
            ));
        }
        match status.as_str() {
            "missing" => Err(refuse(
                "the slot recorded for this outbox is gone (dropped, or a failover to a replica): \
                 it is never re-created silently; see the README's WAL mode section",
            )),
            "lost" => Err(refuse(
                "the slot is lost (max_slot_wal_keep_size removed WAL it needed): events may be \
                 missing; see the README's WAL mode section",
            )),
            _ => Ok(WalSlotIdentity {
                names: self.names.clone(),
                created_lsn,
                system_identifier,
                database_oid,
            }),
        }
    }

    /// The statements that emit `rows`, stamped `created_at_ms`, in order, as transactional
    /// logical messages: one round trip per 10,000 events. Parameters: (prefix, envelope...).
    ///
    /// # Errors
    ///
    /// Each item: as [`encode_envelope`].
    pub fn emit<'a>(
        &'a self,
        rows: &'a [NewOutboxRow],
        created_at_ms: i64,
    ) -> impl Iterator<Item = Result<PublishStatement<'a>>> + 'a {
        rows.chunks(MESSAGES_PER_STATEMENT).map(move |chunk| {
            let mut params = Vec::with_capacity(chunk.len() + 1);
            params.push(SqlValue::Text(self.names.message_prefix.clone()));
            for row in chunk {
                params.push(SqlValue::Bytes(encode_envelope(row, created_at_ms)?));
            }
            Ok(PublishStatement {
                operation: "emit wal messages",
                sql: emit_messages_sql(chunk.len()).into(),
                params,
            })
        })
    }
}

/// The statement that emits `count` envelopes (parameters `$2..`), in order, with prefix `$1`.
fn emit_messages_sql(count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| format!("(CAST(${} AS BYTEA))", i + 2))
        .collect();
    format!(
        "SELECT pg_logical_emit_message(true, $1, e) FROM (VALUES {}) AS m(e)",
        values.join(", ")
    )
}

/// Checks on `conn` that the slot recorded for this outbox still exists on this cluster and
/// is usable: every writer's `build` with WAL mode on, and the relay's start, run it.
///
/// # Errors
///
/// As [`WalStatements::slot_identity`]; [`Error::Store`] when the query fails.
pub async fn check_wal_slot<C: SqlConnection>(
    conn: &mut C,
    stmts: &WalStatements,
) -> Result<WalSlotIdentity> {
    let rows = conn
        .fetch(
            "wal slot: check",
            &stmts.check_slot,
            stmts.check_slot_params(),
        )
        .await?;
    stmts.slot_identity(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts() -> WalStatements {
        WalStatements::new(
            Dialect::Postgres,
            &TableNames::with_prefix("shop").expect("prefix"),
        )
        .expect("postgres")
    }

    #[test]
    fn other_dialects_are_refused() {
        let names = TableNames::default();
        for dialect in [Dialect::MySql, Dialect::Sqlite] {
            let err = WalStatements::new(dialect, &names).expect_err("not postgres");
            assert!(
                matches!(&err, Error::InvalidConfig { key, reason } if key == "wal" && reason.contains("PostgreSQL")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_verdict_names_what_is_wrong() {
        let s = stmts();
        let row = |status: &str, cluster: &str| {
            vec![(
                "0/1".to_owned(),
                "42".to_owned(),
                7,
                status.to_owned(),
                cluster.to_owned(),
            )]
        };
        for (rows, says) in [
            (Vec::new(), "no slot recorded"),
            (row("missing", "same"), "gone"),
            (row("lost", "same"), "lost"),
            (row("reserved", "other"), "another cluster"),
        ] {
            let err = s.slot_identity(rows).expect_err("refused");
            assert!(
                matches!(&err, Error::WalSlot { reason, slot } if reason.contains(says) && slot == "shop_wal"),
                "{err}"
            );
        }
        let ok = s.slot_identity(row("reserved", "same")).expect("usable");
        assert_eq!((ok.database_oid, ok.created_lsn.as_str()), (7, "0/1"));
    }

    #[test]
    fn emit_binds_the_prefix_then_one_envelope_per_event_in_order() {
        let s = stmts();
        let row = |n: u8| NewOutboxRow {
            event_id: uuid::Uuid::from_bytes([n; 16]),
            topic: "orders".to_owned(),
            event_key: None,
            event_type: "T".to_owned(),
            schema_id: None,
            content_type: "application/json".to_owned(),
            payload: vec![n],
            headers: Vec::new(),
        };
        let rows: Vec<_> = (0..3).map(row).collect();
        let all: Vec<_> = s.emit(&rows, 5).collect::<Result<_>>().expect("encodes");
        assert_eq!(all.len(), 1);
        assert!(all[0].sql.contains("($4 AS BYTEA)") && !all[0].sql.contains("$5"));
        assert_eq!(
            all[0].params[0],
            SqlValue::Text(s.names().message_prefix.clone())
        );
        for (i, param) in all[0].params[1..].iter().enumerate() {
            let SqlValue::Bytes(envelope) = param else {
                panic!("bytes")
            };
            let record = super::super::decode_envelope(envelope, 0).expect("decodes");
            assert_eq!((record.payload, record.created_at_ms), (vec![i as u8], 5));
        }
    }
}
