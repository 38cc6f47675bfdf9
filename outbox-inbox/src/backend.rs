//! What the runner needs from a database: apply one event exactly once, set a record aside,
//! forget old ids. `outbox-sqlx` and `outbox-diesel` implement it under their `inbox` feature.

use std::future::Future;
use std::time::Duration;

use outbox_core::avro::types::Value;
use outbox_core::table::SqlValue;

use crate::Reason;

/// An error a backend or handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One record, decoded, as a backend applies it.
#[derive(Debug, Clone)]
pub struct InboxEvent {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka key.
    pub key: Option<Vec<u8>>,
    /// The CloudEvents id (`ce_id` header): the idempotency key.
    pub ce_id: String,
    /// The value decoded to the reader schema; `None` for a tombstone.
    pub value: Option<Value>,
}

/// A record set aside, with its reason.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its `ce_id`, when it had a usable one.
    pub ce_id: Option<&'a str>,
    /// The Kafka key.
    pub key: Option<&'a [u8]>,
    /// The value as received (`None` for a tombstone or one too large to keep).
    pub value: Option<&'a [u8]>,
    /// The headers as a JSON array of `[name, value]` pairs (values lossily UTF-8).
    pub headers: &'a str,
    /// Why.
    pub reason: &'a Reason,
}

impl DeadLetter<'_> {
    /// The parameters of [`InboxStatements::insert_dead_letter`] for `group`, in order.
    ///
    /// A NUL in the text columns (a reason quoting a handler's error about an event's string,
    /// say) becomes U+FFFD: PostgreSQL refuses NUL in text, and the runner retries a dead
    /// letter until it is stored, so a refusal would hold the partition for good.
    ///
    /// [`InboxStatements::insert_dead_letter`]: outbox_core::table::InboxStatements::insert_dead_letter
    pub fn params(&self, group: &str) -> Vec<SqlValue> {
        let text = |s: &str| SqlValue::Text(s.replace('\0', "\u{fffd}"));
        vec![
            text(group),
            text(self.topic),
            SqlValue::I32(self.partition),
            SqlValue::I64(self.offset),
            text(self.ce_id.unwrap_or_default()),
            SqlValue::OptBytes(self.key.map(<[u8]>::to_vec)),
            SqlValue::OptBytes(self.value.map(<[u8]>::to_vec)),
            text(self.headers),
            text(&self.reason.to_string()),
        ]
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The id was new: the effect ran and committed with the id.
    Processed,
    /// The id was already recorded: nothing ran.
    Duplicate,
}

/// Why applying an event failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The database failed (the transaction rolled back); retried until it works.
    #[error("inbox store: {0}")]
    Store(#[source] outbox_core::Error),
    /// The application's handler (or the sink) failed; retried with backoff, then
    /// dead-lettered.
    #[error("handler: {0}")]
    Handler(#[source] BoxError),
    /// The event can never be applied (it does not fit the handler's type, a tombstone):
    /// dead-lettered at once.
    #[error("rejected: {0}")]
    Rejected(Reason),
}

/// A database the inbox runner records processed events in.
///
/// # Contract
///
/// - [`apply`](Self::apply) runs, in one database transaction: the insert of
///   `(group, event.ce_id)` into `<prefix>_inbox` (if it affects no row, the event is a
///   duplicate: roll back and return [`Applied::Duplicate`]), then the effect, then the commit.
///   Nothing of the effect may survive when it returns an error.
/// - [`dead_letter`](Self::dead_letter) is idempotent per `(group, topic, partition, offset)`.
/// - Errors of the database itself are [`ApplyError::Store`]; the runner retries them.
pub trait InboxBackend: Send + Sync + 'static {
    /// The Avro schema to read values with (the handler's own), `None` for the writer's.
    ///
    /// # Errors
    ///
    /// When the handler's schema is not valid Avro.
    fn reader_schema(&self) -> outbox_core::Result<Option<outbox_core::Schema>>;

    /// Applies one event exactly once for `group`.
    fn apply(
        &self,
        group: &str,
        event: &InboxEvent,
    ) -> impl Future<Output = Result<Applied, ApplyError>> + Send;

    /// Sets a record aside for `group`.
    fn dead_letter(
        &self,
        group: &str,
        letter: DeadLetter<'_>,
    ) -> impl Future<Output = outbox_core::Result<()>> + Send;

    /// The `(topic, key)` pairs `group` has dead-lettered, for the block policy after a restart.
    fn dead_letter_keys(
        &self,
        group: &str,
    ) -> impl Future<Output = outbox_core::Result<Vec<(String, Vec<u8>)>>> + Send;

    /// Deletes `group`'s inbox rows older than `age`; returns how many.
    fn purge(
        &self,
        group: &str,
        age: Duration,
    ) -> impl Future<Output = outbox_core::Result<u64>> + Send;
}

impl InboxEvent {
    /// The value as the handler's type `T`, for a handler mode: every writer's handler reads
    /// events this way.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Rejected`] with [`Reason::Tombstone`] for a record without a value,
    /// [`Reason::Undecodable`] when the value does not fit `T`.
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApplyError> {
        let value = self
            .value
            .as_ref()
            .ok_or(ApplyError::Rejected(Reason::Tombstone))?;
        outbox_core::avro::from_value(value).map_err(|e| {
            ApplyError::Rejected(Reason::Undecodable {
                detail: e.to_string(),
            })
        })
    }
}
