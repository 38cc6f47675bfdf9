//! The connection contract of `outbox-core` ([`SqlPool`], [`SqlConnection`]) on a sqlx pool,
//! so the core's schema store and migration runner run on sqlx.

use outbox_core::Result;
use outbox_core::sql::{
    ColumnType, FromRow, Query, SqlConnection, SqlPool, SqlTransaction, Statement,
};
use outbox_core::table::{Dialect, SqlValue};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use crate::database::{Column, OutboxDatabase, begin_write};
use crate::error::store;

/// A sqlx pool as `outbox-core`'s [`SqlPool`]: what the schema store
/// ([`SqlxSchemaStore`](crate::SqlxSchemaStore)) and [`migrate`](crate::migrate) run on.
#[derive(Debug)]
pub struct SqlxPool<DB: OutboxDatabase>(Pool<DB>);

impl<DB: OutboxDatabase> Clone for SqlxPool<DB> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<DB: OutboxDatabase> From<Pool<DB>> for SqlxPool<DB> {
    fn from(pool: Pool<DB>) -> Self {
        Self(pool)
    }
}

/// A connection of a [`SqlxPool`].
#[derive(Debug)]
pub struct SqlxConnection<DB: OutboxDatabase>(PoolConnection<DB>);

/// A write transaction of a [`SqlxPool`]; dropped uncommitted, it rolls back.
#[derive(Debug)]
pub struct SqlxTransaction<DB: OutboxDatabase>(Transaction<'static, DB>);

fn columns(types: &[ColumnType]) -> Vec<Column> {
    types
        .iter()
        .map(|t| match t {
            ColumnType::I32 => Column::I32,
            ColumnType::I64 => Column::I64,
            _ => Column::Text,
        })
        .collect()
}

async fn execute<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    operation: &'static str,
    statement: &Statement,
    params: Vec<SqlValue>,
) -> Result<u64> {
    DB::run(conn, statement.sql(), params)
        .await
        .map_err(store(operation))
}

async fn fetch<DB: OutboxDatabase, R: FromRow>(
    conn: &mut DB::Connection,
    operation: &'static str,
    query: &Query<R>,
    params: Vec<SqlValue>,
) -> Result<Vec<R>> {
    let rows = DB::rows(conn, query.sql(), params, &columns(R::COLUMNS))
        .await
        .map_err(store(operation))?;
    rows.into_iter().map(R::from_row).collect()
}

impl<DB: OutboxDatabase> SqlConnection for SqlxConnection<DB> {
    fn dialect(&self) -> Dialect {
        DB::DIALECT
    }

    async fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        execute::<DB>(&mut self.0, operation, statement, params).await
    }

    async fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        fetch::<DB, R>(&mut self.0, operation, query, params).await
    }

    fn discard(self) {
        drop(self.0.detach());
    }
}

impl<DB: OutboxDatabase> SqlConnection for SqlxTransaction<DB> {
    fn dialect(&self) -> Dialect {
        DB::DIALECT
    }

    async fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        execute::<DB>(&mut self.0, operation, statement, params).await
    }

    async fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        fetch::<DB, R>(&mut self.0, operation, query, params).await
    }
}

impl<DB: OutboxDatabase> SqlTransaction for SqlxTransaction<DB> {
    async fn commit(self) -> Result<()> {
        self.0.commit().await.map_err(store("commit"))
    }
}

impl<DB: OutboxDatabase> SqlPool for SqlxPool<DB> {
    type Connection<'p> = SqlxConnection<DB>;
    type Transaction<'p> = SqlxTransaction<DB>;

    fn dialect(&self) -> Dialect {
        DB::DIALECT
    }

    async fn acquire(&self) -> Result<SqlxConnection<DB>> {
        let conn = self.0.acquire().await.map_err(store("connect"))?;
        Ok(SqlxConnection(conn))
    }

    async fn begin_write(&self) -> Result<SqlxTransaction<DB>> {
        let tx = begin_write(&self.0).await.map_err(store("begin"))?;
        Ok(SqlxTransaction(tx))
    }
}
