//! [`AdminStore`] in the database: status, and the dead letters listed, retried, discarded.

use std::time::Duration;

use outbox_core::Result;
use outbox_core::relay::{AdminStore, BACKLOG_EXACT_UP_TO, DeadLetter, OutboxStatus};

use super::SqlxRelayStore;
use super::decode::DeadLetterRow;
use crate::database::{OutboxDatabase, Value, begin_write};
use crate::error::store;

/// `select_backlog`'s row: rows counted (capped), the head row's age in ms, `MIN(id)`,
/// `MAX(id)`.
type BacklogRow = (i64, Option<i64>, Option<i64>, Option<i64>);

impl<DB: OutboxDatabase> AdminStore for SqlxRelayStore<DB> {
    async fn status(&self, lease: &str) -> Result<OutboxStatus> {
        let op = "read status";
        let sql = &self.stmts.relay;
        let backlog: Vec<BacklogRow> = self.fetch(op, &sql.select_backlog, vec![]).await?;
        let (counted, oldest_ms, min_id, max_id) = backlog.first().copied().unwrap_or_default();
        let counted = u64::try_from(counted).unwrap_or_default();
        let estimated = counted > BACKLOG_EXACT_UP_TO;
        let backlog = match (min_id, max_id) {
            // At least what was counted; ids may have gaps, so the range is an upper bound.
            (Some(min), Some(max)) if estimated => {
                let range = i128::from(max) - i128::from(min) + 1;
                u64::try_from(range).unwrap_or(u64::MAX).max(counted)
            }
            _ => counted,
        };
        let dead: Vec<(i64,)> = self.fetch(op, &sql.count_dead_letters, vec![]).await?;
        let dead = dead.first().map_or(0, |(n,)| *n);
        let leader: Vec<(String,)> = self
            .fetch(op, &sql.select_leader, vec![Value::Text(lease.to_owned())])
            .await?;
        Ok(OutboxStatus {
            backlog,
            backlog_estimated: estimated,
            oldest_age: oldest_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or_default())),
            dead_letters: u64::try_from(dead).unwrap_or_default(),
            leader: leader.into_iter().next().map(|(holder,)| holder),
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadLetterRow> = self
            .fetch(
                "list dead letters",
                &self.stmts.relay.select_dead_letters,
                vec![Value::I64(i64::try_from(limit).unwrap_or(i64::MAX))],
            )
            .await?;
        // A malformed row is listed too, with what could be decoded; its error says the rest.
        rows.into_iter()
            .map(|row| {
                Ok(DeadLetter {
                    record: row.record.decode()?.record,
                    attempts: u32::try_from(row.attempts.unwrap_or_default()).unwrap_or_default(),
                    error: row.error.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<bool> {
        let op = "retry dead letter";
        let sql = &self.stmts.relay;
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        let moved = DB::run(&mut *tx, &sql.requeue_dead_letter, vec![Value::I64(id)])
            .await
            .map_err(store(op))?;
        if moved == 0 {
            return Ok(false);
        }
        DB::run(&mut *tx, &sql.delete_dead_letter, vec![Value::I64(id)])
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
            &self.stmts.relay.delete_dead_letter,
            vec![Value::I64(id)],
        )
        .await
        .map_err(store(op))?;
        Ok(deleted > 0)
    }
}
