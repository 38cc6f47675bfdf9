//! The slot's life cycle on a PostgreSQL pool: create (once), check, status, drop.

use outbox_core::table::{Dialect, Table, TableNames};
use outbox_core::wal::WalNames;
use outbox_core::{Error, Result};
use sqlx::{PgPool, Row};

use super::{WalSlotIdentity, check_wal_slot_on};
use crate::error::store;
use outbox_core::wal::WalStatements;

/// The slot as PostgreSQL reports it now, for `outbox-relay status` and the lag metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct WalSlotStatus {
    /// The slot name.
    pub slot: String,
    /// Whether a client is streaming from it, and its backend pid.
    pub active_pid: Option<i32>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: String,
    /// The last LSN the relay confirmed.
    pub confirmed_flush_lsn: Option<String>,
    /// WAL bytes written since the confirmed LSN: what the slot holds back.
    pub lag_bytes: i64,
    /// How far the streaming relay's confirmations trail (`pg_stat_replication.flush_lag`),
    /// in seconds; `None` when no relay streams or nothing was confirmed lately.
    pub lag_seconds: Option<f64>,
}

/// Creates the outbox's slot and publication and records their identity, or, when an identity
/// is already recorded, checks that slot (see [`check_wal_slot`]). Run once, at
/// `outbox-relay migrate`, after the tables are migrated.
///
/// # Errors
///
/// [`Error::WalSlot`] when `wal_level` is not `logical`, the role lacks `REPLICATION`, or a
/// recorded slot is gone; [`Error::Store`] for database failures.
pub async fn create_wal_slot(pool: &PgPool, names: &TableNames) -> Result<WalSlotIdentity> {
    let wal = WalNames::new(names);
    preflight(pool, &wal.slot).await?;
    let mut conn = pool.acquire().await.map_err(store("wal slot: connect"))?;
    // Two relays migrating at once: one creates, the other finds the identity. A session lock,
    // since the steps must commit one by one (see `create_on`).
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 16))")
        .bind(&wal.slot)
        .execute(&mut *conn)
        .await
        .map_err(store("wal slot: lock"))?;
    let result = create_on(&mut conn, names, &wal).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 16))")
        .bind(&wal.slot)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // A connection still holding the lock must not go back to the pool.
        drop(conn.detach());
    }
    result?;
    check_wal_slot(pool, names).await
}

/// The steps of [`create_wal_slot`] under its lock, each committed on its own: pgoutput reads
/// the publication through the catalog as of each decoded change, so the publication must be
/// committed before the slot exists, and the identity row (written after the slot, whose
/// creation refuses a transaction that has written) must not be decoded before it.
async fn create_on(
    conn: &mut sqlx::PgConnection,
    names: &TableNames,
    wal: &WalNames,
) -> Result<()> {
    let table = names.qualified(Dialect::Postgres, Table::WalSlot);
    let recorded: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT slot_name FROM {table} WHERE slot_name = $1"
    )))
    .bind(&wal.slot)
    .fetch_optional(&mut *conn)
    .await
    .map_err(store("wal slot: read identity"))?;
    if recorded.is_some() {
        return Ok(());
    }
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_publication WHERE pubname = $1")
        .bind(&wal.publication)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store("wal slot: read publication"))?;
    if exists.is_none() {
        // pgoutput needs a publication even for messages only; this one publishes no table.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE PUBLICATION {}",
            Dialect::Postgres.quote(&outbox_core::table::Identifier::new(&wal.publication)?)
        )))
        .execute(&mut *conn)
        .await
        .map_err(store("wal slot: create publication"))?;
    }
    let created: (String,) = sqlx::query_as(
        "SELECT CAST(lsn AS TEXT) FROM pg_create_logical_replication_slot($1, 'pgoutput')",
    )
    .bind(&wal.slot)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| slot_error(&wal.slot, "create the slot", e))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (slot_name, publication, message_prefix, created_lsn, system_identifier, database_oid) \
         SELECT $1, $2, $3, CAST($4 AS PG_LSN), CAST(c.system_identifier AS TEXT), d.oid \
         FROM pg_control_system() c, pg_database d WHERE d.datname = current_database()"
    )))
    .bind(&wal.slot)
    .bind(&wal.publication)
    .bind(&wal.message_prefix)
    .bind(&created.0)
    .execute(&mut *conn)
    .await
    .map_err(store("wal slot: record identity"))?;
    Ok(())
}

/// The checks before a slot can be created or read: `wal_level = logical` and a role with
/// `REPLICATION` (or superuser).
async fn preflight(pool: &PgPool, slot: &str) -> Result<()> {
    let row = sqlx::query(
        "SELECT current_setting('wal_level'), (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    .fetch_one(pool)
    .await
    .map_err(store("wal slot: preflight"))?;
    let level: String = row.get(0);
    let replication: Option<bool> = row.get(1);
    if level != "logical" {
        return Err(Error::WalSlot {
            slot: slot.to_owned(),
            reason: format!(
                "wal_level is {level}, not logical: ALTER SYSTEM SET wal_level = logical and restart PostgreSQL"
            ),
        });
    }
    if replication != Some(true) {
        return Err(Error::WalSlot {
            slot: slot.to_owned(),
            reason: "the role lacks the REPLICATION attribute: ALTER ROLE ... WITH REPLICATION"
                .to_owned(),
        });
    }
    Ok(())
}

/// Checks that the outbox's recorded slot still exists on this cluster and is usable; the
/// writer's `build` (WAL publishing) and the relay's start run it.
///
/// # Errors
///
/// [`Error::WalSlot`] when no slot was recorded (run `outbox-relay migrate` with
/// `source = "wal"`), the slot is gone or lost, or the cluster is another one (a failover).
pub async fn check_wal_slot(pool: &PgPool, names: &TableNames) -> Result<WalSlotIdentity> {
    check_wal_slot_on(pool, &WalStatements::new(Dialect::Postgres, names)?).await
}

/// The slot's state and lag, or `None` when this outbox records no slot.
///
/// # Errors
///
/// [`Error::Store`] for database failures.
pub async fn wal_slot_status(pool: &PgPool, names: &TableNames) -> Result<Option<WalSlotStatus>> {
    let wal = WalNames::new(names);
    let row = sqlx::query(
        "SELECT r.active_pid, COALESCE(r.wal_status, 'missing'), CAST(r.confirmed_flush_lsn AS TEXT), \
         COALESCE(CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn) AS BIGINT), 0), \
         CAST(EXTRACT(EPOCH FROM p.flush_lag) AS FLOAT8) \
         FROM (SELECT 1) one LEFT JOIN pg_replication_slots r ON r.slot_name = $1 \
         LEFT JOIN pg_stat_replication p ON p.pid = r.active_pid",
    )
    .bind(&wal.slot)
    .fetch_one(pool)
    .await
    .map_err(store("wal slot: status"))?;
    let status: String = row.get(1);
    if status == "missing" {
        return Ok(None);
    }
    Ok(Some(WalSlotStatus {
        slot: wal.slot,
        active_pid: row.get(0),
        wal_status: status,
        confirmed_flush_lsn: row.get(2),
        lag_bytes: row.get(3),
        lag_seconds: row.get(4),
    }))
}

/// Drops the outbox's slot and publication and forgets the identity (the documented way to
/// leave WAL mode). Events emitted but not yet relayed are lost: drain first.
///
/// # Errors
///
/// [`Error::Store`] when the slot is in use by a running relay, or for database failures.
pub async fn drop_wal_slot(pool: &PgPool, names: &TableNames) -> Result<()> {
    let wal = WalNames::new(names);
    let table = names.qualified(Dialect::Postgres, Table::WalSlot);
    sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&wal.slot)
    .execute(pool)
    .await
    .map_err(|e| slot_error(&wal.slot, "drop the slot", e))?;
    let publication = outbox_core::table::Identifier::new(&wal.publication)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP PUBLICATION IF EXISTS {}",
        Dialect::Postgres.quote(&publication)
    )))
    .execute(pool)
    .await
    .map_err(store("wal slot: drop publication"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE slot_name = $1"
    )))
    .bind(&wal.slot)
    .execute(pool)
    .await
    .map_err(store("wal slot: forget identity"))?;
    Ok(())
}

/// A slot function's failure: 55006 (another client reads the slot) is
/// [`Error::WalSlotInUse`], 42710 (exists) and 42704 (missing) are [`Error::WalSlot`].
fn slot_error(slot: &str, operation: &'static str, e: sqlx::Error) -> Error {
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        Some("55006") => Error::WalSlotInUse {
            slot: slot.to_owned(),
        },
        Some("42710") => Error::WalSlot {
            slot: slot.to_owned(),
            reason: format!(
                "cannot {operation}: a slot of this name exists but this outbox has no record of it; \
                 drop it (SELECT pg_drop_replication_slot('{slot}')) if it is not in use"
            ),
        },
        _ => store(operation)(e),
    }
}
