//! One partition's worker: each record, in order, decoded, applied exactly once or set aside.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outbox_core::registry::SchemaStore;
use outbox_core::table::MAX_INBOX_ID_BYTES;
use outbox_core::{Error as CoreError, ErrorKind, PoisonPolicy};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::mpsc;

use super::Shared;
use super::partition::Partition;
use crate::{Applied, ApplyError, DeadLetter, InboxBackend, InboxEvent, Reason};

/// The record was abandoned because its partition was revoked or the runner stops.
struct Abandoned;

/// Processes `partition`'s records in order until it is revoked or its queue closes.
pub(super) async fn work<B: InboxBackend, S: SchemaStore + Send + Sync + 'static>(
    shared: Arc<Shared<B, S>>,
    partition: Arc<Partition>,
    mut queue: mpsc::Receiver<OwnedMessage>,
) {
    while let Some(message) = queue.recv().await {
        let _busy = partition.busy.lock().await;
        if partition.is_revoked() {
            break;
        }
        if process(&shared, &partition, &message).await.is_err() {
            break;
        }
        partition
            .processed
            .store(message.offset() + 1, Ordering::SeqCst);
    }
}

async fn process<B: InboxBackend, S: SchemaStore + Send + Sync + 'static>(
    shared: &Shared<B, S>,
    partition: &Partition,
    message: &OwnedMessage,
) -> Result<(), Abandoned> {
    let event = match decode(shared, partition, message).await? {
        Ok(event) => event,
        Err(reason) => return dead_letter(shared, partition, message, None, &reason).await,
    };
    let blocked = shared.settings.poison_policy == PoisonPolicy::Block
        && message.key().is_some_and(|key| {
            super::poll::lock(&shared.blocked).contains(&(message.topic().to_owned(), key.to_vec()))
        });
    if blocked {
        return dead_letter(
            shared,
            partition,
            message,
            Some(&event.ce_id),
            &Reason::Blocked,
        )
        .await;
    }
    let settings = &shared.settings;
    let mut attempts = 0;
    let mut wait = settings.backoff;
    loop {
        let last = match shared.backend.apply(&settings.group, &event).await {
            Ok(Applied::Processed) => {
                shared.metrics.processed.inc();
                return Ok(());
            }
            Ok(Applied::Duplicate) => {
                shared.metrics.duplicates.inc();
                return Ok(());
            }
            Err(ApplyError::Rejected(reason)) => {
                return dead_letter(shared, partition, message, Some(&event.ce_id), &reason).await;
            }
            Err(ApplyError::Store(e)) => {
                tracing::warn!(error = %e, "inbox store failed; retrying");
                None
            }
            Err(ApplyError::Handler(e)) => {
                attempts += 1;
                shared.metrics.handler_failures.inc();
                tracing::warn!(error = %e, attempts, ce_id = %event.ce_id, "handler failed");
                Some(e.to_string())
            }
        };
        if let Some(last) = last
            && attempts >= settings.max_attempts
        {
            let reason = Reason::HandlerFailed { attempts, last };
            return dead_letter(shared, partition, message, Some(&event.ce_id), &reason).await;
        }
        pause(shared, partition, wait).await?;
        wait = (wait * 2).min(settings.max_backoff);
    }
}

/// The record as an event, or why it cannot be one. Registry failures that may pass are
/// retried here; the outer `Err` is an abandoned record.
async fn decode<B, S: SchemaStore>(
    shared: &Shared<B, S>,
    partition: &Partition,
    message: &OwnedMessage,
) -> Result<Result<InboxEvent, Reason>, Abandoned> {
    let ce_id = match ce_id(message) {
        Ok(id) => id,
        Err(reason) => return Ok(Err(reason)),
    };
    let value = match message.payload() {
        None => None,
        Some(bytes) if bytes.len() > shared.settings.max_value_bytes => {
            return Ok(Err(Reason::TooLarge {
                bytes: bytes.len(),
                limit: shared.settings.max_value_bytes,
            }));
        }
        Some(bytes) => {
            let mut wait = shared.settings.backoff;
            loop {
                match shared.decoder.decode_value(bytes).await {
                    Ok(value) => break Some(value),
                    Err(CoreError::SchemaNotFound { id }) => {
                        return Ok(Err(Reason::UnknownSchema {
                            detail: format!("schema id {id} is not in the registry"),
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::Retryable => {
                        tracing::warn!(error = %e, "registry failed; retrying");
                        pause(shared, partition, wait).await?;
                        wait = (wait * 2).min(shared.settings.max_backoff);
                    }
                    Err(e) => {
                        return Ok(Err(Reason::Undecodable {
                            detail: e.to_string(),
                        }));
                    }
                }
            }
        }
    };
    Ok(Ok(InboxEvent {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        ce_id,
        value,
    }))
}

/// The `ce_id` header (the last one, if repeated), checked.
fn ce_id(message: &OwnedMessage) -> Result<String, Reason> {
    let value = message
        .headers()
        .and_then(|h| h.iter().filter(|h| h.key == "ce_id").last())
        .and_then(|h| h.value)
        .ok_or(Reason::MissingCeId)?;
    let id = std::str::from_utf8(value).map_err(|_| Reason::CeIdNotUtf8)?;
    if id.is_empty() || id.len() > MAX_INBOX_ID_BYTES {
        return Err(Reason::CeIdLength { bytes: id.len() });
    }
    Ok(id.to_owned())
}

/// Headers as a JSON array of `[name, value]`, values lossily UTF-8 (null when absent).
fn headers_json(message: &OwnedMessage) -> String {
    let pairs: Vec<(String, Option<String>)> = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// Sets the record aside (retrying the database until it works) and, under the block
/// policy, blocks its key.
async fn dead_letter<B: InboxBackend, S>(
    shared: &Shared<B, S>,
    partition: &Partition,
    message: &OwnedMessage,
    ce_id: Option<&str>,
    reason: &Reason,
) -> Result<(), Abandoned> {
    let headers = headers_json(message);
    let value = message
        .payload()
        .filter(|v| v.len() <= shared.settings.max_value_bytes);
    let letter = DeadLetter {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        ce_id,
        key: message.key(),
        value,
        headers: &headers,
        reason,
    };
    let mut wait = shared.settings.backoff;
    while let Err(e) = shared
        .backend
        .dead_letter(&shared.settings.group, letter)
        .await
    {
        tracing::warn!(error = %e, "inbox dead letter failed; retrying");
        pause(shared, partition, wait).await?;
        wait = (wait * 2).min(shared.settings.max_backoff);
    }
    shared.metrics.dead_lettered.inc();
    tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %reason, "record dead-lettered");
    if shared.settings.poison_policy == PoisonPolicy::Block
        && let Some(key) = message.key()
    {
        super::poll::lock(&shared.blocked).insert((message.topic().to_owned(), key.to_vec()));
    }
    Ok(())
}

/// Waits `wait`, giving up early when the partition is revoked or the runner stops.
async fn pause<B, S>(
    shared: &Shared<B, S>,
    partition: &Partition,
    wait: Duration,
) -> Result<(), Abandoned> {
    let step = Duration::from_millis(20);
    let mut left = wait;
    loop {
        if partition.is_revoked() || shared.stopping.load(Ordering::SeqCst) {
            return Err(Abandoned);
        }
        if left.is_zero() {
            return Ok(());
        }
        let nap = left.min(step);
        tokio::time::sleep(nap).await;
        left -= nap;
    }
}

/// Deletes inbox rows past the retention window, every retention interval.
pub(super) async fn retention<B: InboxBackend, S>(shared: Arc<Shared<B, S>>) {
    let mut tick = tokio::time::interval(shared.settings.retention_interval);
    loop {
        tick.tick().await;
        match shared
            .backend
            .purge(&shared.settings.group, shared.settings.retention)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "inbox retention deleted old ids"),
            Err(e) => tracing::warn!(error = %e, "inbox retention failed"),
        }
    }
}
