//! Dead letters of WAL mode: the event never had an outbox row, so it is written to the
//! dead-letter table directly, under an id drawn from the outbox's own sequence (unique
//! beside the polling mode's, and growing, so dead letters list in the order they came).

use outbox_core::Result;
use outbox_core::relay::OutboxRecord;
use outbox_core::table::{Dialect, Table, TableNames};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::store;

/// Writes `record` to the dead-letter table with `attempts` and `error`; returns the id it
/// was given: `dead_letter_id` when it is a retried dead letter failing again (it keeps its
/// place among its key's dead letters), else a new one (also when another dead letter holds
/// `dead_letter_id`: a place is never taken from another event). Idempotent per `event_id` (a relay
/// that restarts before its LSN passed writes the same dead letter again): the second write
/// keeps the first and returns its id.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] for database failures;
/// [`outbox_core::Error::SchemaIdOutOfRange`] for a schema id the column cannot hold.
pub async fn dead_letter_wal_event(
    pool: &PgPool,
    names: &TableNames,
    record: &OutboxRecord,
    attempts: u32,
    error: &str,
    dead_letter_id: Option<i64>,
) -> Result<i64> {
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let events = names.qualified(Dialect::Postgres, Table::Events);
    let sql = format!(
        "WITH inserted AS (INSERT INTO {dead} (id, event_id, topic, event_key, event_type, schema_id, \
         content_type, payload, headers, created_at, attempts, error) \
         VALUES (COALESCE((SELECT $13 WHERE NOT EXISTS (SELECT 1 FROM {dead} WHERE id = $13)), \
         nextval(pg_get_serial_sequence($1, 'id'))), CAST($2 AS UUID), $3, $4, $5, $6, $7, $8, $9, \
         to_timestamp($10 / 1000.0), $11, $12) ON CONFLICT (event_id) DO NOTHING RETURNING id) \
         SELECT id FROM inserted UNION ALL SELECT id FROM {dead} WHERE event_id = CAST($2 AS UUID) LIMIT 1"
    );
    let schema_id = record
        .schema_id
        .map(outbox_core::SchemaId::to_column)
        .transpose()?;
    let id: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&events)
        .bind(record.event_id.hyphenated().to_string())
        .bind(&record.topic)
        .bind(&record.event_key)
        .bind(&record.event_type)
        .bind(schema_id)
        .bind(&record.content_type)
        .bind(&record.payload)
        .bind(outbox_core::headers_to_json(&record.headers))
        .bind(record.created_at_ms as f64)
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(error)
        .bind(dead_letter_id)
        .fetch_one(pool)
        .await
        .map_err(store("wal: dead-letter an event"))?;
    Ok(id.0)
}

/// `dead-letters retry` in WAL mode: emits dead letter `id` again as a transactional logical
/// message (a version-2 envelope carrying `id`). The dead letter stays listed until the relay
/// reached the message in the stream and Kafka acknowledged it; then the relay takes it out
/// ([`remove_wal_dead_letter`]): so the key's events committed before the retry are still held
/// behind it, in stream order, a message replayed after a crash is produced unless it was
/// acknowledged already, and a dead letter discarded before the relay reaches its retry is
/// not produced. `false` when there is no such dead letter.
///
/// # Errors
///
/// [`outbox_core::Error::WalSlot`] when the outbox's slot is missing (a message emitted then
/// would be lost, so nothing is done); [`outbox_core::Error::Store`] for database failures.
pub async fn retry_wal_dead_letter(pool: &PgPool, names: &TableNames, id: i64) -> Result<bool> {
    let op = "wal: retry a dead letter";
    let wal = super::slot::check_wal_slot(pool, names).await?.names;
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let mut tx = pool.begin().await.map_err(store(op))?;
    let sql = format!(
        "SELECT CAST(event_id AS TEXT), topic, event_key, event_type, schema_id, content_type, \
         payload, headers, CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT) \
         FROM {dead} WHERE id = $1 FOR SHARE"
    );
    let row: Option<DeadRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store(op))?;
    let Some((
        event_id,
        topic,
        event_key,
        event_type,
        schema_id,
        content_type,
        payload,
        headers,
        created_at_ms,
    )) = row
    else {
        return Ok(false);
    };
    // The row was written by a relay; a row edited since into something else is refused,
    // never retried half-read.
    let corrupt = |what: &str| outbox_core::Error::Store {
        operation: op,
        retryable: false,
        source: format!("dead letter {id}: its {what} does not decode").into(),
    };
    let record = OutboxRecord {
        id,
        event_id: event_id.parse().map_err(|_| corrupt("event_id"))?,
        topic,
        event_key,
        event_type,
        schema_id: match schema_id {
            None => None,
            Some(column) => Some(
                outbox_core::SchemaId::from_column(column).ok_or_else(|| corrupt("schema_id"))?,
            ),
        },
        content_type,
        payload,
        headers: outbox_core::headers_from_json(&headers).map_err(|_| corrupt("headers"))?,
        created_at_ms,
    };
    let envelope = outbox_core::wal::encode_retry_envelope(&record, id)?;
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
        .bind(&wal.message_prefix)
        .bind(envelope)
        .execute(&mut *tx)
        .await
        .map_err(store(op))?;
    tx.commit().await.map_err(store(op))?;
    Ok(true)
}

/// Takes dead letter `id` out of the table, if it still holds `event_id`: the WAL relay does
/// it once Kafka acknowledged the retried message, before its LSN is confirmed. `false` when
/// it was gone already (discarded, or taken out before a restart replayed the message).
///
/// # Errors
///
/// [`outbox_core::Error::Store`] for database failures.
pub async fn remove_wal_dead_letter(
    pool: &PgPool,
    names: &TableNames,
    id: i64,
    event_id: Uuid,
) -> Result<bool> {
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {dead} WHERE id = $1 AND event_id = CAST($2 AS UUID)"
    )))
    .bind(id)
    .bind(event_id.hyphenated().to_string())
    .execute(pool)
    .await
    .map_err(store("wal: take a retried dead letter out"))?;
    Ok(done.rows_affected() > 0)
}

/// What the dead-letter table holds at the place a version-2 envelope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalRetryTarget {
    /// The dead letter of this very event (same `event_id`, topic and key): a retry to deliver.
    Listed,
    /// No dead letter there: delivered already (a replay after a crash, or a second retry of
    /// it), or discarded by the operator.
    Gone,
    /// Another event's dead letter: the envelope was not emitted by `dead-letters retry`.
    Other,
}

/// Looks up the dead letter `id` a version-2 envelope carrying `record` names, so that a
/// hand-made envelope can neither take another event's dead letter out nor skip its key's
/// block.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] for database failures.
pub async fn wal_retry_target(
    pool: &PgPool,
    names: &TableNames,
    id: i64,
    record: &OutboxRecord,
) -> Result<WalRetryTarget> {
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let row: Option<(String, String, Option<Vec<u8>>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT CAST(event_id AS TEXT), topic, event_key FROM {dead} WHERE id = $1"),
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(store("wal: read a retried dead letter"))?;
    Ok(match row {
        None => WalRetryTarget::Gone,
        Some((event_id, topic, key))
            if event_id == record.event_id.hyphenated().to_string()
                && topic == record.topic
                && key == record.event_key =>
        {
            WalRetryTarget::Listed
        }
        Some(_) => WalRetryTarget::Other,
    })
}

/// The columns of a dead letter a retry emits again.
type DeadRow = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    Option<i32>,
    String,
    Vec<u8>,
    String,
    i64,
);

/// The id of the first dead letter of `key` on `topic`, if any, leaving out `excluding` (the
/// retried dead letters in flight): the WAL relay's block policy holds the key's later
/// events behind it.
///
/// # Errors
///
/// [`outbox_core::Error::Store`] for database failures.
pub async fn first_wal_dead_letter(
    pool: &PgPool,
    names: &TableNames,
    topic: &str,
    key: &[u8],
    excluding: &[i64],
) -> Result<Option<i64>> {
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let (first,): (Option<i64>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT min(id) FROM {dead} WHERE topic = $1 AND event_key = $2 AND id <> ALL($3)"
    )))
    .bind(topic)
    .bind(key)
    .bind(excluding)
    .fetch_one(pool)
    .await
    .map_err(store("wal: read a key's first dead letter"))?;
    Ok(first)
}
