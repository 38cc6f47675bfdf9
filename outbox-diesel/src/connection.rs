//! The one place that speaks diesel's generic API: binding the shared statements' parameters
//! and loading rows by name, for any of the three backends.

use diesel::backend::Backend;
use diesel::connection::LoadConnection;
use std::marker::PhantomData;

use diesel::deserialize::{self, FromSql, QueryableByName};
use diesel::query_builder::{BoxedSqlQuery, QueryFragment, SqlQuery};
use diesel::result::UnexpectedEndOfRow;
use diesel::row::{Field, NamedRow, Row};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Integer, Nullable, Text};
use diesel::{Connection, QueryResult, RunQueryDsl};
use outbox_core::sql::{ColumnType, FromRow};
use outbox_core::table::{Dialect, SqlValue};

mod sealed {
    pub trait Sealed {}
}

/// A diesel backend the outbox runs on, with its SQL dialect: `Pg`, `Mysql` or `Sqlite`
/// under the features of the same names.
pub trait DieselBackend: Backend + sealed::Sealed {
    /// The dialect of the outbox's SQL.
    const DIALECT: Dialect;
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for diesel::pg::Pg {}
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl DieselBackend for diesel::pg::Pg {
    const DIALECT: Dialect = Dialect::Postgres;
}
#[cfg(feature = "mysql")]
impl sealed::Sealed for diesel::mysql::Mysql {}
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
impl DieselBackend for diesel::mysql::Mysql {
    const DIALECT: Dialect = Dialect::MySql;
}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for diesel::sqlite::Sqlite {}
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
impl DieselBackend for diesel::sqlite::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

/// A diesel connection the outbox can publish on: `PgConnection`, `MysqlConnection` or
/// `SqliteConnection`. The methods are the crate's internal plumbing.
pub trait OutboxConnection: Connection<Backend: DieselBackend> + LoadConnection + Send {
    /// Runs a statement; returns the rows affected.
    #[doc(hidden)]
    fn run(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<usize>;

    /// Runs a query and decodes every row as `R`'s columns, by position.
    #[doc(hidden)]
    fn load_rows<R: FromRow>(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<R>>;

    /// Begins a transaction that will write: on SQLite, outside a transaction, `BEGIN
    /// IMMEDIATE`, so two writers queue on the busy timeout instead of one failing with
    /// "database is locked" when both upgrade a read lock; elsewhere (and nested, as a
    /// savepoint) the connection's own `BEGIN`.
    #[doc(hidden)]
    fn begin_write(&mut self) -> QueryResult<()>;
}

/// A row decoded by position as `R`'s column types: the shared statements' rows, whatever
/// their column names.
pub(crate) struct Positional<R> {
    values: Vec<SqlValue>,
    row: PhantomData<R>,
}

impl<B, R> QueryableByName<B> for Positional<R>
where
    B: Backend,
    R: FromRow,
    i32: FromSql<Integer, B>,
    i64: FromSql<BigInt, B>,
    String: FromSql<Text, B>,
    Vec<u8>: FromSql<Binary, B>,
{
    fn build<'a>(row: &impl NamedRow<'a, B>) -> deserialize::Result<Self> {
        let values = R::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let field = Row::get(row, i).ok_or(UnexpectedEndOfRow)?;
                let value = field.value();
                Ok(match column {
                    ColumnType::I32 => {
                        SqlValue::I32(FromSql::<Integer, B>::from_nullable_sql(value)?)
                    }
                    ColumnType::I64 => {
                        SqlValue::I64(FromSql::<BigInt, B>::from_nullable_sql(value)?)
                    }
                    ColumnType::Bytes => {
                        SqlValue::Bytes(FromSql::<Binary, B>::from_nullable_sql(value)?)
                    }
                    _ => SqlValue::Text(FromSql::<Text, B>::from_nullable_sql(value)?),
                })
            })
            .collect::<deserialize::Result<_>>()?;
        Ok(Self {
            values,
            row: PhantomData,
        })
    }
}

impl<C, B> OutboxConnection for C
where
    C: Connection<Backend = B> + LoadConnection + Send + 'static,
    B: DieselBackend + BindParams + 'static,
    i32: FromSql<Integer, B>,
    i64: FromSql<BigInt, B>,
    String: FromSql<Text, B>,
    Vec<u8>: FromSql<Binary, B>,
    BoxedSqlQuery<'static, B, SqlQuery>: QueryFragment<B>,
{
    fn run(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<usize> {
        B::bind(sql, params).execute(self)
    }

    fn load_rows<R: FromRow>(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<R>> {
        decode_rows(B::bind(sql, params).load(self)?)
    }

    fn begin_write(&mut self) -> QueryResult<()> {
        #[cfg(feature = "sqlite")]
        if let Some(sqlite) =
            (self as &mut dyn std::any::Any).downcast_mut::<diesel::sqlite::SqliteConnection>()
        {
            use diesel::connection::AnsiTransactionManager;
            match AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
                Err(diesel::result::Error::AlreadyInTransaction) => {}
                done => return done,
            }
        }
        <C::TransactionManager as diesel::connection::TransactionManager<C>>::begin_transaction(
            self,
        )
    }
}

/// The rows loaded by position, built as `R`s.
pub(crate) fn decode_rows<R: FromRow>(rows: Vec<Positional<R>>) -> QueryResult<Vec<R>> {
    rows.into_iter()
        .map(|r| {
            R::from_row(r.values)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
        })
        .collect()
}

/// Binding the shared statements' parameters, for any backend with the SQL types they use.
#[doc(hidden)]
pub trait BindParams: Backend + Sized {
    /// `sql` with `params` bound in order.
    fn bind(sql: &str, params: Vec<SqlValue>) -> BoxedSqlQuery<'static, Self, SqlQuery>;
}

impl<B> BindParams for B
where
    B: Backend
        + HasSqlType<Text>
        + HasSqlType<Binary>
        + HasSqlType<BigInt>
        + HasSqlType<Integer>
        + 'static,
    String: ToSql<Text, B>,
    Vec<u8>: ToSql<Binary, B>,
    Option<Vec<u8>>: ToSql<Nullable<Binary>, B>,
    i64: ToSql<BigInt, B>,
    Option<i64>: ToSql<Nullable<BigInt>, B>,
    i32: ToSql<Integer, B>,
    Option<i32>: ToSql<Nullable<Integer>, B>,
    Option<String>: ToSql<Nullable<Text>, B>,
{
    fn bind(sql: &str, params: Vec<SqlValue>) -> BoxedSqlQuery<'static, B, SqlQuery> {
        let mut query = diesel::sql_query(sql).into_boxed::<B>();
        for param in params {
            query = match param {
                SqlValue::Text(v) => query.bind::<Text, _>(v),
                SqlValue::Bytes(v) => query.bind::<Binary, _>(v),
                SqlValue::OptBytes(v) => query.bind::<Nullable<Binary>, _>(v),
                SqlValue::I64(v) => query.bind::<BigInt, _>(v),
                SqlValue::OptI64(v) => query.bind::<Nullable<BigInt>, _>(v),
                SqlValue::I32(v) => query.bind::<Integer, _>(v),
                SqlValue::OptI32(v) => query.bind::<Nullable<Integer>, _>(v),
                SqlValue::OptText(v) => query.bind::<Nullable<Text>, _>(v),
            };
        }
        query
    }
}
