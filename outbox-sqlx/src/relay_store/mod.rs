//! The relay's store in the database: claim, acknowledge, count failures, dead-letter, lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outbox_core::relay::{
    BlockedKey, ClaimedRow, DeadLetter, Fence, InsertRows, OutboxStatus, RelayStore,
};
use outbox_core::table::{Dialect, Statements};
use outbox_core::{Error, NewOutboxRow, Result};
use sqlx::Pool;
use uuid::Uuid;

use crate::database::{Cell, Column, Decoded, OutboxDatabase, Value, begin_write};
use crate::error::store;
use decode::{DecodedRow, decode_row};

mod decode;

/// Rows per statement when acknowledging many.
pub(crate) const ROWS_PER_STATEMENT: usize = 1000;

const RECORD_COLUMNS: [Column; 10] = [
    Column::I64,
    Column::Text,
    Column::Text,
    Column::OptBytes,
    Column::Text,
    Column::OptI32,
    Column::Text,
    Column::Bytes,
    Column::Text,
    Column::OptI64,
];

/// A [`RelayStore`] over a sqlx pool.
///
/// On PostgreSQL, strict order (the default) claims only rows below a *settled horizon*: the
/// last id drawn from the events sequence as of a moment after which every transaction then
/// running has finished. A transaction that drew an early id and commits late therefore holds
/// back later rows instead of being overtaken, without any wall-clock wait. MySQL/MariaDB and
/// SQLite claim in `id` order (SQLite has one writer at a time, so that is commit order).
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

/// The strict-order horizon: at most one observation `(xid, last id)` waits at a time. Once
/// the oldest running xid is above `xid`, every transaction that could hold an id up to
/// `last id` has finished, and the horizon moves to `last id`.
///
/// Keeping one observation, and taking one only when ids were drawn past the horizon, bounds
/// the transaction ids the relay assigns: none while the outbox is idle, and at most one per
/// settled observation under load (a fresh xid is the only way to learn an upper bound of the
/// xids already assigned; the snapshot's xmax is not one).
#[derive(Debug, Default)]
struct Horizon {
    pending: Option<(i64, i64)>,
    settled: i64,
}

impl Horizon {
    /// Whether a new observation is worth a transaction id: ids were drawn past the horizon
    /// and no earlier observation is still waiting to settle.
    fn wants_observation(&self, last_id: i64) -> bool {
        self.pending.is_none() && last_id > self.settled
    }

    /// Records a new observation (if any and none is pending), then settles the pending one
    /// if the oldest running transaction (`xmin`) has passed it.
    fn settle(&mut self, observation: Option<(i64, i64)>, xmin: i64) -> i64 {
        if self.pending.is_none() {
            self.pending = observation;
        }
        if let Some((xid, last_id)) = self.pending
            && xid < xmin
        {
            self.settled = self.settled.max(last_id);
            self.pending = None;
        }
        self.settled
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

    /// Turns PostgreSQL's strict order off: claim every committed row in `id` order, even
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
        let rows = DB::rows(
            &mut **tx,
            &self.stmts.select_lease,
            vec![Value::Text(fence.lease.clone())],
            &[Column::Text, Column::I64, Column::I64],
        )
        .await
        .map_err(store(op))?;
        let current = rows.into_iter().next().map(|row| {
            let mut row = row.into_iter();
            (row.next().map(Value::text), row.next().map(Value::i64))
        });
        if current == Some((Some(fence.holder.clone()), Some(fence.token))) {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                lease: fence.lease.clone(),
                token: fence.token,
            })
        }
    }

    async fn query(
        &self,
        op: &'static str,
        sql: &str,
        params: Vec<Value>,
        columns: &[Column],
    ) -> Result<Vec<Vec<Value>>> {
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        DB::rows(&mut *conn, sql, params, columns)
            .await
            .map_err(store(op))
    }

    async fn cells(
        &self,
        op: &'static str,
        sql: &str,
        params: Vec<Value>,
        columns: &[Column],
    ) -> Result<Vec<Vec<Cell>>> {
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        DB::cells(&mut *conn, sql, params, columns)
            .await
            .map_err(store(op))
    }

    async fn scalar_i64(&self, op: &'static str, sql: &str, params: Vec<Value>) -> Result<i64> {
        let rows = self.query(op, sql, params, &[Column::I64]).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|mut r| r.pop())
            .map_or(0, Value::i64))
    }

    /// The id up to which rows are settled, for strict order on PostgreSQL.
    ///
    /// Reads, in this order, each its own statement: the last id drawn (`L`); only when `L`
    /// is past the horizon and no observation is pending, a fresh xid (`X`, greater than the
    /// xid of every transaction that drew an id up to `L`, since the `txid` column is
    /// evaluated before `id`); the oldest running xid. Once the oldest running xid is above
    /// `X`, every id up to `L` belongs to a finished transaction. (The snapshot's xmax is not
    /// enough: running transactions may hold xids above it.) An idle relay therefore assigns
    /// no transaction ids.
    async fn settled_horizon(&self) -> Result<i64> {
        let op = "claim batch: horizon";
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        let mut single = async |sql: &str, column: Column| {
            DB::rows(&mut *conn, sql, vec![], &[column])
                .await
                .map(|rows| rows.into_iter().next().and_then(|mut r| r.pop()))
                .map_err(store(op))
        };
        let Some(last_id) = single(&self.stmts.select_last_id, Column::OptI64)
            .await?
            .and_then(Value::opt_i64)
        else {
            return Ok(0); // nothing was ever inserted
        };
        let wanted = self.lock_horizon().wants_observation(last_id);
        let observation = if wanted {
            let xid = single(&self.stmts.select_new_xid, Column::I64)
                .await?
                .map_or(0, Value::i64);
            self.xids_assigned.fetch_add(1, Ordering::Relaxed);
            Some((xid, last_id))
        } else {
            None
        };
        let xmin = single(&self.stmts.select_xmin, Column::I64)
            .await?
            .map_or(0, Value::i64);
        Ok(self.lock_horizon().settle(observation, xmin))
    }

    fn lock_horizon(&self) -> std::sync::MutexGuard<'_, Horizon> {
        self.horizon.lock().unwrap_or_else(PoisonError::into_inner)
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
    async fn claim_rows_after(&self, after: i64, limit: usize) -> Result<Vec<ClaimedRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = if self.strict && DB::DIALECT == Dialect::Postgres {
            let horizon = self.settled_horizon().await?;
            self.cells(
                "claim batch",
                &self.stmts.claim_up_to,
                vec![Value::I64(after), Value::I64(horizon), Value::I64(limit)],
                &RECORD_COLUMNS,
            )
            .await?
        } else {
            self.cells(
                "claim batch",
                &self.stmts.claim,
                vec![Value::I64(after), Value::I64(limit)],
                &RECORD_COLUMNS,
            )
            .await?
        };
        rows.into_iter()
            .map(|cells| decode_row(cells).map(DecodedRow::claimed))
            .collect()
    }

    async fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> Result<u64> {
        let op = "acknowledge batch";
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        self.check_fence(&mut tx, fence, op).await?;
        let mut deleted = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let [attempts, events] = self.stmts.ack(chunk.len());
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

    async fn record_failure(&self, event_id: Uuid, error: &str) -> Result<u32> {
        let op = "record failure";
        let id = || Value::Text(event_id.hyphenated().to_string());
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        DB::run(
            &mut *tx,
            &self.stmts.upsert_attempt,
            vec![id(), Value::Text(error.to_owned())],
        )
        .await
        .map_err(store(op))?;
        let rows = DB::rows(
            &mut *tx,
            &self.stmts.select_attempts,
            vec![id()],
            &[Column::I32],
        )
        .await
        .map_err(store(op))?;
        tx.commit().await.map_err(store(op))?;
        let attempts = rows
            .into_iter()
            .next()
            .and_then(|mut r| r.pop())
            .map_or(0, Value::i32);
        Ok(u32::try_from(attempts).unwrap_or_default())
    }

    async fn dead_letter(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let op = "dead-letter event";
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        self.check_fence(&mut tx, fence, op).await?;
        DB::run(
            &mut *tx,
            &self.stmts.insert_dead_letter,
            vec![
                Value::I32(i32::try_from(attempts).unwrap_or(i32::MAX)),
                Value::Text(error.to_owned()),
                Value::I64(id),
            ],
        )
        .await
        .map_err(store(op))?;
        // Attempts go first: they are found through the row.
        let [attempts_sql, event_sql] = self.stmts.ack(1);
        DB::run(&mut *tx, &attempts_sql, vec![Value::I64(id)])
            .await
            .map_err(store(op))?;
        DB::run(&mut *tx, &event_sql, vec![Value::I64(id)])
            .await
            .map_err(store(op))?;
        tx.commit().await.map_err(store(op))
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        let op = "acquire lease";
        let ttl_ms = Value::I64(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let name_v = || Value::Text(name.to_owned());
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        let current = DB::rows(
            &mut *tx,
            &self.stmts.select_lease,
            vec![name_v()],
            &[Column::Text, Column::I64, Column::I64],
        )
        .await
        .map_err(store(op))?;
        let granted = match current.into_iter().next().map(Vec::into_iter) {
            None => {
                let inserted = DB::run(
                    &mut *tx,
                    &self.stmts.insert_lease,
                    vec![name_v(), Value::Text(holder.to_owned()), ttl_ms],
                )
                .await;
                match inserted.map_err(store(op)) {
                    Ok(_) => Some(1),
                    // Another relay created it first.
                    Err(Error::Conflict { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Some(mut row) => {
                let (current_holder, token, live) = match (row.next(), row.next(), row.next()) {
                    (Some(h), Some(t), Some(l)) => (h.text(), t.i64(), l.i64() != 0),
                    _ => unreachable!("three columns were asked for"),
                };
                // The holder's own lease is taken back at once (a restart), as a new
                // generation, so a live twin with the same identity is fenced.
                if current_holder == holder || !live {
                    DB::run(
                        &mut *tx,
                        &self.stmts.take_lease,
                        vec![Value::Text(holder.to_owned()), ttl_ms, name_v()],
                    )
                    .await
                    .map_err(store(op))?;
                    Some(token + 1)
                } else {
                    None
                }
            }
        };
        tx.commit().await.map_err(store(op))?;
        Ok(granted)
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl: Duration,
    ) -> Result<bool> {
        let op = "renew lease";
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        let fence = Fence {
            lease: name.to_owned(),
            holder: holder.to_owned(),
            token,
        };
        match self.check_fence(&mut tx, Some(&fence), op).await {
            Ok(()) => {}
            Err(Error::LeaseLost { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        let ttl_ms = Value::I64(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        DB::run(
            &mut *tx,
            &self.stmts.renew_lease,
            vec![ttl_ms, Value::Text(name.to_owned())],
        )
        .await
        .map_err(store(op))?;
        tx.commit().await.map_err(store(op))?;
        Ok(true)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let op = "release lease";
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        DB::run(
            &mut *conn,
            &self.stmts.release_lease,
            vec![Value::Text(name.to_owned()), Value::Text(holder.to_owned())],
        )
        .await
        .map_err(store(op))?;
        Ok(())
    }

    async fn status(&self, lease: &str) -> Result<OutboxStatus> {
        let op = "read status";
        let backlog = self
            .query(
                op,
                &self.stmts.select_backlog,
                vec![],
                &[Column::I64, Column::OptI64],
            )
            .await?;
        let (backlog, oldest_ms) = match backlog.into_iter().next().map(Vec::into_iter) {
            Some(mut row) => match (row.next(), row.next()) {
                (Some(count), Some(oldest)) => (count.i64(), oldest.opt_i64()),
                _ => unreachable!("two columns were asked for"),
            },
            None => (0, None),
        };
        let dead_letters = self
            .scalar_i64(op, &self.stmts.count_dead_letters, vec![])
            .await?;
        let leader = self
            .query(
                op,
                &self.stmts.select_leader,
                vec![Value::Text(lease.to_owned())],
                &[Column::Text],
            )
            .await?
            .into_iter()
            .next()
            .and_then(|mut r| r.pop())
            .map(Value::text);
        Ok(OutboxStatus {
            backlog: u64::try_from(backlog).unwrap_or_default(),
            oldest_age: oldest_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or_default())),
            dead_letters: u64::try_from(dead_letters).unwrap_or_default(),
            leader,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut columns = RECORD_COLUMNS.to_vec();
        columns.extend([Column::I32, Column::Text]);
        let rows = self
            .cells(
                "list dead letters",
                &self.stmts.select_dead_letters,
                vec![Value::I64(i64::try_from(limit).unwrap_or(i64::MAX))],
                &columns,
            )
            .await?;
        // A malformed row is listed too, with what could be decoded; its error says the rest.
        rows.into_iter()
            .map(|mut row| {
                let error = row.pop().and_then(Result::ok).map(Value::text);
                let attempts = row.pop().and_then(Result::ok).map_or(0, Value::i32);
                Ok(DeadLetter {
                    record: decode_row(row)?.record,
                    attempts: u32::try_from(attempts).unwrap_or_default(),
                    error: error.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<bool> {
        let op = "retry dead letter";
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        let moved = DB::run(
            &mut *tx,
            &self.stmts.requeue_dead_letter,
            vec![Value::I64(id)],
        )
        .await
        .map_err(store(op))?;
        if moved == 0 {
            return Ok(false);
        }
        DB::run(
            &mut *tx,
            &self.stmts.delete_dead_letter,
            vec![Value::I64(id)],
        )
        .await
        .map_err(store(op))?;
        tx.commit().await.map_err(store(op))?;
        Ok(true)
    }

    async fn discard_dead_letter(&self, id: i64) -> Result<bool> {
        let op = "discard dead letter";
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        let deleted = DB::run(
            &mut *conn,
            &self.stmts.delete_dead_letter,
            vec![Value::I64(id)],
        )
        .await
        .map_err(store(op))?;
        Ok(deleted > 0)
    }

    async fn blocked_keys(&self) -> Result<Vec<(BlockedKey, i64)>> {
        let rows = self
            .cells(
                "read blocked keys",
                &self.stmts.select_blocked_keys,
                vec![],
                &[Column::Text, Column::OptBytes, Column::I64],
            )
            .await?;
        // A dead letter whose topic or key does not decode blocks no key the relay can see.
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let mut row = row.into_iter();
                match (row.next(), row.next(), row.next()) {
                    (Some(Ok(topic)), Some(Ok(key)), Some(Ok(id))) => {
                        Some(((topic.text(), key.opt_bytes()), id.i64()))
                    }
                    _ => None,
                }
            })
            .collect())
    }
}
