//! The small connection contract the writers implement, so that the schema store and the
//! migration runner are written once, here, for sqlx and diesel alike.
//!
//! Nothing here does I/O: a back end implements [`SqlPool`] (where connections come from),
//! [`SqlConnection`] (run a [`Statement`], fetch a [`Query`]'s typed rows) and
//! [`SqlTransaction`]; [`SqlSchemaStore`](crate::registry::SqlSchemaStore) and [`migrate`]
//! run over them.

mod migrate;
mod row;

use std::future::Future;
use std::marker::PhantomData;

pub use migrate::migrate;
pub use row::{ColumnType, FromRow, FromSqlValue};

use crate::Result;
use crate::table::{Dialect, SqlValue};

/// A statement that returns no rows, with its parameters documented where it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
}

impl Statement {
    /// A statement of `sql` text: one of the outbox's own, or a back end's.
    pub fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into() }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// A query whose rows decode as `R` (a column type or a tuple of them, in select order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<R> {
    sql: String,
    row: PhantomData<fn() -> R>,
}

impl<R: FromRow> Query<R> {
    /// A query of `sql` text whose rows decode as `R`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            row: PhantomData,
        }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// A connection (or a transaction on one) the outbox's statements run on.
///
/// # Contract
///
/// - Parameters bind in order, each with the SQL type of its [`SqlValue`] variant.
/// - [`fetch`](Self::fetch) decodes column `i` of every row as `R::COLUMNS[i]` and builds `R`
///   with [`FromRow::from_row`]; a column that does not decode is an error, never a panic.
/// - Errors: a unique-key violation is [`Error::Conflict`](crate::Error::Conflict) (a lost
///   race the caller retries); everything else is [`Error::Store`](crate::Error::Store)
///   naming `operation`, retryable exactly when [`Dialect::is_retryable`] says so for the
///   server's code and message (transport faults are retryable too).
/// - The futures of a blocking driver may complete at once; none may block on another
///   future of the same connection.
pub trait SqlConnection: Send {
    /// The dialect the connection speaks.
    fn dialect(&self) -> Dialect;

    /// Runs `statement` with `params`; returns the rows affected.
    fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Runs `query` with `params` and decodes every row.
    fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<Vec<R>>> + Send;

    /// Gives the connection up instead of returning it for reuse: it may still hold a
    /// session lock that could not be released. The default just drops it.
    fn discard(self)
    where
        Self: Sized,
    {
    }
}

/// A transaction: statements run on it as on a connection, and take effect on
/// [`commit`](Self::commit).
///
/// # Contract
///
/// Dropping it without committing rolls it back.
pub trait SqlTransaction: SqlConnection {
    /// Commits the transaction.
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}

/// Where connections and write transactions come from: a pool, or one borrowed connection.
///
/// # Contract
///
/// - [`begin_write`](Self::begin_write) starts a transaction that will write; on SQLite it
///   takes the write lock up front (`BEGIN IMMEDIATE`; a nested one is a savepoint), so two
///   writers that read first queue on the busy timeout instead of one failing at once.
/// - Errors follow [`SqlConnection`]'s contract.
///
/// The connections are `impl Trait`, not associated types: rustc cannot prove `Send` for a
/// future holding a generic associated type bounded by `where Self: 'p` when the pool
/// borrows (it asks for `'static`), so a pool over one borrowed connection (diesel-async's)
/// could not be used inside a spawned task.
pub trait SqlPool: Send + Sync {
    /// The dialect of the database.
    fn dialect(&self) -> Dialect;

    /// A connection.
    fn acquire(&self) -> impl Future<Output = Result<impl SqlConnection + '_>> + Send;

    /// A transaction that will write.
    fn begin_write(&self) -> impl Future<Output = Result<impl SqlTransaction + '_>> + Send;
}
