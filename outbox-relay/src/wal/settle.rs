//! Settling what Kafka answered: a transaction's records all acknowledged (or parked) let
//! its end LSN be confirmed; a failed record ends the session so it is produced again.

use std::collections::VecDeque;

use outbox_core::Result;

use super::{Delivery, InFlight, Memory, Txn, WalRelay, WalStream, now_ms};
use crate::relay::{RunSummary, is_permanent};

impl WalRelay {
    /// Settles the front transaction (all its deliveries are in): counts what Kafka
    /// acknowledged and confirms its end LSN. `false` when a record failed: the session ends
    /// without confirming it, and the next one produces it again.
    pub(super) async fn settle(
        &self,
        pending: &mut VecDeque<Txn>,
        stream: &mut impl WalStream,
        summary: &mut RunSummary,
        memory: &mut Memory,
        in_flight: &mut InFlight,
    ) -> Result<bool> {
        let Some(mut txn) = pending.pop_front() else {
            return Ok(true);
        };
        delivered(&mut txn).await;
        crate::relay::latency::stage("acked", txn.records.iter().map(|(r, _, _)| r));
        for (record, _, _) in &txn.records {
            in_flight.remove(record);
        }
        let now_ms = now_ms();
        let mut failed = false;
        for (record, retry_of, delivery) in txn.records {
            let outcome = match delivery {
                Delivery::Done(outcome) => outcome,
                Delivery::Waiting(_) => Err(None),
            };
            match outcome {
                Ok(_) => {
                    summary.published += 1;
                    self.metrics.published.inc();
                    memory.attempts.remove(&record.event_id);
                    if let Some(place) = retry_of {
                        // Acknowledged: the retried dead letter leaves the table before the
                        // LSN passes it (a replay after a crash finds it gone and skips it).
                        memory.retries_in_flight.remove(&place);
                        outbox_sqlx::postgres::remove_wal_dead_letter(
                            &self.pool,
                            &self.names,
                            place,
                            record.event_id,
                        )
                        .await?;
                    }
                    let age = (now_ms - record.created_at_ms).max(0) as f64 / 1000.0;
                    self.metrics.end_to_end_seconds.observe(age);
                }
                Err(e) => {
                    self.metrics.failed.inc();
                    let permanent = e.as_ref().is_some_and(is_permanent);
                    // Transient failures are retried without limit (librdkafka already
                    // retried); permanent ones count towards max_attempts.
                    if permanent {
                        *memory.attempts.entry(record.event_id).or_insert(0) += 1;
                    }
                    tracing::warn!(
                        event_id = %record.event_id,
                        error = e.map_or_else(|| "not produced".to_owned(), |e| e.to_string()),
                        permanent,
                        "a record failed: producing again from the confirmed position"
                    );
                    failed = true;
                }
            }
        }
        if failed {
            return Ok(false);
        }
        stream.confirm(txn.end_lsn);
        Ok(true)
    }
}

/// Waits until every delivery of `txn` is in (cancel safe: the futures stay in `txn`).
pub(super) async fn delivered(txn: &mut Txn) {
    for (_, _, delivery) in &mut txn.records {
        if let Delivery::Waiting(future) = delivery {
            let outcome = match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(Some(e)),
                Err(_) => Err(None),
            };
            *delivery = Delivery::Done(outcome);
        }
    }
}

pub(super) async fn delivered_front(pending: &mut VecDeque<Txn>) {
    match pending.front_mut() {
        Some(front) => delivered(front).await,
        None => std::future::pending().await,
    }
}
