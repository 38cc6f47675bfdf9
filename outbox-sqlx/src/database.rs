//! The one place that speaks sqlx's generic API: binding parameters and decoding columns for
//! any of the three databases. Everything else in the crate is written once, over
//! [`OutboxDatabase`].

use std::future::Future;

use outbox_core::table::Dialect;

use crate::cells::{Cell, FromCells, RowCells};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row,
    Transaction, Type,
};

mod sealed {
    pub trait Sealed {}
}

/// A database the outbox runs on, with its SQL dialect. Implemented for `sqlx::Postgres`,
/// `sqlx::MySql` and `sqlx::Sqlite` under the features of the same names.
pub trait HasDialect: Database + sealed::Sealed {
    /// The dialect of the outbox's SQL.
    const DIALECT: Dialect;

    /// Rows a statement affected (sqlx has no trait for it).
    #[doc(hidden)]
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::Postgres {}
#[cfg(feature = "postgres")]
impl HasDialect for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}
#[cfg(feature = "mysql")]
impl sealed::Sealed for sqlx::MySql {}
#[cfg(feature = "mysql")]
impl HasDialect for sqlx::MySql {
    const DIALECT: Dialect = Dialect::MySql;
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::Sqlite {}
#[cfg(feature = "sqlite")]
impl HasDialect for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

pub use outbox_core::table::SqlValue as Value;

/// The type to decode a column as.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Text,
    Bytes,
    OptBytes,
    I64,
    OptI64,
    I32,
    OptI32,
}

/// A database the outbox can run on: `sqlx::Postgres`, `sqlx::MySql` or `sqlx::Sqlite`, each
/// behind its feature. The methods are the crate's internal plumbing.
#[allow(private_bounds)] // `fetch`'s row types are the crate's own
pub trait OutboxDatabase: Database + HasDialect {
    /// Runs a statement; returns the rows affected.
    #[doc(hidden)]
    fn run(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs a query and decodes every row as `columns`.
    #[doc(hidden)]
    fn rows(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
        columns: &[Column],
    ) -> impl Future<Output = Result<Vec<Vec<Value>>, sqlx::Error>> + Send;

    /// Runs a query and decodes every row as `T`, cell by cell (see [`FromCells`]).
    #[doc(hidden)]
    fn fetch<T: FromCells + Send>(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send;
}

fn decode_cell<DB>(row: &DB::Row, i: usize, column: Column) -> Result<Value, sqlx::Error>
where
    DB: Database,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    Ok(match column {
        Column::Text => Value::Text(row.try_get(i)?),
        Column::Bytes => Value::Bytes(row.try_get(i)?),
        Column::OptBytes => Value::OptBytes(row.try_get(i)?),
        Column::I64 => Value::I64(row.try_get(i)?),
        Column::OptI64 => Value::OptI64(row.try_get(i)?),
        Column::I32 => Value::I32(row.try_get(i)?),
        Column::OptI32 => Value::OptI32(row.try_get(i)?),
    })
}

/// Why a cell did not decode, in one short line without the value.
fn cell_error(e: &sqlx::Error, expected: &str) -> String {
    let text = match e {
        sqlx::Error::ColumnDecode { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    if text.contains("unexpected null") {
        return format!("null, expected {expected}");
    }
    if let Some(found) = text
        .split("compatible with SQL type `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
    {
        return format!("stored as {found}, expected {expected}");
    }
    text.chars().take(200).collect()
}

#[allow(private_bounds)]
impl<DB> OutboxDatabase for DB
where
    DB: Database + HasDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> Vec<u8>: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> i32: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn run(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<u64, sqlx::Error> {
        let query = bind(sqlx::query::<DB>(AssertSqlSafe(sql)), params);
        let result = conn.execute(query).await?;
        Ok(DB::rows_affected(&result))
    }

    async fn rows(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
        columns: &[Column],
    ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        let query = bind(sqlx::query::<DB>(AssertSqlSafe(sql)), params);
        let rows = conn.fetch_all(query).await?;
        rows.iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| decode_cell::<DB>(row, i, *column))
                    .collect()
            })
            .collect()
    }

    async fn fetch<T: FromCells + Send>(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let query = bind(sqlx::query::<DB>(AssertSqlSafe(sql)), params);
        let rows = conn.fetch_all(query).await?;
        rows.iter()
            .map(|row| {
                T::from_cells(&mut RowCursor::<DB> { row, next: 0 })
                    .map_err(|reason| sqlx::Error::Decode(reason.into()))
            })
            .collect()
    }
}

/// The cells of one row of `DB`, read left to right.
struct RowCursor<'r, DB: Database> {
    row: &'r DB::Row,
    next: usize,
}

impl<DB> RowCursor<'_, DB>
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
{
    fn take<T>(&mut self, expected: &str) -> Cell<T>
    where
        T: for<'r> Decode<'r, DB> + Type<DB>,
    {
        let i = self.next;
        self.next += 1;
        self.row.try_get(i).map_err(|e| cell_error(&e, expected))
    }
}

impl<DB> RowCells for RowCursor<'_, DB>
where
    DB: Database,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn text(&mut self) -> Cell<String> {
        self.take("text")
    }
    fn bytes(&mut self) -> Cell<Vec<u8>> {
        self.take("bytes")
    }
    fn opt_bytes(&mut self) -> Cell<Option<Vec<u8>>> {
        self.take("bytes")
    }
    fn i64(&mut self) -> Cell<i64> {
        self.take("an integer")
    }
    fn opt_i64(&mut self) -> Cell<Option<i64>> {
        self.take("an integer")
    }
    fn i32(&mut self) -> Cell<i32> {
        self.take("an integer")
    }
    fn opt_i32(&mut self) -> Cell<Option<i32>> {
        self.take("an integer")
    }
}

fn bind<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    params: Vec<Value>,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Vec<u8>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> i32: Encode<'a, DB> + Type<DB>,
    for<'a> Option<Vec<u8>>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<i32>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
{
    for param in params {
        query = match param {
            Value::Text(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
            Value::OptBytes(v) => query.bind(v),
            Value::I64(v) => query.bind(v),
            Value::OptI64(v) => query.bind(v),
            Value::I32(v) => query.bind(v),
            Value::OptI32(v) => query.bind(v),
            Value::OptText(v) => query.bind(v),
        };
    }
    query
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`), so concurrent writers wait for each other (up to the busy timeout)
/// instead of failing when a read lock cannot be upgraded.
pub(crate) async fn begin_write<DB: OutboxDatabase>(
    pool: &Pool<DB>,
) -> Result<Transaction<'static, DB>, sqlx::Error> {
    match DB::DIALECT {
        Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres | Dialect::MySql => pool.begin().await,
    }
}
