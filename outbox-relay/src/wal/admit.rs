//! Admitting one streamed event: decoded, checked against the poison policy and the size
//! limit, then handed to the producer, or dead-lettered before the confirmed LSN can pass it.

use std::time::Duration;

use outbox_core::Result;
use outbox_core::relay::OutboxRecord;
use outbox_core::wal::decode_envelope;
use uuid::Uuid;

use super::{Delivery, Memory, WalRelay, now_ms};
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
    ) -> Result<Option<(OutboxRecord, Delivery)>> {
        let record = match decode_envelope(content, id) {
            Ok(record) => record,
            Err(reason) => {
                let record = malformed(id, content, &self.wal.slot);
                self.dead_letter(
                    &record,
                    1,
                    &format!("malformed wal envelope: {reason}"),
                    memory,
                    summary,
                )
                .await?;
                return Ok(None);
            }
        };
        let key = (record.topic.clone(), record.event_key.clone());
        if let Some(dead) = memory.blocked.get(&key) {
            let reason = format!("held behind dead letter {dead} of its key (poison policy block)");
            self.dead_letter(&record, 0, &reason, memory, summary)
                .await?;
            return Ok(None);
        }
        let attempts = memory.attempts.get(&record.event_id).copied().unwrap_or(0);
        let reason = unproducible(&record, &self.settings.source, self.max_message_bytes);
        if let Some(reason) = reason {
            self.dead_letter(&record, attempts + 1, &reason, memory, summary)
                .await?;
            return Ok(None);
        }
        if attempts >= self.settings.max_attempts.max(1) {
            let reason = format!("failed {attempts} attempts (see the relay's log)");
            self.dead_letter(&record, attempts, &reason, memory, summary)
                .await?;
            return Ok(None);
        }
        let mut kafka_record = to_record(&record, &self.settings.source);
        let delivery = loop {
            match self.producer.send_result(kafka_record) {
                Ok(delivery) => break Delivery::Waiting(delivery),
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
        Ok(Some((record, delivery)))
    }

    /// Writes `record` to the dead-letter table, counts it and, under the block policy, holds
    /// its key behind it.
    async fn dead_letter(
        &self,
        record: &OutboxRecord,
        attempts: u32,
        reason: &str,
        memory: &mut Memory,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let id = outbox_sqlx::postgres::dead_letter_wal_event(
            &self.pool,
            &self.names,
            record,
            attempts,
            reason,
        )
        .await?;
        tracing::warn!(id, event_id = %record.event_id, reason, "event dead-lettered");
        memory.attempts.remove(&record.event_id);
        summary.dead_lettered += 1;
        self.metrics.dead_lettered.inc();
        if self.settings.poison_policy == PoisonPolicy::Block && record.event_key.is_some() {
            memory
                .blocked
                .entry((record.topic.clone(), record.event_key.clone()))
                .or_insert(id);
        }
        Ok(())
    }
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
