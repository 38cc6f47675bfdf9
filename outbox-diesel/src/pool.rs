//! The connection contract of `outbox-core` ([`SqlPool`], [`SqlConnection`]) on one borrowed
//! diesel connection, so the core's schema store and migration runner run on diesel. diesel
//! is blocking: every future here is ready when first polled.

use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use diesel::connection::TransactionManager;
use outbox_core::Result;
use outbox_core::sql::{FromRow, Query, SqlConnection, SqlPool, SqlTransaction, Statement};
use outbox_core::table::{Dialect, SqlValue};

use crate::connection::{DieselBackend, OutboxConnection};
use crate::error::store;

/// One diesel connection as `outbox-core`'s [`SqlPool`]: every "connection" it hands out is
/// that connection, and a transaction on it nests in the caller's (as a savepoint) if one is
/// open.
#[derive(Debug)]
pub struct DieselPool<'c, C> {
    conn: Mutex<&'c mut C>,
}

impl<'c, C: OutboxConnection> DieselPool<'c, C> {
    /// The pool of `conn`.
    pub fn new(conn: &'c mut C) -> Self {
        Self {
            conn: Mutex::new(conn),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut C) -> T) -> T {
        // Each call runs to its end while holding the lock, so a panic cannot leave a
        // half-run statement behind: a poisoned lock is still a usable connection.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    }
}

impl<'c, C: OutboxConnection> From<&'c mut C> for DieselPool<'c, C> {
    fn from(conn: &'c mut C) -> Self {
        Self::new(conn)
    }
}

/// The connection of a [`DieselPool`], outside (`S` = [`Session`]) or inside
/// ([`DieselTransaction`]) a transaction it began.
#[derive(Debug)]
pub struct DieselConnection<'p, 'c, C: OutboxConnection, S: Scope = Session> {
    pool: &'p DieselPool<'c, C>,
    open: bool,
    scope: PhantomData<S>,
}

/// A transaction on the connection of a [`DieselPool`]; dropped uncommitted, it rolls back.
pub type DieselTransaction<'p, 'c, C> = DieselConnection<'p, 'c, C, InTransaction>;

mod sealed {
    pub trait Sealed {}
}

/// Whether a [`DieselConnection`] runs inside a transaction it began.
pub trait Scope: sealed::Sealed + Send + Sync + 'static {
    /// Inside a transaction.
    const TRANSACTION: bool;
}

/// Outside a transaction of its own.
#[derive(Debug)]
pub enum Session {}
/// Inside a transaction it began.
#[derive(Debug)]
pub enum InTransaction {}

impl sealed::Sealed for Session {}
impl Scope for Session {
    const TRANSACTION: bool = false;
}
impl sealed::Sealed for InTransaction {}
impl Scope for InTransaction {
    const TRANSACTION: bool = true;
}

impl<C: OutboxConnection, S: Scope> SqlConnection for DieselConnection<'_, '_, C, S> {
    fn dialect(&self) -> Dialect {
        <C::Backend as DieselBackend>::DIALECT
    }

    async fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        let affected = self
            .pool
            .with(|c| c.run(statement.sql(), params))
            .map_err(store(operation))?;
        Ok(u64::try_from(affected).unwrap_or(u64::MAX))
    }

    async fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        self.pool
            .with(|c| c.load_rows::<R>(query.sql(), params))
            .map_err(store(operation))
    }
}

impl<C: OutboxConnection> SqlTransaction for DieselTransaction<'_, '_, C> {
    async fn commit(mut self) -> Result<()> {
        // A failed commit leaves the transaction open: dropping it then rolls it back.
        self.pool
            .with(|c| C::TransactionManager::commit_transaction(c))
            .map_err(store("commit"))?;
        self.open = false;
        Ok(())
    }
}

impl<C: OutboxConnection, S: Scope> Drop for DieselConnection<'_, '_, C, S> {
    fn drop(&mut self) {
        if S::TRANSACTION
            && self.open
            && let Err(e) = self
                .pool
                .with(|c| C::TransactionManager::rollback_transaction(c))
        {
            tracing::warn!(error = %e, "rolling back an outbox transaction failed");
        }
    }
}

impl<'c, C: OutboxConnection> SqlPool for DieselPool<'c, C> {
    fn dialect(&self) -> Dialect {
        <C::Backend as DieselBackend>::DIALECT
    }

    async fn acquire(&self) -> Result<impl SqlConnection + '_> {
        Ok(DieselConnection::<'_, 'c, C> {
            pool: self,
            open: false,
            scope: PhantomData,
        })
    }

    async fn begin_write(&self) -> Result<impl SqlTransaction + '_> {
        self.with(|c| c.begin_write()).map_err(store("begin"))?;
        Ok(DieselTransaction {
            pool: self,
            open: true,
            scope: PhantomData,
        })
    }
}
