//! [`FailureStore`] in the database: attempts, dead letters, blocked keys.

use outbox_core::Result;
use outbox_core::relay::{BlockedKey, FailureStore, Fence};
use uuid::Uuid;

use super::SqlxRelayStore;
use super::decode::BlockedKeyRow;
use crate::database::{OutboxDatabase, Value, begin_write};
use crate::error::store;

impl<DB: OutboxDatabase> FailureStore for SqlxRelayStore<DB> {
    async fn record_failure(&self, event_id: Uuid, error: &str) -> Result<u32> {
        let op = "record failure";
        let sql = &self.stmts.relay;
        let id = || Value::Text(event_id.hyphenated().to_string());
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        DB::run(
            &mut *tx,
            &sql.upsert_attempt,
            vec![id(), Value::Text(error.to_owned())],
        )
        .await
        .map_err(store(op))?;
        let attempts = DB::fetch::<(i32,)>(&mut *tx, &sql.select_attempts, vec![id()])
            .await
            .map_err(store(op))?;
        tx.commit().await.map_err(store(op))?;
        let attempts = attempts.first().map_or(0, |(n,)| *n);
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
        let sql = &self.stmts.relay;
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        self.check_fence(&mut tx, fence, op).await?;
        DB::run(
            &mut *tx,
            &sql.insert_dead_letter,
            vec![
                Value::I32(i32::try_from(attempts).unwrap_or(i32::MAX)),
                Value::Text(error.to_owned()),
                Value::I64(id),
            ],
        )
        .await
        .map_err(store(op))?;
        // Attempts go first: they are found through the row.
        let [attempts_sql, event_sql] = sql.ack(1);
        DB::run(&mut *tx, &attempts_sql, vec![Value::I64(id)])
            .await
            .map_err(store(op))?;
        DB::run(&mut *tx, &event_sql, vec![Value::I64(id)])
            .await
            .map_err(store(op))?;
        tx.commit().await.map_err(store(op))
    }

    async fn blocked_keys(&self) -> Result<Vec<(BlockedKey, i64)>> {
        let rows: Vec<BlockedKeyRow> = self
            .fetch(
                "read blocked keys",
                &self.stmts.relay.select_blocked_keys,
                vec![],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(BlockedKeyRow::decoded)
            .collect())
    }
}
