//! The runner's errors, and the reasons a record is set aside.

use outbox_core::table::MAX_INBOX_ID_BYTES;

/// An error from the inbox runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The consumer could not be created, subscribed or committed.
    #[error("kafka consumer: {operation}: {source}")]
    Kafka {
        /// What was being done.
        operation: &'static str,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A setting is not usable.
    #[error("invalid inbox setting {key}: {reason}")]
    InvalidConfig {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The inbox database failed where the runner cannot retry (at start).
    #[error("inbox store: {0}")]
    Store(#[source] outbox_core::Error),
    /// The consumer thread ended abnormally.
    #[error("inbox consumer thread failed: {0}")]
    Thread(String),
}

/// `Result` with the runner's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a record went to the inbox dead letters, stored in their `reason` column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The record has no `ce_id` header, so it cannot be deduplicated.
    #[error("missing ce_id header")]
    MissingCeId,
    /// The `ce_id` header is not UTF-8.
    #[error("ce_id header is not utf-8")]
    CeIdNotUtf8,
    /// A header's name is not UTF-8 (Kafka's protocol says it is), so the `ce_id` header
    /// cannot be told apart.
    #[error("{count} header name(s) not utf-8")]
    HeaderNameNotUtf8 {
        /// How many.
        count: usize,
    },
    /// The `ce_id` header holds a control character (a NUL, which PostgreSQL refuses in text,
    /// among them).
    #[error("ce_id header contains a control character")]
    CeIdControlCharacter,
    /// The `ce_id` header is empty or longer than the inbox stores.
    #[error("ce_id header is empty or longer than {MAX_INBOX_ID_BYTES} bytes ({bytes} bytes)")]
    CeIdLength {
        /// Its length.
        bytes: usize,
    },
    /// The value is larger than the runner accepts.
    #[error("value of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit ([`InboxSettings::max_value_bytes`](crate::InboxSettings::max_value_bytes)).
        limit: usize,
    },
    /// The value names a schema id the registry does not know.
    #[error("unknown schema id: {detail}")]
    UnknownSchema {
        /// The registry's answer.
        detail: String,
    },
    /// The value is not Confluent-framed Avro the reader schema can read.
    #[error("undecodable value: {detail}")]
    Undecodable {
        /// Why.
        detail: String,
    },
    /// A tombstone (no value) reached a handler, which needs an event.
    #[error("tombstone (no value) for a handler that needs an event")]
    Tombstone,
    /// The handler failed on every attempt.
    #[error("handler failed {attempts} times, last: {last}")]
    HandlerFailed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// A sink needs the record key (UTF-8 text) to upsert or delete by.
    #[error("missing or non-utf-8 record key, which the sink upserts by")]
    MissingKey,
    /// Decoding or applying the record panicked (in the handler, or in a library on hostile
    /// bytes); the transaction rolled back.
    #[error("panicked while decoding or applying the record: {detail}")]
    Panicked {
        /// The panic's message.
        detail: String,
    },
    /// An earlier record of the same key is dead-lettered and the policy is block.
    #[error("blocked: an earlier record of this key is dead-lettered (policy block)")]
    Blocked,
}
