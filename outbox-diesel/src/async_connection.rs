//! The async counterpart of [`OutboxConnection`](crate::OutboxConnection): the same statements,
//! bound the same way ([`BindParams`]) and decoded the same way, run through `diesel-async`.

use std::future::Future;

use diesel::QueryResult;
use diesel::deserialize::FromSql;
use diesel::query_builder::{BoxedSqlQuery, QueryFragment, QueryId, SqlQuery};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use outbox_core::sql::FromRow;
use outbox_core::table::SqlValue;

use crate::connection::{BindParams, DieselBackend, Positional, decode_rows};

/// A `diesel-async` connection the outbox can publish on: `AsyncPgConnection`,
/// `AsyncMysqlConnection`, or a pooled one (bb8, deadpool, mobc) that derefs to them. The
/// methods are the crate's internal plumbing.
pub trait AsyncOutboxConnection: AsyncConnection<Backend: DieselBackend> + Send {
    /// Runs a statement; returns the rows affected.
    #[doc(hidden)]
    fn run(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = QueryResult<usize>> + Send;

    /// Runs a query and decodes every row as `R`'s columns, by position.
    #[doc(hidden)]
    fn load_rows<R: FromRow>(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = QueryResult<Vec<R>>> + Send;
}

impl<C, B> AsyncOutboxConnection for C
where
    C: AsyncConnection<Backend = B> + Send,
    B: DieselBackend + BindParams + 'static,
    i32: FromSql<Integer, B>,
    i64: FromSql<BigInt, B>,
    String: FromSql<Text, B>,
    Vec<u8>: FromSql<diesel::sql_types::Binary, B>,
    BoxedSqlQuery<'static, B, SqlQuery>: QueryFragment<B> + QueryId + Send,
{
    async fn run(&mut self, sql: &str, params: Vec<SqlValue>) -> QueryResult<usize> {
        B::bind(sql, params).execute(self).await
    }

    async fn load_rows<R: FromRow>(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> QueryResult<Vec<R>> {
        let rows: Vec<Positional<R>> = B::bind(sql, params).load(self).await?;
        decode_rows(rows)
    }
}
