//! The sink mode: no handler; each event is upserted into a table by its key, a change event
//! with `op = d` or a tombstone deletes the row. What to run is [`SinkMapping`]'s decision;
//! this file only runs it on sqlx.

use outbox_core::Schema;
use outbox_inbox::{ApplyError, InboxEvent, SinkMapping};
use sqlx::{Pool, Transaction};

use super::Effect;
use crate::database::OutboxDatabase;
use crate::error::store;

/// Events into a table: `table.key_column` = the Kafka key (text), each mapped field into
/// its column. Events are read with `schema` (the consumer's reader schema).
#[derive(Debug, Clone)]
pub struct Sink(SinkMapping);

impl Sink {
    /// A sink of events read with `schema` into `table`, keyed by `key_column`, with
    /// `mapping` as `(field, column)` pairs (fields of the record, or of its `after` row for a
    /// change event `{op, before, after, ts}`).
    ///
    /// # Errors
    ///
    /// As [`SinkMapping::new`].
    pub fn new(
        schema: Schema,
        table: &str,
        key_column: &str,
        mapping: &[(&str, &str)],
    ) -> outbox_core::Result<Self> {
        SinkMapping::new(schema, table, key_column, mapping).map(Self)
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
        DB::run(&mut conn, &self.0.create_table(DB::DIALECT), vec![])
            .await
            .map_err(store("sink: create table"))?;
        Ok(())
    }
}

impl<DB: OutboxDatabase> Effect<DB> for Sink {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Ok(Some(self.0.schema().clone()))
    }

    async fn run(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &InboxEvent,
    ) -> Result<(), ApplyError> {
        let (sql, params) = self.0.statement(DB::DIALECT, event)?;
        DB::run(&mut **tx, &sql, params)
            .await
            .map_err(|e| ApplyError::Handler(Box::new(store("sink: write")(e))))?;
        Ok(())
    }
}
