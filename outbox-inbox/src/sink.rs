//! The sink mode's decisions, written once for every backend: which statement an event turns
//! into (an upsert by key, or a delete for a change event with `op = d` and for a tombstone),
//! and why a record cannot be sunk. The backends only run the statement.

use outbox_core::Schema;
use outbox_core::table::{Dialect, SinkTable, SqlValue};

use crate::{ApplyError, InboxEvent, Reason};

/// A sink's layout: events read with `schema` into a table keyed by the Kafka key, each mapped
/// field in its column. `outbox-sqlx`'s `Sink` and `outbox-diesel`'s `DieselSink` run it.
#[derive(Debug, Clone)]
pub struct SinkMapping {
    table: SinkTable,
    schema: Schema,
}

impl SinkMapping {
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

    /// The schema events are read with (the consumer's reader schema).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// `CREATE TABLE IF NOT EXISTS` for the table in `dialect` (key column plus every mapped
    /// column, typed from the schema, nullable).
    pub fn create_table(&self, dialect: Dialect) -> String {
        self.table.create(dialect)
    }

    /// The statement `event` turns into, with its parameters: a delete by key for a tombstone
    /// or a change event with `op = d`, else an upsert of the mapped fields by key.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Rejected`] with [`Reason::MissingKey`] when the record has no UTF-8 key,
    /// [`Reason::Undecodable`] when the value does not have the sink's shape.
    pub fn statement(
        &self,
        dialect: Dialect,
        event: &InboxEvent,
    ) -> Result<(String, Vec<SqlValue>), ApplyError> {
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
        Ok(match row {
            None => (self.table.delete(dialect), vec![key]),
            Some(values) => (
                self.table.upsert(dialect),
                std::iter::once(key).chain(values).collect(),
            ),
        })
    }
}
