//! The SQL of one liberation: read a chunk's boundary, insert its events, keep the
//! checkpoint.

use super::{LiberationPlan, OrderColumn};
use crate::Result;
use crate::capture::{CAPTURE_CONTENT_TYPE, ColumnKind};
use crate::capture::{hex_source, key_sql, payload_sql, qualified, row_json, uuid_v7};
use crate::sql::{Query, Statement};
use crate::table::{Dialect, Table, TableNames};

/// The statements of a liberation of one table in one mode, chunk size included.
///
/// A chunk runs in one write transaction: [`first_keys`](Self::first_keys) or
/// [`next_keys`](Self::next_keys) reads the ordering values of the next `chunk` rows (as a
/// JSON array of texts per row, see [`super::parse_position`]); the last one bounds the
/// chunk; [`insert_first`](Self::insert_first) or [`insert_next`](Self::insert_next)
/// writes one outbox row per source row in the bounds; the checkpoint is moved
/// ([`update_checkpoint`](Self::update_checkpoint), or
/// [`insert_checkpoint`](Self::insert_checkpoint) after the first chunk). It is updated in
/// place, never deleted and inserted again: a run waiting on its lock must find the moved row
/// (PostgreSQL's `FOR UPDATE` skips a row deleted meanwhile, and the waiting run would start
/// from the first row again).
#[derive(Debug, Clone)]
pub struct LiberateStatements {
    /// The dialect.
    pub dialect: Dialect,
    /// The rows of the table (or the query): () -> count (the progress estimate).
    pub count: Query<i64>,
    /// Reads nothing, but fails if the rows lack a column the events need: () (run on a
    /// custom query before its first chunk).
    pub probe: Statement,
    /// Rows per chunk.
    pub chunk: usize,
    /// The first chunk's positions, and the next row's: () -> position text per row, in
    /// order (`chunk + 1` rows at most).
    pub first_keys: Query<String>,
    /// The next chunk's positions, and the next row's: (position values...) -> position
    /// text per row.
    pub next_keys: Query<String>,
    /// The events of the rows up to a position: (up-to values...).
    pub insert_first: Statement,
    /// The events of the rows after a position up to another: (after values..., up-to
    /// values...).
    pub insert_next: Statement,
    /// The checkpoint, locked for the chunk's transaction (PostgreSQL and MySQL `FOR
    /// UPDATE`; SQLite's write transaction holds the database): (table_name, mode) ->
    /// (last_key, rows_done). Two runs of one liberation at a time thus take turns, each
    /// chunk starting where the other's committed; two first chunks race on the
    /// checkpoint's primary key and one rolls back.
    pub select_checkpoint: Query<(String, i64)>,
    /// Forgets the checkpoint: (table_name, mode).
    pub delete_checkpoint: Statement,
    /// Moves the checkpoint: (last_key, rows_done, table_name, mode).
    pub update_checkpoint: Statement,
    /// Records the checkpoint: (table_name, mode, last_key, rows_done).
    pub insert_checkpoint: Statement,
}

impl LiberateStatements {
    /// The statements of `plan`, writing events with `schema_id`, `chunk` rows at a time.
    ///
    /// # Errors
    ///
    /// [`crate::Error::SchemaIdOutOfRange`] for an id the `schema_id` column cannot hold.
    pub fn new(
        dialect: Dialect,
        names: &TableNames,
        plan: &LiberationPlan,
        schema_id: crate::SchemaId,
        chunk: usize,
    ) -> Result<Self> {
        let schema_id = schema_id.to_column()?;
        let capture = &plan.capture;
        let table = match &plan.query {
            // The closing parenthesis on its own line: a query that ends in a `--`
            // comment would otherwise comment it out.
            Some(query) => format!("({query}\n)"),
            None => qualified(dialect, names, &capture.table),
        };
        let events = names.qualified(dialect, Table::Events);
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let width = plan.order.len();
        let cols = plan
            .order
            .iter()
            .map(|c| format!("r.{}", dialect.quote(&c.column)))
            .collect::<Vec<_>>()
            .join(", ");
        let params = |from: usize| {
            plan.order
                .iter()
                .enumerate()
                .map(|(i, c)| param(dialect, c, from + i))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let after = format!("({cols}) > ({})", params(1));
        let order_by = format!("ORDER BY {cols}");
        let position = position_sql(dialect, &plan.order);
        // The lag bounds the chunk's last position, and so the insert's range too.
        let lag = plan.lag.zip(plan.order.first()).map(|(lag, first)| {
            let column = format!("r.{}", dialect.quote(&first.column));
            format!("{column} <= {}", lag_cutoff(dialect, first.kind, lag))
        });
        let keys = |filter: Option<&str>| {
            let filter = match (filter, &lag) {
                (Some(f), Some(l)) => format!(" WHERE {f} AND {l}"),
                (Some(f), None) => format!(" WHERE {f}"),
                (None, Some(l)) => format!(" WHERE {l}"),
                (None, None) => String::new(),
            };
            // One row past the chunk: a key given twice across the chunk's end shows.
            Query::new(format!(
                "SELECT {position} FROM {table} AS r{filter} {order_by} LIMIT {}",
                chunk.saturating_add(1)
            ))
        };
        let uuid = match dialect {
            Dialect::Postgres => uuid_v7(dialect, "h"),
            Dialect::MySql | Dialect::Sqlite => {
                uuid_v7(dialect, &format!("({})", hex_source(dialect)))
            }
        };
        let after_image = row_json(dialect, &capture.fields, "r");
        // A change in flight on a row of the chunk commits (and writes its trigger's event)
        // before the row is read, or waits until the chunk's events are in: per key, the
        // snapshot's event never follows a newer change.
        let lock = match (plan.lock_rows, dialect) {
            (true, Dialect::Postgres) => " FOR SHARE OF r",
            (true, Dialect::MySql) => " LOCK IN SHARE MODE",
            _ => "",
        };
        let insert = |filter: String| {
            Statement::new(format!(
                "INSERT INTO {events} (event_id, topic, event_key, event_type, schema_id, \
                 content_type, payload) SELECT {uuid}, {topic}, {key}, {event_type}, {schema_id}, \
                 {ct}, {payload} FROM {table} AS r WHERE {filter} {order_by}{lock}",
                topic = literal(&capture.topic),
                key = key_sql(dialect, capture, "r"),
                event_type = literal(&capture.event_type()),
                ct = literal(CAPTURE_CONTENT_TYPE),
                payload = payload_sql(dialect, &literal(plan.mode.op()), "NULL", &after_image),
            ))
        };
        let liberations = names.qualified(dialect, Table::Liberations);
        let p = |n| dialect.placeholder(n);
        let this = format!("table_name = {} AND mode = {}", p(1), p(2));
        Ok(Self {
            dialect,
            chunk,
            count: Query::new(format!("SELECT COUNT(*) FROM {table} AS r")),
            probe: Statement::new(format!(
                "SELECT {position}, {key}, {after_image} FROM {table} AS r WHERE 1 = 0",
                key = key_sql(dialect, capture, "r"),
            )),
            first_keys: keys(None),
            next_keys: keys(Some(&after)),
            insert_first: insert(format!("({cols}) <= ({})", params(1))),
            insert_next: insert(format!("{after} AND ({cols}) <= ({})", params(width + 1))),
            select_checkpoint: Query::new(format!(
                "SELECT last_key, rows_done FROM {liberations} WHERE {this}{}",
                match dialect {
                    Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
                    Dialect::Sqlite => "",
                }
            )),
            delete_checkpoint: Statement::new(format!("DELETE FROM {liberations} WHERE {this}")),
            update_checkpoint: Statement::new(format!(
                "UPDATE {liberations} SET last_key = {}, rows_done = {}, updated_at = {} \
                 WHERE table_name = {} AND mode = {}",
                p(1),
                p(2),
                crate::table::now_default(dialect),
                p(3),
                p(4)
            )),
            insert_checkpoint: Statement::new(format!(
                "INSERT INTO {liberations} (table_name, mode, last_key, rows_done) \
                 VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            )),
        })
    }
}

/// The database's clock minus `lag`, as a value of a timestamp column of `kind`.
fn lag_cutoff(dialect: Dialect, kind: ColumnKind, lag: std::time::Duration) -> String {
    let micros = lag.as_micros();
    match (dialect, kind) {
        (Dialect::Postgres, ColumnKind::Timestamp) => {
            format!("now() - make_interval(secs => {micros} / 1000000.0)")
        }
        (Dialect::Postgres, _) => {
            format!("LOCALTIMESTAMP - make_interval(secs => {micros} / 1000000.0)")
        }
        (Dialect::MySql, _) => format!("NOW(6) - INTERVAL {micros} MICROSECOND"),
        (Dialect::Sqlite, _) => format!(
            "strftime('%Y-%m-%d %H:%M:%f', 'now', '-{}.{:06} seconds')",
            lag.as_secs(),
            lag.subsec_micros()
        ),
    }
}

/// The ordering values of row `r` as a JSON array of texts.
fn position_sql(dialect: Dialect, order: &[OrderColumn]) -> String {
    let texts: Vec<String> = order
        .iter()
        .map(|c| {
            let x = format!("r.{}", dialect.quote(&c.column));
            match dialect {
                Dialect::Postgres => format!("{x}::text"),
                Dialect::MySql => format!("CAST({x} AS CHAR)"),
                Dialect::Sqlite => format!("CAST({x} AS TEXT)"),
            }
        })
        .collect();
    let texts = texts.join(", ");
    match dialect {
        Dialect::Postgres => format!("json_build_array({texts})::text"),
        Dialect::MySql => format!("CAST(JSON_ARRAY({texts}) AS CHAR)"),
        Dialect::Sqlite => format!("json_array({texts})"),
    }
}

/// Placeholder `n` for a position value (bound as text) of column `c`, cast so that it
/// compares as the column's type: PostgreSQL casts to the declared type; MySQL compares a
/// number with a string as floating point, so integers and decimals are cast; SQLite applies
/// the column's affinity to the text itself.
fn param(dialect: Dialect, c: &OrderColumn, n: usize) -> String {
    let p = dialect.placeholder(n);
    match (dialect, c.kind) {
        (Dialect::Postgres, _) => format!("CAST({p} AS {})", c.data_type),
        (Dialect::MySql, ColumnKind::Int | ColumnKind::Long) => format!("CAST({p} AS SIGNED)"),
        (Dialect::MySql, ColumnKind::Decimal { precision, scale }) => {
            format!("CAST({p} AS DECIMAL({precision}, {scale}))")
        }
        _ => p,
    }
}
