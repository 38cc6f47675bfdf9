//! Change capture of existing tables with triggers (DESIGN §8), as I/O-free data: the
//! narrowest Avro type of each column, the change-event schema, the triggers per dialect,
//! the SQL that introspects a table and keeps the record of captures, and the relay's
//! encoding of a captured row's JSON image.
//!
//! A captured change is the record `{op: enum {c, u, d, r}, before: null|Row, after:
//! null|Row, ts}` (Debezium's shape; `r` is a snapshot read, written by query liberation),
//! keyed by the primary key. Triggers cannot encode Avro, so the outbox row holds a JSON
//! image under [`CAPTURE_CONTENT_TYPE`] with the registered schema id; the relay encodes it
//! ([`encode_image`]) and dead-letters a row that does not fit.
//!
//! The back ends run it: `outbox_sqlx::capture` introspects, registers, installs and
//! migrates. Query liberation reuses [`CapturePlan`] (the schema and the row image) with
//! `op = r` or `u`.

mod column;
mod ddl;
mod guard;
mod image;
mod plan;
mod row_image;
mod server;
mod trigger;

pub use column::{ColumnKind, MAX_DECIMAL_PRECISION, SourceColumn, column_kind};
pub use ddl::check_migrate_ddl;
pub use guard::{MIGRATE_SETTING, guard_statements, unguard_statements};
pub use image::encode_image;
pub use plan::{CapturePlan, CaptureSpec, CapturedField};
pub(crate) use row_image::row_json;
pub use server::{MIN_MARIADB, check_mysql_server};
pub(crate) use trigger::{hex_source, key_sql, payload_sql, qualified, uuid_v7};
pub use trigger::{install_statements, remove_statements};

use crate::sql::{Query, Statement};
use crate::table::{Dialect, Identifier, SqlValue, Table, TableNames};

/// The content type of a captured row's payload: the change event as JSON, to be encoded
/// by the relay with the row's schema id.
pub const CAPTURE_CONTENT_TYPE: &str = "application/vnd.outbox.capture+json";

/// The longest DDL `capture migrate` accepts, in bytes.
pub const MAX_DDL_BYTES: usize = 64 * 1024;

/// The SQL of captures: introspection and the `<prefix>_captures` bookkeeping.
#[derive(Debug, Clone)]
pub struct CaptureStatements {
    /// The dialect.
    pub dialect: Dialect,
    /// A table's columns in table order: (table) -> [`SourceColumn`] rows (name text,
    /// data_type text, nullable i64, comment text, primary-key position i64, 0 when not in
    /// the key), in one query whatever the width; its parameters are
    /// [`columns_params`](Self::columns_params).
    pub select_columns: Query<SourceColumn>,
    /// Every capture, by table name: () -> [`CaptureRow`].
    pub select_captures: Query<CaptureRow>,
    /// One capture: (table_name) -> [`CaptureRow`].
    pub select_capture: Query<CaptureRow>,
    /// Records a capture: (table_name, topic, subject, schema_id i64, spec text).
    pub insert_capture: Statement,
    /// Forgets a capture: (table_name).
    pub delete_capture: Statement,
}

/// A row of `<prefix>_captures`: (table_name, topic, subject, schema_id, spec as JSON).
pub type CaptureRow = (String, String, String, i64, String);

impl CaptureStatements {
    /// The statements for `dialect` and the outbox's table names.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        let captures = names.qualified(dialect, Table::Captures);
        let p = |n| dialect.placeholder(n);
        let select_columns = match dialect {
            // One query whatever the width: the key positions are joined, not looked up
            // per column.
            Dialect::Postgres => format!(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                 CASE WHEN a.attnotnull THEN 0 ELSE 1 END::bigint, \
                 COALESCE(col_description(a.attrelid, a.attnum), ''), \
                 COALESCE(k.n, 0)::bigint \
                 FROM pg_attribute a LEFT JOIN (SELECT u.att, u.n FROM pg_index i, \
                 unnest(i.indkey) WITH ORDINALITY AS u(att, n) \
                 WHERE i.indrelid = to_regclass({p1}) AND i.indisprimary) k ON k.att = a.attnum \
                 WHERE a.attrelid = to_regclass({p1}) AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
                p1 = p(1)
            ),
            Dialect::MySql => {
                let schema = names
                    .schema()
                    .map_or_else(|| "DATABASE()".to_owned(), |s| format!("'{s}'"));
                // One query whatever the width (a lookup per column took minutes at 1,000
                // columns on MariaDB). The key positions are a derived table of their own,
                // materialized (GROUP BY) so its constant schema and table name restrict
                // information_schema to the one table instead of every database's.
                format!(
                    "SELECT CAST(c.column_name AS CHAR), CAST(c.column_type AS CHAR), \
                     CAST(CASE WHEN c.is_nullable = 'YES' THEN 1 ELSE 0 END AS SIGNED), \
                     CAST(COALESCE(c.column_comment, '') AS CHAR), \
                     CAST(COALESCE(k.ordinal_position, 0) AS SIGNED) \
                     FROM information_schema.columns c LEFT JOIN \
                     (SELECT column_name, ordinal_position FROM information_schema.key_column_usage \
                     WHERE table_schema = {schema} AND table_name = ? AND constraint_name = 'PRIMARY' \
                     GROUP BY column_name, ordinal_position) k ON k.column_name = c.column_name \
                     WHERE c.table_schema = {schema} AND c.table_name = ? ORDER BY c.ordinal_position"
                )
            }
            Dialect::Sqlite => {
                "SELECT name, type, CASE WHEN \"notnull\" OR (pk > 0 AND upper(type) = 'INTEGER') \
                 THEN 0 ELSE 1 END, '', pk FROM pragma_table_info(?) ORDER BY cid"
                    .to_owned()
            }
        };
        let columns = "table_name, topic, subject, schema_id, spec";
        Self {
            dialect,
            select_columns: Query::new(select_columns),
            select_captures: Query::new(format!(
                "SELECT {columns} FROM {captures} ORDER BY table_name"
            )),
            select_capture: Query::new(format!(
                "SELECT {columns} FROM {captures} WHERE table_name = {}",
                p(1)
            )),
            insert_capture: Statement::new(format!(
                "INSERT INTO {captures} ({columns}) VALUES ({}, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            )),
            delete_capture: Statement::new(format!(
                "DELETE FROM {captures} WHERE table_name = {}",
                p(1)
            )),
        }
    }

    /// The parameters of [`select_columns`](Self::select_columns) for `table`: on PostgreSQL
    /// the quoted, qualified name; on MySQL the name twice (the key positions and the
    /// columns); on SQLite the name.
    pub fn columns_params(&self, names: &TableNames, table: &Identifier) -> Vec<SqlValue> {
        match self.dialect {
            Dialect::Postgres => vec![SqlValue::Text(trigger::qualified(
                self.dialect,
                names,
                table,
            ))],
            Dialect::MySql => vec![SqlValue::Text(table.to_string()); 2],
            Dialect::Sqlite => vec![SqlValue::Text(table.to_string())],
        }
    }
}
