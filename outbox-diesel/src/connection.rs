//! The one place that speaks diesel's generic API: binding the shared statements' parameters
//! and loading rows by name, for any of the three backends.

use diesel::backend::Backend;
use diesel::connection::LoadConnection;
use diesel::deserialize::{FromSql, QueryableByName};
use diesel::query_builder::{BoxedSqlQuery, QueryFragment, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Integer, Nullable, Text};
use diesel::{Connection, QueryResult, RunQueryDsl};
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
impl DieselBackend for diesel::pg::Pg {
    const DIALECT: Dialect = Dialect::Postgres;
}
#[cfg(feature = "mysql")]
impl sealed::Sealed for diesel::mysql::Mysql {}
#[cfg(feature = "mysql")]
impl DieselBackend for diesel::mysql::Mysql {
    const DIALECT: Dialect = Dialect::MySql;
}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for diesel::sqlite::Sqlite {}
#[cfg(feature = "sqlite")]
impl DieselBackend for diesel::sqlite::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

/// A diesel connection the outbox can publish on: `PgConnection`, `MysqlConnection` or
/// `SqliteConnection`. The methods are the crate's internal plumbing.
pub trait OutboxConnection: Connection<Backend: DieselBackend> + LoadConnection + Send {
    /// Runs a statement; returns the rows affected.
    #[doc(hidden)]
    fn run(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<usize>;

    /// Runs a query whose one column is named `value`, of SQL type INTEGER.
    #[doc(hidden)]
    fn load_i32(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<i32>>;

    /// Runs a query whose one column is named `value`, of SQL type BIGINT.
    #[doc(hidden)]
    fn load_i64(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<i64>>;

    /// Runs a query whose one column is named `value`, of SQL type TEXT.
    #[doc(hidden)]
    fn load_text(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<String>>;

    /// Runs the schema versions query: `(id, version, schema_json)`.
    #[doc(hidden)]
    fn load_versions(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> QueryResult<Vec<(i32, i32, String)>>;
}

/// One-column rows; the shared statements name that column `value`.
macro_rules! value_row {
    ($($name:ident: $t:ty as $st:ty),*) => {$(
        #[derive(QueryableByName)]
        struct $name {
            #[diesel(sql_type = $st)]
            value: $t,
        }
    )*};
}
value_row!(I32Value: i32 as Integer, I64Value: i64 as BigInt, TextValue: String as Text);

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Text)]
    schema_json: String,
}

impl<C, B> OutboxConnection for C
where
    C: Connection<Backend = B> + LoadConnection + Send,
    B: DieselBackend + BindParams + 'static,
    i32: FromSql<Integer, B>,
    i64: FromSql<BigInt, B>,
    String: FromSql<Text, B>,
    BoxedSqlQuery<'static, B, SqlQuery>: QueryFragment<B>,
{
    fn run(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<usize> {
        B::bind(sql, params).execute(self)
    }

    fn load_i32(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<i32>> {
        let rows: Vec<I32Value> = B::bind(sql, params).load(self)?;
        Ok(rows.into_iter().map(|r| r.value).collect())
    }

    fn load_i64(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<i64>> {
        let rows: Vec<I64Value> = B::bind(sql, params).load(self)?;
        Ok(rows.into_iter().map(|r| r.value).collect())
    }

    fn load_text(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<Vec<String>> {
        let rows: Vec<TextValue> = B::bind(sql, params).load(self)?;
        Ok(rows.into_iter().map(|r| r.value).collect())
    }

    fn load_versions(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> QueryResult<Vec<(i32, i32, String)>> {
        let rows: Vec<VersionRow> = B::bind(sql, params).load(self)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, r.version, r.schema_json))
            .collect())
    }
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
            };
        }
        query
    }
}
