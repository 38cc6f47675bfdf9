//! Admitting one streamed event: decoded, checked against the poison policy and the size
//! limit, then handed to the producer, or dead-lettered before the confirmed LSN can pass it.

use std::time::Duration;

use outbox_core::Result;
use outbox_core::relay::OutboxRecord;
use outbox_core::wal::decode_message;
use uuid::Uuid;

use outbox_sqlx::postgres::WalRetryTarget;

use super::{Admitted, Delivery, Memory, WalRelay, now_ms};
use crate::config::PoisonPolicy;
use crate::record::{to_record, unproducible};
use crate::relay::RunSummary;

impl WalRelay {
    /// Decodes and checks one message and hands it to the producer; a message that cannot
    /// become a record, or whose key is blocked, is dead-lettered at once (before the LSN can
    /// pass it). `None` when nothing is in flight for it.
    pub(super) async fn admit(
        &self,
        id: i64,
        content: &[u8],
        memory: &mut Memory,
        summary: &mut RunSummary,
    ) -> Result<Option<Admitted>> {
        let (record, retry_of) = match decode_message(content, id) {
            Ok(decoded) => decoded,
            Err(reason) => {
                let record = malformed(id, content, &self.wal.slot);
                self.dead_letter(
                    &record,
                    1,
                    &format!("malformed wal envelope: {reason}"),
                    (memory, summary),
                    None,
                )
                .await?;
                return Ok(None);
            }
        };
        crate::relay::latency::stage("claimed", [&record]);
        let retry_of = match retry_of {
            Some(place) => match self.retry_target(place, &record, memory).await? {
                Retry::Deliver => Some(place),
                Retry::AsNew => None,
                Retry::Skip => return Ok(None),
            },
            None => None,
        };
        if let Some(dead) = self.held_by(&record, retry_of, memory).await? {
            let reason = format!("held behind dead letter {dead} of its key (poison policy block)");
            self.dead_letter(&record, 0, &reason, (memory, summary), retry_of)
                .await?;
            return Ok(None);
        }
        let attempts = memory.attempts.get(&record.event_id).copied().unwrap_or(0);
        let reason = unproducible(&record, &self.settings.source, self.max_message_bytes);
        if let Some(reason) = reason {
            self.dead_letter(&record, attempts + 1, &reason, (memory, summary), retry_of)
                .await?;
            return Ok(None);
        }
        if attempts >= self.settings.max_attempts.max(1) {
            let reason = format!("failed {attempts} attempts (see the relay's log)");
            self.dead_letter(&record, attempts, &reason, (memory, summary), retry_of)
                .await?;
            return Ok(None);
        }
        let mut kafka_record = to_record(&record, &self.settings.source);
        let delivery = loop {
            match self.producer.send_result(kafka_record) {
                Ok(delivery) => {
                    crate::relay::latency::stage("enqueued", [&record]);
                    break Delivery::Waiting(delivery);
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    kafka_record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, event_id = %record.event_id, "producer refused a record");
                    break Delivery::Done(Err(Some(e)));
                }
            }
        };
        if let Some(place) = retry_of {
            // In flight: it stays listed until Kafka acknowledged it (`settle` takes it out),
            // but no longer holds its key back, and a second retry of it is not produced.
            memory.retries_in_flight.insert(place);
        }
        Ok(Some((record, retry_of, delivery)))
    }

    /// What to make of a version-2 envelope naming dead letter `place`.
    async fn retry_target(
        &self,
        place: i64,
        record: &OutboxRecord,
        memory: &Memory,
    ) -> Result<Retry> {
        let target =
            outbox_sqlx::postgres::wal_retry_target(&self.pool, &self.names, place, record).await?;
        Ok(match target {
            WalRetryTarget::Listed if memory.retries_in_flight.contains(&place) => {
                tracing::info!(place, event_id = %record.event_id, "a second retry of a dead letter in flight: not produced again");
                Retry::Skip
            }
            WalRetryTarget::Listed => Retry::Deliver,
            WalRetryTarget::Gone => {
                tracing::warn!(place, event_id = %record.event_id, "a retried dead letter is no longer listed (delivered already, or discarded): not produced");
                Retry::Skip
            }
            WalRetryTarget::Other => {
                tracing::warn!(place, event_id = %record.event_id, "a version-2 envelope names another event's dead letter: read as a new event");
                Retry::AsNew
            }
        })
    }

    /// The dead letter `record` is held behind under the block policy: its key's first dead
    /// letter (before `retry_of`'s place, for a retried dead letter), leaving out the retried
    /// dead letters in flight (they are ahead of it in Kafka already). Only keys known to be
    /// blocked, and retries, read the table: it is the truth, since `dead-letters retry` or
    /// `discard` may have cleared the key while the relay streamed.
    async fn held_by(
        &self,
        record: &OutboxRecord,
        retry_of: Option<i64>,
        memory: &mut Memory,
    ) -> Result<Option<i64>> {
        if self.settings.poison_policy != PoisonPolicy::Block {
            return Ok(None);
        }
        let Some(event_key) = &record.event_key else {
            return Ok(None);
        };
        let key = (record.topic.clone(), record.event_key.clone());
        if retry_of.is_none() && !memory.blocked.contains_key(&key) {
            return Ok(None);
        }
        let in_flight: Vec<i64> = memory.retries_in_flight.iter().copied().collect();
        let first = outbox_sqlx::postgres::first_wal_dead_letter(
            &self.pool,
            &self.names,
            &record.topic,
            event_key,
            &in_flight,
        )
        .await?;
        match first {
            Some(dead) => memory.blocked.insert(key, dead),
            None => memory.blocked.remove(&key),
        };
        Ok(first.filter(|&dead| retry_of.is_none_or(|place| dead < place)))
    }

    /// Writes `record` to the dead-letter table (a retried dead letter under its own id
    /// again), counts it and, under the block policy, holds its key behind it.
    async fn dead_letter(
        &self,
        record: &OutboxRecord,
        attempts: u32,
        reason: &str,
        (memory, summary): (&mut Memory, &mut RunSummary),
        retry_of: Option<i64>,
    ) -> Result<()> {
        let id = outbox_sqlx::postgres::dead_letter_wal_event(
            &self.pool,
            &self.names,
            record,
            attempts,
            reason,
            retry_of,
        )
        .await?;
        tracing::warn!(id, event_id = %record.event_id, reason, "event dead-lettered");
        memory.attempts.remove(&record.event_id);
        summary.dead_lettered += 1;
        self.metrics.dead_lettered.inc();
        if self.settings.poison_policy == PoisonPolicy::Block && record.event_key.is_some() {
            let first = memory
                .blocked
                .entry((record.topic.clone(), record.event_key.clone()))
                .or_insert(id);
            *first = (*first).min(id);
        }
        Ok(())
    }
}

/// What the relay does with a version-2 envelope (a retried dead letter).
enum Retry {
    /// Deliver it: its dead letter is listed, holds this event, and is not in flight already.
    Deliver,
    /// Read it as a new event: the place holds another event's dead letter (a hand-made
    /// envelope, which must neither take that dead letter out nor skip its own key's block).
    AsNew,
    /// Skip it: delivered already (a replay, a second retry), in flight, or discarded.
    Skip,
}

/// A record standing for an envelope that does not decode: its content kept as the payload,
/// an id derived from its position (so a restart writes the same dead letter, not a second).
fn malformed(id: i64, content: &[u8], slot: &str) -> OutboxRecord {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for b in slot.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    OutboxRecord {
        id,
        event_id: Uuid::from_u64_pair(hash, id as u64),
        topic: String::new(),
        event_key: None,
        event_type: String::new(),
        schema_id: None,
        content_type: "application/octet-stream".to_owned(),
        payload: content.to_vec(),
        headers: Vec::new(),
        created_at_ms: now_ms(),
    }
}
