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
        let offset = message.offset();
        if isolated(&shared, &partition, Arc::new(message))
            .await
            .is_err()
        {
            break;
        }
        partition.processed.store(offset + 1, Ordering::SeqCst);
    }
}

/// Processes one record in a task of its own: a panic while decoding or applying it (a
/// handler's, or a library's on hostile bytes) sets the record aside instead of ending the
/// partition's worker, which would leave the partition read but never processed or committed.
async fn isolated<B: InboxBackend, S: SchemaStore + Send + Sync + 'static>(
    shared: &Arc<Shared<B, S>>,
    partition: &Arc<Partition>,
    message: Arc<OwnedMessage>,
) -> Result<(), Abandoned> {
    let task = {
        let (shared, partition, message) = (
            Arc::clone(shared),
            Arc::clone(partition),
            Arc::clone(&message),
        );
        tokio::spawn(async move { process(&shared, &partition, &message).await })
    };
    match task.await {
        Ok(done) => done,
        Err(e) => {
            let detail = match e.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(e) => e.to_string(),
            };
            let ce_id = ce_id(&read_headers(&message)).ok();
            let reason = Reason::Panicked { detail };
            dead_letter(shared, partition, &message, ce_id.as_deref(), &reason).await
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
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
    let ce_id = match ce_id(&read_headers(message)) {
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

/// A record's headers as read, values as bytes.
#[derive(Debug, Default)]
struct RecordHeaders {
    /// `(name, value)` in order, `None` for a header without a value.
    pairs: Vec<(String, Option<Vec<u8>>)>,
    /// Headers whose name is not UTF-8 (Kafka's protocol says it is; a raw client may send
    /// anything), left out of `pairs`.
    bad_names: usize,
}

/// Reads `message`'s headers. rdkafka's accessor panics on a header name that is not UTF-8
/// (it unwraps the conversion), so each header is read under `catch_unwind` and such a name
/// is counted instead: one hostile record must not end the partition's worker. The panic
/// hook still prints rdkafka's message once per such header.
fn read_headers(message: &OwnedMessage) -> RecordHeaders {
    let mut read = RecordHeaders::default();
    let Some(headers) = message.headers() else {
        return read;
    };
    for idx in 0..headers.count() {
        let header = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            headers
                .try_get(idx)
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        }));
        match header {
            Ok(Some(pair)) => read.pairs.push(pair),
            Ok(None) => {}
            Err(_) => read.bad_names += 1,
        }
    }
    read
}

/// The `ce_id` header (the last one, if repeated), checked.
fn ce_id(headers: &RecordHeaders) -> Result<String, Reason> {
    if headers.bad_names > 0 {
        return Err(Reason::HeaderNameNotUtf8 {
            count: headers.bad_names,
        });
    }
    let value = headers
        .pairs
        .iter()
        .rfind(|(name, _)| name == "ce_id")
        .and_then(|(_, value)| value.as_deref())
        .ok_or(Reason::MissingCeId)?;
    let id = std::str::from_utf8(value).map_err(|_| Reason::CeIdNotUtf8)?;
    if id.is_empty() || id.len() > MAX_INBOX_ID_BYTES {
        return Err(Reason::CeIdLength { bytes: id.len() });
    }
    // PostgreSQL refuses a NUL in text: the insert would fail on every retry and hold the
    // partition. No CloudEvents id needs a control character.
    if id.chars().any(char::is_control) {
        return Err(Reason::CeIdControlCharacter);
    }
    Ok(id.to_owned())
}

/// Headers as a JSON array of `[name, value]`, values lossily UTF-8 (null when absent).
fn headers_json(message: &OwnedMessage) -> String {
    let pairs: Vec<(String, Option<String>)> = read_headers(message)
        .pairs
        .into_iter()
        .map(|(name, value)| {
            let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
            (name, value)
        })
        .collect();
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
