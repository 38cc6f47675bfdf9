//! The relay's store in the database: read, acknowledge, count failures, dead-letter, lease,
//! status; one capability trait per file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outbox_core::relay::{Fence, InsertRows, ReadRow, RelayStore};
use outbox_core::table::{AckInOneStatements, Statements};
use outbox_core::{Error, NewOutboxRow, Result};
use sqlx::Pool;

use crate::cells::FromCells;
use crate::database::{OutboxDatabase, Value, begin_write};
use crate::error::store;
use decode::RecordRow;
use horizon::Horizon;

mod admin;
mod decode;
mod failures;
mod horizon;
mod lease;

/// Rows per statement when acknowledging many.
pub(crate) const ROWS_PER_STATEMENT: usize = 1000;

/// The relay store over a sqlx pool: [`RelayStore`], and the capability traits
/// [`FailureStore`](outbox_core::relay::FailureStore),
/// [`LeaseStore`](outbox_core::relay::LeaseStore) and
/// [`AdminStore`](outbox_core::relay::AdminStore).
///
/// On PostgreSQL, strict order (the default) reads only rows below a *settled horizon*: the
/// last id drawn from the events sequence as of a moment after which every transaction then
/// running has finished. A transaction that drew an early id and commits late therefore holds
/// back later rows instead of being overtaken, without any wall-clock wait. MySQL/MariaDB and
/// SQLite read in `id` order (SQLite has one writer at a time, so that is commit order).
#[derive(Debug)]
pub struct SqlxRelayStore<DB: OutboxDatabase> {
    pool: Pool<DB>,
    stmts: Arc<Statements>,
    strict: bool,
    horizon: Arc<Mutex<Horizon>>,
    xids_assigned: Arc<AtomicU64>,
}

impl<DB: OutboxDatabase> Clone for SqlxRelayStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            stmts: Arc::clone(&self.stmts),
            strict: self.strict,
            horizon: Arc::clone(&self.horizon),
            xids_assigned: Arc::clone(&self.xids_assigned),
        }
    }
}

impl<DB: OutboxDatabase> SqlxRelayStore<DB> {
    /// A store over `pool` using the tables of `stmts`, in strict order.
    pub fn new(pool: Pool<DB>, stmts: Arc<Statements>) -> Self {
        Self {
            pool,
            stmts,
            strict: true,
            horizon: Arc::default(),
            xids_assigned: Arc::default(),
        }
    }

    /// Turns PostgreSQL's strict order off: read every committed row in `id` order, even
    /// while an earlier id may still commit (lower latency under long transactions; late rows
    /// are still published, after later ones).
    #[must_use]
    pub fn with_strict_order(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// How many transaction ids this store (and its clones) assigned to find the strict-order
    /// horizon on PostgreSQL: none while the outbox is idle, at most one per settled
    /// observation under load. For watching xid consumption; always 0 elsewhere.
    pub fn xids_assigned(&self) -> u64 {
        self.xids_assigned.load(Ordering::Relaxed)
    }

    /// Refuses a write in `tx` unless the lease still has `fence`'s holder and token; the
    /// lease row stays locked until `tx` ends, so no take-over slips in between.
    async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        fence: Option<&Fence>,
        op: &'static str,
    ) -> Result<()> {
        let Some(fence) = fence else {
            return Ok(());
        };
        let lease = DB::fetch::<(String, i64, i64)>(
            &mut **tx,
            &self.stmts.relay.select_lease,
            vec![Value::Text(fence.lease.clone())],
        )
        .await
        .map_err(store(op))?;
        match lease.first() {
            Some((holder, token, _)) if *holder == fence.holder && *token == fence.token => Ok(()),
            _ => Err(Error::LeaseLost {
                lease: fence.lease.clone(),
                token: fence.token,
            }),
        }
    }

    /// Runs a query on a pooled connection, decoding every row as `T`.
    async fn fetch<T: FromCells + Send>(
        &self,
        op: &'static str,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<T>> {
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        DB::fetch(&mut *conn, sql, params).await.map_err(store(op))
    }
}

/// Inserts rows on `conn` (the caller's transaction), 1,000 rows per statement.
pub(crate) async fn insert<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    stmts: &Statements,
    rows: &[NewOutboxRow],
) -> Result<()> {
    for statement in stmts.insert_events(rows) {
        let (sql, params) = statement?;
        DB::run(conn, &sql, params)
            .await
            .map_err(store("publish"))?;
    }
    Ok(())
}

impl<DB: OutboxDatabase> InsertRows for SqlxRelayStore<DB> {
    async fn insert_rows(&self, rows: &[NewOutboxRow]) -> Result<()> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(store("insert rows"))?;
        insert::<DB>(&mut *tx, &self.stmts, rows).await?;
        tx.commit().await.map_err(store("insert rows"))
    }
}

impl<DB: OutboxDatabase> RelayStore for SqlxRelayStore<DB> {
    async fn read_after(&self, after: i64, limit: usize) -> Result<Vec<ReadRow>> {
        let op = "read batch";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = &self.stmts.relay;
        let rows: Vec<RecordRow> = match &sql.strict_order {
            Some(strict) if self.strict => {
                let horizon = self.settled_horizon(strict).await?;
                let params = vec![Value::I64(after), Value::I64(horizon), Value::I64(limit)];
                let rows: Vec<RecordRow> = self.fetch(op, &strict.read_up_to, params).await?;
                let short = i64::try_from(rows.len()).unwrap_or(i64::MAX) < limit;
                self.lock_horizon().note_read(horizon, short);
                rows
            }
            _ => {
                let params = vec![Value::I64(after), Value::I64(limit)];
                self.fetch(op, &sql.read_after, params).await?
            }
        };
        rows.into_iter()
            .map(|row| row.decode().map(decode::DecodedRow::read_row))
            .collect()
    }

    async fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> Result<u64> {
        let op = "acknowledge batch";
        if let Some(one) = &self.stmts.relay.ack_in_one {
            let array = Value::Text(AckInOneStatements::id_array(ids));
            let (sql, params) = match fence {
                Some(fence) => (
                    &one.fenced,
                    vec![
                        array,
                        Value::Text(fence.lease.clone()),
                        Value::Text(fence.holder.clone()),
                        Value::I64(fence.token),
                    ],
                ),
                None => (&one.unfenced, vec![array]),
            };
            let counts: Vec<(i64, i64)> = self.fetch(op, sql, params).await?;
            // One row always comes back (a SELECT without FROM); none would read as nothing
            // deleted and, fenced, as a lost lease: never as rows acknowledged.
            let (held, deleted) = counts.first().copied().unwrap_or((0, 0));
            if let (0, Some(fence)) = (held, fence) {
                return Err(Error::LeaseLost {
                    lease: fence.lease.clone(),
                    token: fence.token,
                });
            }
            return Ok(u64::try_from(deleted).unwrap_or(0));
        }
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        self.check_fence(&mut tx, fence, op).await?;
        let mut deleted = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let [attempts, events] = self.stmts.relay.ack(chunk.len());
            let params = || chunk.iter().map(|id| Value::I64(*id)).collect::<Vec<_>>();
            DB::run(&mut *tx, &attempts, params())
                .await
                .map_err(store(op))?;
            deleted += DB::run(&mut *tx, &events, params())
                .await
                .map_err(store(op))?;
        }
        tx.commit().await.map_err(store(op))?;
        Ok(deleted)
    }
}
