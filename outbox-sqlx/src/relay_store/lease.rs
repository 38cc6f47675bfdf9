//! [`LeaseStore`] in the database: one row per lease, its fencing token growing with every
//! grant.

use std::time::Duration;

use outbox_core::relay::{Fence, LeaseStore};
use outbox_core::{Error, Result};

use super::SqlxRelayStore;
use crate::database::{OutboxDatabase, Value, begin_write};
use crate::error::store;

/// A ttl as the statements take it, in milliseconds.
fn ttl_ms(ttl: Duration) -> Value {
    Value::I64(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

impl<DB: OutboxDatabase> LeaseStore for SqlxRelayStore<DB> {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        let op = "acquire lease";
        let sql = &self.stmts.relay;
        let name_v = || Value::Text(name.to_owned());
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        let current = DB::fetch::<(String, i64, i64)>(&mut *tx, &sql.select_lease, vec![name_v()])
            .await
            .map_err(store(op))?;
        let granted = match current.into_iter().next() {
            None => {
                let params = vec![name_v(), Value::Text(holder.to_owned()), ttl_ms(ttl)];
                match DB::run(&mut *tx, &sql.insert_lease, params)
                    .await
                    .map_err(store(op))
                {
                    Ok(_) => Some(1),
                    // Another relay created it first.
                    Err(Error::Conflict { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            // The holder's own lease is taken back at once (a restart), as a new generation,
            // so a live twin with the same identity is fenced.
            Some((current, token, live)) if current == holder || live == 0 => {
                let params = vec![Value::Text(holder.to_owned()), ttl_ms(ttl), name_v()];
                DB::run(&mut *tx, &sql.take_lease, params)
                    .await
                    .map_err(store(op))?;
                Some(token + 1)
            }
            Some(_) => None,
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
        DB::run(
            &mut *tx,
            &self.stmts.relay.renew_lease,
            vec![ttl_ms(ttl), Value::Text(name.to_owned())],
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
            &self.stmts.relay.release_lease,
            vec![Value::Text(name.to_owned()), Value::Text(holder.to_owned())],
        )
        .await
        .map_err(store(op))?;
        Ok(())
    }
}
