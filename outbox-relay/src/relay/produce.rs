//! Handing a batch read to the producer.

use std::time::{Duration, Instant};

use outbox_core::Result;
use outbox_core::relay::{FailureStore, LeaseStore, OutboxRecord, ReadRow, RelayStore};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{Batch, Finished, Relay, State, is_too_large, key_of};
use crate::record::{to_record, unproducible};

/// Records enqueued between two yields to the delete running beside `send`.
const YIELD_EVERY: usize = 100;

impl<S: RelayStore + FailureStore + LeaseStore> Relay<S> {
    /// Hands a batch read to the producer: dead-letters rows that cannot become records,
    /// parks rows of blocked keys, holds back keys whose earlier event failed (in the previous
    /// batch, or at enqueue in this one), and advances the cursor.
    pub(super) async fn send(
        &self,
        rows: Vec<ReadRow>,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<Batch> {
        let started = Instant::now();
        let mut records = Vec::with_capacity(rows.len());
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut failures = Vec::new();
        let mut blocked_fresh = false;
        if let Some(last) = rows.last() {
            state.cursor = Some(last.id());
        }
        super::latency::stage(
            "claimed",
            rows.iter().filter_map(|row| match row {
                ReadRow::Record(record) => Some(record),
                ReadRow::Malformed(_) => None,
            }),
        );
        for (i, row) in rows.into_iter().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                // Lets the previous batch's delete, polled beside this, go on (see `step`).
                tokio::task::yield_now().await;
            }
            let mut record = match row {
                ReadRow::Record(record) => record,
                ReadRow::Malformed(bad) => {
                    if let Some(key) = &bad.key
                        && self
                            .is_blocked(key, bad.id, state, &mut blocked_fresh, done)
                            .await?
                    {
                        self.park(bad.id, state, done).await?;
                        continue;
                    }
                    self.dead_letter_now(bad.id, bad.key, &bad.reason, state, done)
                        .await?;
                    continue;
                }
            };
            let key = key_of(&record);
            if self
                .is_blocked(&key, record.id, state, &mut blocked_fresh, done)
                .await?
            {
                self.park(record.id, state, done).await?;
                continue;
            }
            if done.held.contains(&key)
                || state
                    .retry_after
                    .get(&key)
                    .is_some_and(|t| *t > Instant::now())
            {
                // Stays in the outbox, behind its key's failed event.
                done.left_behind = true;
                done.held_back += 1;
                continue;
            }
            if let Some(reason) = self.encode_capture(&mut record).await? {
                self.dead_letter_now(record.id, Some(key.clone()), &reason, state, done)
                    .await?;
                continue;
            }
            if let Some(reason) =
                unproducible(&record, &self.settings.source, self.max_message_bytes)
            {
                self.dead_letter_now(record.id, Some(key), &reason, state, done)
                    .await?;
                continue;
            }
            match self.enqueue(&record).await {
                Ok(delivery) => {
                    super::latency::stage("enqueued", [&record]);
                    in_flight.push((records.len(), delivery));
                    records.push(record);
                }
                Err(e) if is_too_large(&e) => {
                    let reason = format!("refused by the producer: {e}");
                    self.dead_letter_now(record.id, Some(key), &reason, state, done)
                        .await?;
                }
                Err(e) => {
                    done.held.insert(key);
                    done.left_behind = true;
                    failures.push((records.len(), e));
                    records.push(record);
                }
            }
        }
        Ok(Batch {
            records,
            in_flight,
            failures,
            started,
        })
    }

    /// Enqueues one record, waiting while the producer's queue is full.
    pub(super) async fn enqueue(
        &self,
        record: &OutboxRecord,
    ) -> std::result::Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut kafka_record = to_record(record, &self.settings.source);
        let producer = self.producer();
        loop {
            match producer.send_result(kafka_record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    kafka_record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Turns a captured row's JSON image into Avro; `Some(reason)` dead-letters it.
    async fn encode_capture(&self, record: &mut OutboxRecord) -> Result<Option<String>> {
        match &self.capture {
            Some(encoder) => encoder.encode(record).await,
            None if record.content_type == outbox_core::capture::CAPTURE_CONTENT_TYPE => Ok(Some(
                "a captured row, and the relay has no schema registry to encode it \
                 (Relay::with_capture_schemas)"
                    .to_owned(),
            )),
            None => Ok(None),
        }
    }
}
