//! Dead letters of WAL mode: the event never had an outbox row, so it is written to the
//! dead-letter table directly, under an id drawn from the outbox's own sequence (unique
//! beside the polling mode's, and growing, so dead letters list in the order they came).

use outbox_core::Result;
use outbox_core::relay::OutboxRecord;
use outbox_core::table::{Dialect, Table, TableNames};
use sqlx::PgPool;

use crate::error::store;

/// Writes `record` to the dead-letter table with `attempts` and `error`; returns the id it
/// was given. Idempotent per `event_id` (a relay that restarts before its LSN passed writes
/// the same dead letter again): the second write keeps the first and returns its id.
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
) -> Result<i64> {
    let dead = names.qualified(Dialect::Postgres, Table::DeadLetters);
    let events = names.qualified(Dialect::Postgres, Table::Events);
    let sql = format!(
        "WITH inserted AS (INSERT INTO {dead} (id, event_id, topic, event_key, event_type, schema_id, \
         content_type, payload, headers, created_at, attempts, error) \
         VALUES (nextval(pg_get_serial_sequence($1, 'id')), CAST($2 AS UUID), $3, $4, $5, $6, $7, $8, $9, \
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
        .fetch_one(pool)
        .await
        .map_err(store("wal: dead-letter an event"))?;
    Ok(id.0)
}
