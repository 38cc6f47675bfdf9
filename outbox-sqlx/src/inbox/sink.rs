//! The sink mode: no handler; each event is upserted into a table by its key, a change event
//! with `op = d` or a tombstone deletes the row.

use outbox_core::Schema;
use outbox_core::table::{SinkTable, SqlValue};
use outbox_inbox::{ApplyError, InboxEvent, Reason};
use sqlx::{Pool, Transaction};

use super::Effect;
use crate::database::OutboxDatabase;
use crate::error::store;

/// Events into a table: `table.key_column` = the Kafka key (text), each mapped field into
/// its column. Events are read with `schema` (the consumer's reader schema).
#[derive(Debug, Clone)]
pub struct Sink {
    table: SinkTable,
    schema: Schema,
}

impl Sink {
    /// A sink of events read with `schema` into `table`, keyed by `key_column`, with
    /// `mapping` as `(field, column)` pairs (fields of the record, or of its `after` row for a
    /// change event `{op, before, after, ts}`).
    ///
    /// # Errors
    ///
    /// As [`SinkTable::new`].
    pub fn new(
        schema: Schema,
        table: &str,
        key_column: &str,
        mapping: &[(&str, &str)],
    ) -> outbox_core::Result<Self> {
        Ok(Self {
            table: SinkTable::new(&schema, table, key_column, mapping)?,
            schema,
        })
    }

    /// Creates the table from the schema (key column plus every mapped column), if missing.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::Store`] when the statement fails.
    pub async fn create_table<DB: OutboxDatabase>(
        &self,
        pool: &Pool<DB>,
    ) -> outbox_core::Result<()> {
        let mut conn = pool.acquire().await.map_err(store("sink: connect"))?;
        DB::run(&mut conn, &self.table.create(DB::DIALECT), vec![])
            .await
            .map_err(store("sink: create table"))?;
        Ok(())
    }
}

impl<DB: OutboxDatabase> Effect<DB> for Sink {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Ok(Some(self.schema.clone()))
    }

    async fn run(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &InboxEvent,
    ) -> Result<(), ApplyError> {
        let key = event
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or(ApplyError::Rejected(Reason::MissingKey))?;
        let row = match &event.value {
            None => None,
            Some(value) => self.table.row(value).map_err(|e| {
                ApplyError::Rejected(Reason::Undecodable {
                    detail: e.to_string(),
                })
            })?,
        };
        let key = SqlValue::Text(key.to_owned());
        let (sql, params) = match row {
            None => (self.table.delete(DB::DIALECT), vec![key]),
            Some(values) => (
                self.table.upsert(DB::DIALECT),
                std::iter::once(key).chain(values).collect(),
            ),
        };
        DB::run(&mut **tx, &sql, params)
            .await
            .map_err(|e| ApplyError::Handler(Box::new(store("sink: write")(e))))?;
        Ok(())
    }
}
