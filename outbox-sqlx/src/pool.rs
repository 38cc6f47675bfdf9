//! The connection contract of `outbox-core` ([`SqlPool`], [`SqlConnection`]) on a sqlx pool,
//! so the core's schema store and migration runner run on sqlx.

use outbox_core::Result;
use outbox_core::sql::{
    ColumnType, FromRow, Query, SqlConnection, SqlPool, SqlTransaction, Statement,
};
use outbox_core::table::{Dialect, SqlValue};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use crate::database::{Column, HasDialect, OutboxDatabase, begin_write};
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

/// A connection of a [`SqlxPool`]: a pooled connection, or a transaction on one
/// ([`SqlxTransaction`]).
#[derive(Debug)]
pub struct SqlxConnection<H>(H);

/// A write transaction of a [`SqlxPool`]; dropped uncommitted, it rolls back.
pub type SqlxTransaction<DB> = SqlxConnection<Transaction<'static, DB>>;

mod sealed {
    pub trait Sealed {}
}

/// What a [`SqlxConnection`] runs its statements on: a pooled connection or a transaction.
pub trait ConnectionHolder: sealed::Sealed + Send {
    /// The database.
    type Database: OutboxDatabase;

    /// The connection to run on.
    #[doc(hidden)]
    fn connection(&mut self) -> &mut <Self::Database as sqlx::Database>::Connection;

    /// Gives the connection up instead of returning it to the pool.
    #[doc(hidden)]
    fn discard(self);
}

impl<DB: OutboxDatabase> sealed::Sealed for PoolConnection<DB> {}
impl<DB: OutboxDatabase> ConnectionHolder for PoolConnection<DB> {
    type Database = DB;
    fn connection(&mut self) -> &mut DB::Connection {
        self
    }
    fn discard(self) {
        drop(self.detach());
    }
}

// Any transaction lifetime, not only 'static: the futures holding one must be Send, which
// rustc checks for every lifetime.
impl<DB: OutboxDatabase> sealed::Sealed for &mut Transaction<'_, DB> {}
impl<DB: OutboxDatabase> ConnectionHolder for &mut Transaction<'_, DB> {
    type Database = DB;
    fn connection(&mut self) -> &mut DB::Connection {
        self
    }
    fn discard(self) {
        // The transaction is the caller's: it decides.
    }
}

impl<H: ConnectionHolder> SqlxConnection<H> {
    /// Statements on `holder` (a transaction the caller keeps, say).
    #[cfg(feature = "inbox")]
    pub(crate) fn new(holder: H) -> Self {
        Self(holder)
    }
}

impl<DB: OutboxDatabase> sealed::Sealed for Transaction<'static, DB> {}
impl<DB: OutboxDatabase> ConnectionHolder for Transaction<'static, DB> {
    type Database = DB;
    fn connection(&mut self) -> &mut DB::Connection {
        self
    }
    fn discard(self) {
        // Dropping a transaction rolls it back; its connection goes back clean.
    }
}

fn columns(types: &[ColumnType]) -> Vec<Column> {
    types
        .iter()
        .map(|t| match t {
            ColumnType::I32 => Column::I32,
            ColumnType::I64 => Column::I64,
            ColumnType::Bytes => Column::Bytes,
            _ => Column::Text,
        })
        .collect()
}

impl<H: ConnectionHolder> SqlConnection for SqlxConnection<H> {
    fn dialect(&self) -> Dialect {
        H::Database::DIALECT
    }

    async fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        H::Database::run(self.0.connection(), statement.sql(), params)
            .await
            .map_err(store(operation))
    }

    async fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        let columns = columns(R::COLUMNS);
        let rows = H::Database::rows(self.0.connection(), query.sql(), params, &columns)
            .await
            .map_err(store(operation))?;
        rows.into_iter().map(R::from_row).collect()
    }

    fn discard(self) {
        self.0.discard();
    }
}

impl<DB: OutboxDatabase> SqlTransaction for SqlxConnection<Transaction<'static, DB>> {
    async fn commit(self) -> Result<()> {
        self.0.commit().await.map_err(store("commit"))
    }
}

impl<DB: OutboxDatabase> SqlPool for SqlxPool<DB> {
    fn dialect(&self) -> Dialect {
        DB::DIALECT
    }

    async fn acquire(&self) -> Result<impl SqlConnection + '_> {
        let conn = self.0.acquire().await.map_err(store("connect"))?;
        Ok(SqlxConnection(conn))
    }

    async fn begin_write(&self) -> Result<impl SqlTransaction + '_> {
        let tx = begin_write(&self.0).await.map_err(store("begin"))?;
        Ok(SqlxConnection(tx))
    }
}
