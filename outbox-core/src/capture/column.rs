//! A table's columns as the database describes them, and the narrowest Avro type of each.

use serde_json::{Value as Json, json};

use crate::sql::{ColumnType, FromRow};
use crate::table::{Dialect, SqlValue};
use crate::{Error, Result};

/// The largest decimal precision captured: a wider `NUMERIC` is refused rather than rounded.
pub const MAX_DECIMAL_PRECISION: u32 = 76;

/// One column of a table, as introspected (`pg_catalog`, `information_schema`, `pragma
/// table_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    /// The column's name, as the database spells it.
    pub name: String,
    /// The declared type, as the catalog prints it (`numeric(10,2)`, `int(10) unsigned`,
    /// `timestamp with time zone`, `VARCHAR(20)`).
    pub data_type: String,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// The column comment, if any: becomes the field's `doc`.
    pub comment: Option<String>,
    /// Position in the primary key (from 1), if the column is part of it.
    pub primary_key: Option<u32>,
}

impl FromRow for SourceColumn {
    /// As [`CaptureStatements::select_columns`](super::CaptureStatements::select_columns)
    /// selects them: name, type, nullable (0 or 1), comment ('' for none), primary-key
    /// position (0 when not in the key).
    const COLUMNS: &'static [ColumnType] = <(String, String, i64, String, i64)>::COLUMNS;

    fn from_row(columns: Vec<SqlValue>) -> Result<Self> {
        let (name, data_type, nullable, comment, key) =
            <(String, String, i64, String, i64)>::from_row(columns)?;
        let primary_key = match u32::try_from(key) {
            Ok(0) => None,
            Ok(position) => Some(position),
            Err(_) => {
                return Err(Error::Decode {
                    reason: format!("column {name}: primary-key position {key} out of range"),
                });
            }
        };
        Ok(Self {
            name,
            data_type,
            nullable: nullable != 0,
            comment: Some(comment).filter(|c| !c.is_empty()),
            primary_key,
        })
    }
}

/// The Avro shape of a captured column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `boolean`.
    Boolean,
    /// `int`: integers of at most 32 bits.
    Int,
    /// `long`: integers of at most 64 bits.
    Long,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes` with the `decimal` logical type.
    Decimal {
        /// Digits in all.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `string`.
    String,
    /// `string` holding JSON text.
    Json,
    /// `bytes`.
    Bytes,
    /// `int` with the `date` logical type (days since 1970-01-01).
    Date,
    /// `long` with `timestamp-micros` (a point in time, UTC).
    Timestamp,
    /// `long` with `local-timestamp-micros` (a wall-clock time without a zone).
    LocalTimestamp,
    /// `long` with `time-micros`.
    Time,
    /// `string` with the `uuid` logical type.
    Uuid,
}

impl ColumnKind {
    /// The Avro type of a non-null value of this kind.
    pub fn avro_type(self) -> Json {
        match self {
            Self::Boolean => json!("boolean"),
            Self::Int => json!("int"),
            Self::Long => json!("long"),
            Self::Float => json!("float"),
            Self::Double => json!("double"),
            Self::Decimal { precision, scale } => json!({
                "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale
            }),
            Self::String | Self::Json => json!("string"),
            Self::Bytes => json!("bytes"),
            Self::Date => json!({"type": "int", "logicalType": "date"}),
            Self::Timestamp => json!({"type": "long", "logicalType": "timestamp-micros"}),
            Self::LocalTimestamp => {
                json!({"type": "long", "logicalType": "local-timestamp-micros"})
            }
            Self::Time => json!({"type": "long", "logicalType": "time-micros"}),
            Self::Uuid => json!({"type": "string", "logicalType": "uuid"}),
        }
    }
}

/// The narrowest Avro kind of a column's declared type, or why it has none.
///
/// # Errors
///
/// A reason naming the type when no Avro type holds its values exactly.
pub fn column_kind(dialect: Dialect, data_type: &str) -> Result<ColumnKind, String> {
    let t = data_type.trim().to_ascii_lowercase();
    let (base, args) = split_args(&t);
    let kind = match dialect {
        Dialect::Postgres => postgres_kind(&t, base, args.as_deref()),
        Dialect::MySql => mysql_kind(&t, base, args.as_deref()),
        Dialect::Sqlite => sqlite_kind(&t, base, args.as_deref()),
    };
    match kind {
        Some(Ok(kind)) => Ok(kind),
        Some(Err(reason)) => Err(reason),
        None => Err(format!("type {data_type:?} has no Avro mapping")),
    }
}

/// `numeric(10,2)` -> (`numeric`, `10,2`); the text after the arguments stays in the base.
fn split_args(t: &str) -> (&str, Option<String>) {
    match (t.find('('), t.find(')')) {
        (Some(open), Some(close)) if close > open => {
            (t[..open].trim(), Some(t[open + 1..close].replace(' ', "")))
        }
        _ => (t, None),
    }
}

fn decimal(args: Option<&str>) -> Result<ColumnKind, String> {
    let Some(args) = args else {
        return Err(
            "decimal without precision and scale has no exact Avro mapping \
                    (declare it numeric(p,s))"
                .to_owned(),
        );
    };
    let mut parts = args.split(',');
    let precision: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("cannot read the precision of decimal({args})"))?;
    let scale: u32 = match parts.next() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("cannot read the scale of decimal({args})"))?,
        None => 0,
    };
    if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
        return Err(format!(
            "decimal({precision},{scale}) is outside what is captured (precision 1 to \
             {MAX_DECIMAL_PRECISION}, scale at most the precision)"
        ));
    }
    Ok(ColumnKind::Decimal { precision, scale })
}

fn postgres_kind(t: &str, base: &str, args: Option<&str>) -> Option<Result<ColumnKind, String>> {
    if t.ends_with("[]") {
        return None;
    }
    Some(Ok(match base {
        "boolean" => ColumnKind::Boolean,
        "smallint" | "integer" => ColumnKind::Int,
        "bigint" => ColumnKind::Long,
        "real" => ColumnKind::Float,
        "double precision" => ColumnKind::Double,
        "numeric" => return Some(decimal(args)),
        "text" | "character varying" | "character" => ColumnKind::String,
        "json" | "jsonb" => ColumnKind::Json,
        "bytea" => ColumnKind::Bytes,
        "date" => ColumnKind::Date,
        "uuid" => ColumnKind::Uuid,
        _ if base.starts_with("timestamp") && t.ends_with("with time zone") => {
            ColumnKind::Timestamp
        }
        _ if base.starts_with("timestamp") => ColumnKind::LocalTimestamp,
        _ if base.starts_with("time") && t.ends_with("without time zone") => ColumnKind::Time,
        _ => return None,
    }))
}

fn mysql_kind(t: &str, base: &str, args: Option<&str>) -> Option<Result<ColumnKind, String>> {
    let unsigned = t.contains("unsigned");
    let base = base.split_whitespace().next().unwrap_or(base);
    Some(Ok(match base {
        "tinyint" | "smallint" | "mediumint" | "year" => ColumnKind::Int,
        "int" | "integer" if unsigned => ColumnKind::Long,
        "int" | "integer" => ColumnKind::Int,
        "bigint" if unsigned => {
            return Some(Err(
                "bigint unsigned does not fit an Avro long (declare it decimal(20,0))".to_owned(),
            ));
        }
        "bigint" => ColumnKind::Long,
        "float" => ColumnKind::Float,
        "double" | "real" => ColumnKind::Double,
        "decimal" | "numeric" => return Some(decimal(args.or(Some("10,0")))),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            ColumnKind::String
        }
        "json" => ColumnKind::Json,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Bytes
        }
        "date" => ColumnKind::Date,
        "datetime" => ColumnKind::LocalTimestamp,
        "timestamp" => ColumnKind::Timestamp,
        "uuid" => ColumnKind::Uuid,
        _ => return None,
    }))
}

/// SQLite has no column types, only declared ones; a declared type is mapped when its name
/// says what it holds. Values that do not fit (SQLite stores anything anywhere) are
/// dead-lettered by the relay.
fn sqlite_kind(_t: &str, base: &str, args: Option<&str>) -> Option<Result<ColumnKind, String>> {
    Some(Ok(match base {
        "boolean" | "bool" => ColumnKind::Boolean,
        "date" => ColumnKind::Date,
        "datetime" | "timestamp" => ColumnKind::Timestamp,
        "uuid" => ColumnKind::Uuid,
        "json" => ColumnKind::Json,
        "decimal" | "numeric" => return Some(decimal(args)),
        _ if base.contains("int") => ColumnKind::Long,
        _ if base.contains("char") || base.contains("clob") || base.contains("text") => {
            ColumnKind::String
        }
        _ if base.contains("blob") => ColumnKind::Bytes,
        _ if base.contains("real") || base.contains("floa") || base.contains("doub") => {
            ColumnKind::Double
        }
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_narrowest_types() {
        let pg = |t| column_kind(Dialect::Postgres, t);
        assert_eq!(pg("integer"), Ok(ColumnKind::Int));
        assert_eq!(pg("bigint"), Ok(ColumnKind::Long));
        assert_eq!(
            pg("numeric(10,2)"),
            Ok(ColumnKind::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(pg("timestamp(3) with time zone"), Ok(ColumnKind::Timestamp));
        assert_eq!(
            pg("timestamp without time zone"),
            Ok(ColumnKind::LocalTimestamp)
        );
        assert!(pg("numeric").is_err());
        assert!(pg("integer[]").is_err_and(|e| e.contains("integer[]")));
        assert!(pg("point").is_err());
        let my = |t| column_kind(Dialect::MySql, t);
        assert_eq!(my("int(10) unsigned"), Ok(ColumnKind::Long));
        assert_eq!(my("int(11)"), Ok(ColumnKind::Int));
        assert!(my("bigint(20) unsigned").is_err());
        assert!(my("geometry").is_err());
        let lite = |t| column_kind(Dialect::Sqlite, t);
        assert_eq!(lite("INTEGER"), Ok(ColumnKind::Long));
        assert_eq!(lite("VARCHAR(20)"), Ok(ColumnKind::String));
        assert!(lite("").is_err());
        assert!(lite("numeric(1000,2)").is_err());
    }
}
