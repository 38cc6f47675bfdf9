//! What a capture publishes: the columns chosen, their Avro fields, the key, and the
//! change-event schema derived from them.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::column::{ColumnKind, SourceColumn, column_kind};
use crate::schema::Schema;
use crate::table::{Dialect, Identifier};
use crate::{Error, Result};

/// What the operator asked to capture (`capture add`), stored with the capture so a later
/// `capture migrate` derives the table's next schema the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSpec {
    /// The table.
    pub table: String,
    /// The topic; the table's name when absent.
    #[serde(default)]
    pub topic: Option<String>,
    /// Only these columns (in table order); every column when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Every column but these.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Field names for columns (`old` -> `new`), so the internal model stays private.
    #[serde(default)]
    pub renames: Vec<(String, String)>,
    /// The key columns, for a table without a primary key (or to override it).
    #[serde(default)]
    pub key: Vec<String>,
}

impl CaptureSpec {
    /// A capture of every column of `table`, keyed by its primary key, to the topic `table`.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            ..Self::default()
        }
    }

    /// The topic events go to.
    pub fn topic(&self) -> &str {
        self.topic.as_deref().unwrap_or(&self.table)
    }

    /// The subject the change-event schema is registered under (`<topic>-value`).
    pub fn subject(&self) -> String {
        format!("{}-value", self.topic())
    }
}

/// One captured column and the field it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedField {
    /// The column.
    pub column: Identifier,
    /// The Avro field name (the column's, or its rename).
    pub field: String,
    /// Its Avro kind.
    pub kind: ColumnKind,
    /// Whether NULL is allowed (a union with null, default null).
    pub nullable: bool,
    /// The column comment.
    pub doc: Option<String>,
}

/// A capture derived from a table's columns: the row fields, the key fields and the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    /// The table.
    pub table: Identifier,
    /// The Kafka topic.
    pub topic: String,
    /// The fields of `Row`, in table order.
    pub fields: Vec<CapturedField>,
    /// The key's fields, in key order.
    pub key: Vec<CapturedField>,
}

fn refused(table: &str, reason: impl Into<String>) -> Error {
    Error::CaptureRefused {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl CapturePlan {
    /// Derives the plan for `spec` from the table's `columns` (as introspected).
    ///
    /// # Errors
    ///
    /// [`Error::CaptureRefused`] for a table with no columns (it does not exist), a column
    /// named in the spec that the table lacks, an empty column list, a column type with no
    /// Avro mapping (naming the column), no primary key and no `key`, an invalid topic or
    /// field name, a column name that is not a safe identifier; [`Error::InvalidIdentifier`]
    /// for an unsafe table name.
    pub fn derive(dialect: Dialect, spec: &CaptureSpec, columns: &[SourceColumn]) -> Result<Self> {
        Self::derive_checked(dialect, spec, columns, true)
    }

    /// Derives the plan of a table already captured with `spec`, after a DDL change: a
    /// column the spec names in `columns`, `exclude` or `renames` that is gone is left out,
    /// so the compatibility check (not this) judges the dropped field. Key columns must
    /// still exist.
    ///
    /// # Errors
    ///
    /// As [`derive`](Self::derive).
    pub fn derive_after_change(
        dialect: Dialect,
        spec: &CaptureSpec,
        columns: &[SourceColumn],
    ) -> Result<Self> {
        Self::derive_checked(dialect, spec, columns, false)
    }

    fn derive_checked(
        dialect: Dialect,
        spec: &CaptureSpec,
        columns: &[SourceColumn],
        strict: bool,
    ) -> Result<Self> {
        let table = Identifier::new(&spec.table)?;
        let name = table.as_str();
        if columns.is_empty() {
            return Err(refused(name, "the table does not exist (no columns found)"));
        }
        if let Some(problem) = topic_problem(spec.topic()) {
            return Err(refused(name, problem));
        }
        let known = |c: &str| columns.iter().any(|col| col.name == c);
        let asked = spec.columns.iter().flatten().chain(&spec.exclude);
        let renamed = spec.renames.iter().map(|(old, _)| old);
        let named: Vec<&String> = if strict {
            asked.chain(renamed).chain(&spec.key).collect()
        } else {
            spec.key.iter().collect()
        };
        for c in named {
            if !known(c) {
                return Err(refused(name, format!("column {c:?} does not exist")));
            }
        }
        if spec.columns.as_ref().is_some_and(Vec::is_empty) {
            return Err(refused(name, "the column list is empty"));
        }
        let chosen = |c: &SourceColumn| {
            spec.columns
                .as_ref()
                .is_none_or(|cols| cols.contains(&c.name))
                && !spec.exclude.contains(&c.name)
        };
        let field = |c: &SourceColumn| -> Result<CapturedField> {
            // Quoting would carry any name into SQL, but a trigger built from one the
            // identifier check refuses is not worth the risk: refused, naming the column.
            let column = Identifier::new(&c.name).map_err(|e| match e {
                Error::InvalidIdentifier { reason, .. } => refused(
                    name,
                    format!(
                        "column {:?} {reason}; leave it out (--exclude) to capture the rest",
                        c.name
                    ),
                ),
                other => other,
            })?;
            let kind = column_kind(dialect, &c.data_type)
                .map_err(|reason| refused(name, format!("column {}: {reason}", c.name)))?;
            let renamed = spec.renames.iter().find(|(old, _)| *old == c.name);
            let field = match renamed {
                Some((_, new)) => Identifier::new(new)
                    .map_err(|_| refused(name, format!("{new:?} is not a valid field name")))?
                    .to_string(),
                None => c.name.clone(),
            };
            Ok(CapturedField {
                column,
                field,
                kind,
                nullable: c.nullable,
                doc: c.comment.clone().filter(|d| !d.is_empty()),
            })
        };
        let fields = columns
            .iter()
            .filter(|c| chosen(c))
            .map(field)
            .collect::<Result<Vec<_>>>()?;
        if fields.is_empty() {
            return Err(refused(name, "no column is left to capture"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.field.as_str())) {
            return Err(refused(
                name,
                format!("two columns become field {:?}", dup.field),
            ));
        }
        let key = if spec.key.is_empty() {
            let mut pk: Vec<&SourceColumn> =
                columns.iter().filter(|c| c.primary_key.is_some()).collect();
            pk.sort_by_key(|c| c.primary_key);
            if pk.is_empty() {
                return Err(refused(
                    name,
                    "the table has no primary key: name the key columns (--key a,b)",
                ));
            }
            pk.into_iter().map(field).collect::<Result<Vec<_>>>()?
        } else {
            let by_name = |k: &String| columns.iter().find(|c| c.name == *k);
            spec.key
                .iter()
                .filter_map(by_name)
                .map(field)
                .collect::<Result<Vec<_>>>()?
        };
        Ok(Self {
            table,
            topic: spec.topic().to_owned(),
            fields,
            key,
        })
    }

    /// The Avro namespace of the change events (`outbox.capture.<table>`).
    pub fn namespace(&self) -> String {
        format!("outbox.capture.{}", self.table)
    }

    /// The full name of the change-event record (`ce_type`).
    pub fn event_type(&self) -> String {
        format!("{}.Change", self.namespace())
    }

    /// The change-event schema (DESIGN §8): `{op: enum {c,u,d,r}, before: null|Row, after:
    /// null|Row, ts: timestamp-micros}`, `Row` holding the captured fields.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] if the result does not parse (a bug, not an input).
    pub fn schema(&self) -> Result<Schema> {
        let row_fields: Vec<Json> = self.fields.iter().map(field_json).collect();
        let json = json!({
            "type": "record",
            "name": "Change",
            "namespace": self.namespace(),
            "doc": format!("A change of a row of table {}", self.table),
            "fields": [
                {"name": "op", "doc": "c create, u update, d delete, r snapshot read",
                 "type": {"type": "enum", "name": "Op", "symbols": ["c", "u", "d", "r"]}},
                {"name": "before", "doc": "The row before the change (null for c and r)",
                 "type": ["null", {"type": "record", "name": "Row", "fields": row_fields}],
                 "default": null},
                {"name": "after", "doc": "The row after the change (null for d)",
                 "type": ["null", "Row"], "default": null},
                {"name": "ts", "doc": "When the change was captured",
                 "type": {"type": "long", "logicalType": "timestamp-micros"}}
            ]
        });
        Schema::parse_json(&json)
    }
}

fn field_json(f: &CapturedField) -> Json {
    let mut field = if f.nullable {
        json!({"name": f.field, "type": ["null", f.kind.avro_type()], "default": null})
    } else {
        json!({"name": f.field, "type": f.kind.avro_type()})
    };
    if let (Some(doc), Some(obj)) = (&f.doc, field.as_object_mut()) {
        obj.insert("doc".to_owned(), json!(doc));
    }
    field
}

/// Why Kafka would refuse `topic`, if it would (the trigger writes it as a SQL literal, so
/// only Kafka's own characters are allowed).
fn topic_problem(topic: &str) -> Option<String> {
    if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
        return Some(format!("{topic:?} is not a valid Kafka topic name"));
    }
    topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("topic: {c:?} is not allowed (letters, digits, '.', '_', '-')"))
}
