//! A sink table: decoded events upserted by key, deleted by change events (`op = d`) and
//! tombstones. The columns come from an Avro record's fields; the statements per dialect.

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::RecordSchema;

use super::{Dialect, Identifier, SqlValue};
use crate::{Error, Result, Schema};

/// The SQL type of a sink column, from its Avro field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `string` (and enums): text.
    Text,
    /// `int`, `long`, `boolean` (0/1): a 64-bit integer.
    Integer,
    /// `bytes`: binary.
    Bytes,
}

/// One mapped column: the record field it is read from, its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkColumn {
    /// The field of the event's record (of `after` for a change event).
    pub field: String,
    /// The column.
    pub column: Identifier,
    /// Its type.
    pub kind: ColumnKind,
}

/// A sink table's layout and statements.
#[derive(Debug, Clone)]
pub struct SinkTable {
    table: Identifier,
    key: Identifier,
    columns: Vec<SinkColumn>,
    change_events: bool,
}

/// The record whose fields become columns: the schema's, or its `after` record for a change
/// event (`{op, before, after, ts}`).
fn row_record(schema: &AvroSchema) -> Result<(&RecordSchema, bool)> {
    let AvroSchema::Record(record) = schema else {
        return Err(unsupported("the sink's schema must be a record"));
    };
    let is_change = ["op", "before", "after"]
        .iter()
        .all(|name| record.fields.iter().any(|f| f.name == *name));
    if !is_change {
        return Ok((record, false));
    }
    for field in record
        .fields
        .iter()
        .filter(|f| f.name == "before" || f.name == "after")
    {
        if let AvroSchema::Union(union) = &field.schema {
            for variant in union.variants() {
                if let AvroSchema::Record(row) = variant {
                    return Ok((row, true));
                }
            }
        }
    }
    Err(unsupported(
        "a change event without a row record in before or after",
    ))
}

fn unsupported(reason: &str) -> Error {
    Error::InvalidConfig {
        key: "sink".to_owned(),
        reason: reason.to_owned(),
    }
}

fn kind(schema: &AvroSchema) -> Option<ColumnKind> {
    match schema {
        AvroSchema::String | AvroSchema::Enum(_) | AvroSchema::Uuid(_) => Some(ColumnKind::Text),
        AvroSchema::Int | AvroSchema::Long | AvroSchema::Boolean => Some(ColumnKind::Integer),
        AvroSchema::Bytes => Some(ColumnKind::Bytes),
        AvroSchema::Union(u) => {
            let mut kinds = u
                .variants()
                .iter()
                .filter(|v| **v != AvroSchema::Null)
                .map(kind);
            let first = kinds.next()??;
            kinds.next().is_none().then_some(first)
        }
        _ => None,
    }
}

impl SinkTable {
    /// A sink into `table`, keyed by `key_column` (the Kafka record key, as text), with
    /// `mapping` as `(field, column)` pairs of the schema's record (of its `after` row for a
    /// change event).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] for an unsafe name; [`Error::InvalidConfig`] when the
    /// schema is no record, a field is missing or of a type the sink does not store (floats,
    /// arrays, maps, nested records, unions of several types).
    pub fn new(
        schema: &Schema,
        table: &str,
        key_column: &str,
        mapping: &[(&str, &str)],
    ) -> Result<Self> {
        let avro = schema.to_avro()?;
        let (record, change_events) = row_record(&avro)?;
        let columns = mapping
            .iter()
            .map(|(field, column)| {
                let f = record
                    .fields
                    .iter()
                    .find(|f| f.name == *field)
                    .ok_or_else(|| unsupported(&format!("field {field} is not in the record")))?;
                let kind = kind(&f.schema).ok_or_else(|| {
                    unsupported(&format!(
                        "field {field}: its type is not stored by the sink"
                    ))
                })?;
                Ok(SinkColumn {
                    field: (*field).to_owned(),
                    column: Identifier::new(column)?,
                    kind,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            table: Identifier::new(table)?,
            key: Identifier::new(key_column)?,
            columns,
            change_events,
        })
    }

    /// The mapped columns.
    pub fn columns(&self) -> &[SinkColumn] {
        &self.columns
    }

    /// Whether the schema is a change event (`{op, before, after, ts}`).
    pub fn change_events(&self) -> bool {
        self.change_events
    }

    /// `CREATE TABLE IF NOT EXISTS` for the table, every mapped column nullable.
    pub fn create(&self, dialect: Dialect) -> String {
        let ty = |kind| match (kind, dialect) {
            (ColumnKind::Text, Dialect::MySql) => "LONGTEXT",
            (ColumnKind::Text, _) => "TEXT",
            (ColumnKind::Integer, _) => "BIGINT",
            (ColumnKind::Bytes, Dialect::Postgres) => "BYTEA",
            (ColumnKind::Bytes, Dialect::MySql) => "LONGBLOB",
            (ColumnKind::Bytes, Dialect::Sqlite) => "BLOB",
        };
        let key_type = if dialect == Dialect::MySql {
            "VARCHAR(255)"
        } else {
            "TEXT"
        };
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({} {key_type} NOT NULL PRIMARY KEY",
            dialect.quote(&self.table),
            dialect.quote(&self.key)
        );
        for c in &self.columns {
            sql.push_str(&format!(
                ", {} {} NULL",
                dialect.quote(&c.column),
                ty(c.kind)
            ));
        }
        sql.push(')');
        sql
    }

    /// The upsert: (key text, then each mapped column's value in order).
    pub fn upsert(&self, dialect: Dialect) -> String {
        let q = |i: &Identifier| dialect.quote(i);
        let names: Vec<String> = std::iter::once(q(&self.key))
            .chain(self.columns.iter().map(|c| q(&c.column)))
            .collect();
        let values: Vec<String> = (1..=names.len()).map(|n| dialect.placeholder(n)).collect();
        let set: Vec<String> = self
            .columns
            .iter()
            .map(|c| match dialect {
                Dialect::MySql => format!("{0} = VALUES({0})", q(&c.column)),
                Dialect::Postgres | Dialect::Sqlite => format!("{0} = excluded.{0}", q(&c.column)),
            })
            .collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(&self.table),
            names.join(", "),
            values.join(", ")
        );
        match (dialect, set.is_empty()) {
            (Dialect::MySql, true) => format!("INSERT IGNORE{}", &insert["INSERT".len()..]),
            (Dialect::MySql, false) => {
                format!("{insert} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            (_, true) => format!("{insert} ON CONFLICT ({}) DO NOTHING", q(&self.key)),
            (_, false) => format!(
                "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                q(&self.key),
                set.join(", ")
            ),
        }
    }

    /// The delete by key: (key text).
    pub fn delete(&self, dialect: Dialect) -> String {
        format!(
            "DELETE FROM {} WHERE {} = {}",
            dialect.quote(&self.table),
            dialect.quote(&self.key),
            dialect.placeholder(1)
        )
    }

    /// What to do with a decoded event: `None` for a delete (a change event with `op = d`),
    /// else the upsert's column values (after the key), in order.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the value does not have the sink's shape.
    pub fn row(&self, value: &apache_avro::types::Value) -> Result<Option<Vec<SqlValue>>> {
        use apache_avro::types::Value;
        let decode = |reason: String| Error::Decode { reason };
        let Value::Record(fields) = value else {
            return Err(decode("the sink's value is not a record".to_owned()));
        };
        let get = |fields: &[(String, Value)], name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let row = if self.change_events {
            let op = match get(fields, "op") {
                Some(Value::Enum(_, op) | Value::String(op)) => op,
                other => return Err(decode(format!("change event op: {other:?}"))),
            };
            if op == "d" {
                return Ok(None);
            }
            match get(fields, "after") {
                Some(Value::Union(_, inner)) => match *inner {
                    Value::Record(row) => row,
                    _ => return Err(decode(format!("change event op {op} without an after row"))),
                },
                Some(Value::Record(row)) => row,
                _ => return Err(decode(format!("change event op {op} without an after row"))),
            }
        } else {
            fields.clone()
        };
        self.columns
            .iter()
            .map(|c| {
                let v = get(&row, &c.field)
                    .ok_or_else(|| decode(format!("field {} missing", c.field)))?;
                sql_value(c, v)
                    .ok_or_else(|| decode(format!("field {}: not a {:?}", c.field, c.kind)))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

fn sql_value(column: &SinkColumn, value: apache_avro::types::Value) -> Option<SqlValue> {
    use apache_avro::types::Value;
    match (column.kind, value) {
        (kind, Value::Union(_, inner)) => sql_value(
            &SinkColumn {
                kind,
                ..column.clone()
            },
            *inner,
        ),
        (ColumnKind::Text, Value::Null) => Some(SqlValue::OptText(None)),
        (ColumnKind::Integer, Value::Null) => Some(SqlValue::OptI64(None)),
        (ColumnKind::Bytes, Value::Null) => Some(SqlValue::OptBytes(None)),
        (ColumnKind::Text, Value::String(s) | Value::Enum(_, s)) => {
            Some(SqlValue::OptText(Some(s)))
        }
        (ColumnKind::Text, Value::Uuid(u)) => Some(SqlValue::OptText(Some(u.to_string()))),
        (ColumnKind::Integer, Value::Int(i)) => Some(SqlValue::OptI64(Some(i.into()))),
        (ColumnKind::Integer, Value::Long(i)) => Some(SqlValue::OptI64(Some(i))),
        (ColumnKind::Integer, Value::Boolean(b)) => Some(SqlValue::OptI64(Some(b.into()))),
        (ColumnKind::Bytes, Value::Bytes(b)) => Some(SqlValue::OptBytes(Some(b))),
        _ => None,
    }
}
