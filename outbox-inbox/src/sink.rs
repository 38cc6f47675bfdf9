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

#[cfg(test)]
mod tests {
    use outbox_core::avro::types::Value;

    use super::*;

    const CHANGE: &str = r#"{"type":"record","name":"Change","fields":[
        {"name":"op","type":{"type":"enum","name":"Op","symbols":["c","u","d","r"]}},
        {"name":"before","type":["null",{"type":"record","name":"Row","fields":[
            {"name":"id","type":"string"},{"name":"n","type":"long"}]}]},
        {"name":"after","type":["null","Row"]},
        {"name":"ts","type":"long"}]}"#;

    fn mapping() -> SinkMapping {
        let schema = Schema::parse_str(CHANGE).expect("schema");
        SinkMapping::new(schema, "rows", "id", &[("n", "n")]).expect("mapping")
    }

    fn event(key: Option<&[u8]>, value: Option<Value>) -> InboxEvent {
        InboxEvent {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: key.map(<[u8]>::to_vec),
            ce_id: "id".into(),
            value,
        }
    }

    fn change(op: &str, index: u32, after: Option<i64>) -> Value {
        let after = match after {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(n) => Value::Union(
                1,
                Box::new(Value::Record(vec![
                    ("id".into(), Value::String("k".into())),
                    ("n".into(), Value::Long(n)),
                ])),
            ),
        };
        Value::Record(vec![
            ("op".into(), Value::Enum(index, op.into())),
            ("before".into(), Value::Union(0, Box::new(Value::Null))),
            ("after".into(), after),
            ("ts".into(), Value::Long(0)),
        ])
    }

    fn rejected(result: Result<(String, Vec<SqlValue>), ApplyError>) -> Reason {
        match result {
            Err(ApplyError::Rejected(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn an_upsert_by_key_a_delete_for_op_d_and_for_a_tombstone() {
        let m = mapping();
        let (sql, params) = m
            .statement(
                Dialect::Postgres,
                &event(Some(b"k"), Some(change("c", 0, Some(5)))),
            )
            .expect("upsert");
        assert!(sql.starts_with("INSERT INTO"), "{sql}");
        assert_eq!(
            params,
            [SqlValue::Text("k".into()), SqlValue::OptI64(Some(5))]
        );
        for value in [Some(change("d", 2, None)), None] {
            let (sql, params) = m
                .statement(Dialect::Postgres, &event(Some(b"k"), value))
                .expect("delete");
            assert!(sql.starts_with("DELETE FROM"), "{sql}");
            assert_eq!(params, [SqlValue::Text("k".into())]);
        }
    }

    #[test]
    fn a_missing_or_binary_key_and_a_misfit_value_are_rejected_with_their_reason() {
        let m = mapping();
        let value = Some(change("c", 0, Some(5)));
        for key in [None, Some(b"\xff\xfe".as_slice())] {
            let reason = rejected(m.statement(Dialect::MySql, &event(key, value.clone())));
            assert_eq!(reason, Reason::MissingKey);
        }
        for misfit in [
            Value::Long(1),
            change("c", 0, None),
            Value::Record(vec![("op".into(), Value::Long(3))]),
        ] {
            let reason = rejected(m.statement(Dialect::Sqlite, &event(Some(b"k"), Some(misfit))));
            assert!(matches!(reason, Reason::Undecodable { .. }), "{reason}");
        }
    }
}
