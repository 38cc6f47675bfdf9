//! The sink mode on diesel: no handler; each event is upserted into a table by its key, a
//! change event with `op = d` or a tombstone deletes the row. What to run is
//! [`SinkMapping`]'s decision, the same as on sqlx; this file only runs it.

use outbox_core::Schema;
use outbox_inbox::{ApplyError, InboxEvent, SinkMapping};

use super::DieselEffect;
use crate::connection::{DieselBackend, OutboxConnection};
use crate::error::store;

/// Events into a table: `table.key_column` = the Kafka key (text), each mapped field into
/// its column. Events are read with `schema` (the consumer's reader schema).
#[derive(Debug, Clone)]
pub struct DieselSink(SinkMapping);

impl DieselSink {
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
    pub fn create_table<C: OutboxConnection>(&self, conn: &mut C) -> outbox_core::Result<()> {
        let sql = self.0.create_table(<C::Backend as DieselBackend>::DIALECT);
        conn.run(&sql, vec![])
            .map_err(store("sink: create table"))?;
        Ok(())
    }
}

impl<C: OutboxConnection> DieselEffect<C> for DieselSink {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Ok(Some(self.0.schema().clone()))
    }

    fn run(&self, conn: &mut C, event: &InboxEvent) -> Result<(), ApplyError> {
        let (sql, params) = self
            .0
            .statement(<C::Backend as DieselBackend>::DIALECT, event)?;
        conn.run(&sql, params)
            .map_err(|e| ApplyError::Handler(Box::new(store("sink: write")(e))))?;
        Ok(())
    }
}
