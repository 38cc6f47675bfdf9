//! The connection contract of `outbox-core` ([`SqlPool`], [`SqlConnection`]) on one borrowed
//! `diesel-async` connection, so the core's schema store and migration runner run on it as
//! they do on sqlx and blocking diesel.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel_async::TransactionManager;
use outbox_core::Result;
use outbox_core::sql::{FromRow, Query, SqlConnection, SqlPool, SqlTransaction, Statement};
use outbox_core::table::{Dialect, SqlValue};
use tokio::sync::{Mutex, MutexGuard};

use crate::async_connection::AsyncOutboxConnection;
use crate::connection::DieselBackend;
use crate::error::store;
use crate::pool::{InTransaction, Scope, Session};

/// One `diesel-async` connection as `outbox-core`'s [`SqlPool`]: every "connection" it hands
/// out is that connection, and a transaction on it nests in the caller's (as a savepoint) if
/// one is open. Clones share the connection.
///
/// A transaction dropped uncommitted cannot roll back in `Drop` (that needs an `.await`):
/// its rollback runs before the next statement on the pool, and at [`settle`](Self::settle),
/// which the owner calls before handing the connection back to its caller.
#[derive(Debug)]
pub struct AsyncDieselPool<'c, C> {
    shared: Arc<Shared<'c, C>>,
}

#[derive(Debug)]
struct Shared<'c, C> {
    conn: Mutex<&'c mut C>,
    rollbacks: AtomicUsize,
}

impl<C> Clone for AsyncDieselPool<'_, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<'c, C: AsyncOutboxConnection> AsyncDieselPool<'c, C> {
    /// The pool of `conn`.
    pub fn new(conn: &'c mut C) -> Self {
        Self {
            shared: Arc::new(Shared {
                conn: Mutex::new(conn),
                rollbacks: AtomicUsize::new(0),
            }),
        }
    }

    /// Rolls back every transaction of this pool that was dropped uncommitted.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::Store`] when a rollback fails.
    pub async fn settle(&self) -> Result<()> {
        self.lock().await.map(drop)
    }

    /// The connection, once the rollbacks owed on it have run.
    async fn lock(&self) -> Result<MutexGuard<'_, &'c mut C>> {
        let mut conn = self.shared.conn.lock().await;
        while self.shared.rollbacks.load(Ordering::Acquire) > 0 {
            <C::TransactionManager as TransactionManager<C>>::rollback_transaction(&mut **conn)
                .await
                .map_err(store("rollback"))?;
            self.shared.rollbacks.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(conn)
    }
}

impl<'c, C: AsyncOutboxConnection> From<&'c mut C> for AsyncDieselPool<'c, C> {
    fn from(conn: &'c mut C) -> Self {
        Self::new(conn)
    }
}

/// The connection of an [`AsyncDieselPool`], outside (`S` = [`Session`]) or inside
/// ([`AsyncDieselTransaction`]) a transaction it began.
#[derive(Debug)]
pub struct AsyncDieselConnection<'p, 'c, C: AsyncOutboxConnection, S: Scope = Session> {
    pool: &'p AsyncDieselPool<'c, C>,
    open: bool,
    scope: PhantomData<S>,
}

/// A transaction on the connection of an [`AsyncDieselPool`]; dropped uncommitted, it rolls
/// back before the pool's next statement (or at [`AsyncDieselPool::settle`]).
pub type AsyncDieselTransaction<'p, 'c, C> = AsyncDieselConnection<'p, 'c, C, InTransaction>;

impl<C: AsyncOutboxConnection, S: Scope> SqlConnection for AsyncDieselConnection<'_, '_, C, S> {
    fn dialect(&self) -> Dialect {
        <C::Backend as DieselBackend>::DIALECT
    }

    async fn execute(
        &mut self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        let mut conn = self.pool.lock().await?;
        let affected = conn
            .run(statement.sql(), params)
            .await
            .map_err(store(operation))?;
        Ok(u64::try_from(affected).unwrap_or(u64::MAX))
    }

    async fn fetch<R: FromRow>(
        &mut self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        let mut conn = self.pool.lock().await?;
        conn.load_rows::<R>(query.sql(), params)
            .await
            .map_err(store(operation))
    }
}

impl<C: AsyncOutboxConnection> SqlTransaction for AsyncDieselTransaction<'_, '_, C> {
    async fn commit(mut self) -> Result<()> {
        let mut conn = self.pool.lock().await?;
        // A failed commit leaves the transaction open: dropping it then rolls it back.
        <C::TransactionManager as TransactionManager<C>>::commit_transaction(&mut **conn)
            .await
            .map_err(store("commit"))?;
        self.open = false;
        Ok(())
    }
}

impl<C: AsyncOutboxConnection, S: Scope> Drop for AsyncDieselConnection<'_, '_, C, S> {
    fn drop(&mut self) {
        if S::TRANSACTION && self.open {
            self.pool.shared.rollbacks.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl<'c, C: AsyncOutboxConnection> SqlPool for AsyncDieselPool<'c, C> {
    fn dialect(&self) -> Dialect {
        <C::Backend as DieselBackend>::DIALECT
    }

    async fn acquire(&self) -> Result<impl SqlConnection + '_> {
        Ok(AsyncDieselConnection::<'_, 'c, C> {
            pool: self,
            open: false,
            scope: PhantomData,
        })
    }

    async fn begin_write(&self) -> Result<impl SqlTransaction + '_> {
        let mut conn = self.lock().await?;
        <C::TransactionManager as TransactionManager<C>>::begin_transaction(&mut **conn)
            .await
            .map_err(store("begin"))?;
        Ok(AsyncDieselTransaction {
            pool: self,
            open: true,
            scope: PhantomData,
        })
    }
}
