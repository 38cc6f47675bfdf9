//! Finishing a batch: awaiting its acknowledgements, settling its failures, deleting what
//! Kafka acknowledged.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use outbox_core::Result;
use outbox_core::relay::{FailureStore, Fence, LeaseStore, RelayStore};
use rdkafka::error::KafkaError;

use super::{
    ACK_WAIT_BEAT, Batch, Delivered, Finished, KAFKA_UNREADY_AFTER, MAX_RETRY_BACKOFF, Relay,
    State, block, is_permanent, key_of,
};
use crate::config::PoisonPolicy;

impl<S: RelayStore + FailureStore + LeaseStore> Relay<S> {
    /// Awaits every acknowledgement of a batch.
    ///
    /// While acknowledgements are overdue the loop still beats (waiting on Kafka is not a
    /// stuck loop) and, after a few seconds, Kafka is marked unready: an outage shows on
    /// `/readyz`, not `/healthz`.
    pub(super) async fn deliveries(&self, batch: Batch, state: &mut State) -> Delivered {
        let Batch {
            records,
            in_flight,
            mut failures,
            started,
        } = batch;
        let mut acked = Vec::with_capacity(in_flight.len());
        let mut last_ack = Instant::now();
        let mut beat = Instant::now();
        let mut lost = false;
        for (i, mut delivery) in in_flight {
            if lost {
                // Not awaited: the rows stay for the new holder, which produces them again.
                failures.push((i, KafkaError::Canceled));
                continue;
            }
            let result = loop {
                // Every beat, however the acknowledgements come (slowly, or a long batch of
                // quick ones): the loop is alive, and the lease is renewed when due; stop at
                // once if it was taken over.
                if beat.elapsed() >= ACK_WAIT_BEAT {
                    beat = Instant::now();
                    self.metrics.heartbeat();
                    if matches!(self.hold_lease(state).await, Ok(false)) {
                        break None;
                    }
                }
                match tokio::time::timeout(ACK_WAIT_BEAT, &mut delivery).await {
                    Ok(result) => break Some(result),
                    Err(_) if last_ack.elapsed() > KAFKA_UNREADY_AFTER => {
                        self.metrics.set_kafka_ready(false);
                    }
                    Err(_) => {}
                }
            };
            let Some(result) = result else {
                lost = true;
                failures.push((i, KafkaError::Canceled));
                continue;
            };
            last_ack = Instant::now();
            self.metrics.set_kafka_ready(true);
            match result {
                Ok(Ok(_)) => {
                    super::latency::stage("acked", [&records[i]]);
                    acked.push(i);
                }
                Ok(Err((e, _))) => failures.push((i, e)),
                Err(_canceled) => failures.push((i, KafkaError::Canceled)),
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        Delivered {
            records,
            acked,
            failures,
            started,
        }
    }

    /// Counts a delivered batch's failures: transient ones stay for the next read, permanent
    /// ones back off and are dead-lettered after `max_attempts`. Every failed key is held back
    /// from the next batch.
    pub(super) async fn settle_failures(
        &self,
        delivered: &Delivered,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<()> {
        for (i, error) in &delivered.failures {
            let record = &delivered.records[*i];
            let key = key_of(record);
            self.metrics.failed.inc();
            done.held.insert(key.clone());
            if !is_permanent(error) {
                tracing::warn!(id = record.id, %error, "transient delivery failure; the row stays and is produced again");
                done.left_behind = true;
                continue;
            }
            let message = error.to_string();
            let attempts = self.store.record_failure(record.event_id, &message).await?;
            tracing::warn!(id = record.id, attempts, %error, "permanent delivery failure");
            if attempts >= self.settings.max_attempts {
                state.retry_after.remove(&key);
                if self
                    .move_to_dead_letters(record.id, attempts, &message, state, done)
                    .await?
                {
                    tracing::error!(id = record.id, event_id = %record.event_id, %error, "event dead-lettered");
                    if self.settings.poison_policy == PoisonPolicy::Block {
                        block(state, key, record.id);
                    }
                }
            } else {
                // Back off before the next attempt: a permanent error does not clear in
                // milliseconds (an operator has to act).
                let exponent = attempts.saturating_sub(1).min(16);
                let wait = self
                    .settings
                    .retry_backoff
                    .saturating_mul(1 << exponent)
                    .min(MAX_RETRY_BACKOFF);
                state.retry_after.insert(key, Instant::now() + wait);
                done.left_behind = true;
            }
        }
        Ok(())
    }

    /// Deletes what Kafka acknowledged, in one statement, fenced by `fence`.
    pub(super) async fn acknowledge(
        &self,
        delivered: &Delivered,
        fence: Option<&Fence>,
        done: &mut Finished,
    ) -> Result<()> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let ids: Vec<i64> = delivered
            .acked
            .iter()
            .map(|&i| delivered.records[i].id)
            .collect();
        if !ids.is_empty() {
            self.store.ack(&ids, fence).await?;
            super::latency::stage(
                "deleted",
                delivered.acked.iter().map(|&i| &delivered.records[i]),
            );
            self.metrics.published.inc_by(ids.len() as u64);
            for &i in &delivered.acked {
                let age =
                    u64::try_from(now_ms - delivered.records[i].created_at_ms).unwrap_or_default();
                self.metrics.end_to_end_seconds.observe(age as f64 / 1000.0);
            }
        }
        done.published += ids.len();
        self.metrics
            .batch_seconds
            .observe(delivered.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Finishes the batch in flight, if any: awaits, settles, acknowledges.
    pub(super) async fn finish_pending(&self, state: &mut State) -> Result<Finished> {
        let mut done = Finished::default();
        if let Some(batch) = state.pending.take() {
            let delivered = self.deliveries(batch, state).await;
            self.settle_failures(&delivered, state, &mut done).await?;
            self.acknowledge(&delivered, self.fence(state).as_ref(), &mut done)
                .await?;
        }
        Ok(done)
    }
}
