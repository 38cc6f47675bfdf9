//! The relay's view of the outbox, split by capability: read and acknowledge
//! ([`RelayStore`]), failures and dead letters ([`FailureStore`]), the leader lease
//! ([`LeaseStore`]), and what operators read and do ([`AdminStore`]).
//!
//! Each is implemented per database by `outbox-sqlx` and in memory here; the
//! [`conformance`] functions hold every implementation to the same contract, one group of
//! checks per capability.

pub mod conformance;
mod memory;
mod store;

use std::time::Duration;

use uuid::Uuid;

pub use memory::MemoryRelayStore;
pub use store::{AdminStore, FailureStore, InsertRows, LeaseStore, RelayStore, RelayStoreExt};

use crate::SchemaId;

/// An outbox row as the relay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Position in the outbox; the order events of one key are produced in.
    pub id: i64,
    /// The CloudEvents id.
    pub event_id: Uuid,
    /// The Kafka topic.
    pub topic: String,
    /// The Kafka key.
    pub event_key: Option<Vec<u8>>,
    /// The Avro full name (`ce_type`).
    pub event_type: String,
    /// The schema id the payload was encoded with.
    pub schema_id: Option<SchemaId>,
    /// The record's `content-type`.
    pub content_type: String,
    /// The Kafka record value.
    pub payload: Vec<u8>,
    /// Stored headers, in order.
    pub headers: Vec<(String, String)>,
    /// When the row was written, in milliseconds since the Unix epoch (the record timestamp).
    pub created_at_ms: i64,
}

/// A row the relay read but cannot turn into a record (a malformed column, written by a writer
/// that bypassed the library); it is dead-lettered with `reason` while every other row flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRow {
    /// Position in the outbox.
    pub id: i64,
    /// Its `(topic, key)` when those two columns decoded, for the poison policy.
    pub key: Option<BlockedKey>,
    /// What is wrong, naming the column (`headers: not a JSON array ...`).
    pub reason: String,
}

/// One row read from the outbox: a record to produce, or a row that cannot become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRow {
    /// A well-formed row.
    Record(OutboxRecord),
    /// A row with a malformed column.
    Malformed(MalformedRow),
}

impl ReadRow {
    /// The row's position in the outbox.
    pub fn id(&self) -> i64 {
        match self {
            Self::Record(r) => r.id,
            Self::Malformed(m) => m.id,
        }
    }

    /// The record, if the row is well-formed.
    pub fn record(self) -> Option<OutboxRecord> {
        match self {
            Self::Record(r) => Some(r),
            Self::Malformed(_) => None,
        }
    }
}

/// A row moved aside after failing permanently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The row as it was (its `id` is the original outbox id).
    pub record: OutboxRecord,
    /// How many attempts failed.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

/// The lease generation a relay's write is made under: the store refuses the write once
/// another holder has taken the lease (its fencing token moved on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease name.
    pub lease: String,
    /// The holder that was granted `token`.
    pub holder: String,
    /// The fencing token (lease generation) granted.
    pub token: i64,
}

/// Up to this many waiting rows the backlog is counted exactly; above it, it is estimated from
/// the id range, so reading the status never scans a large outbox.
pub const BACKLOG_EXACT_UP_TO: u64 = 100_000;

/// What an operator needs to see at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    /// Rows waiting to be published: exact up to [`BACKLOG_EXACT_UP_TO`], above it estimated
    /// (see [`backlog_estimated`](Self::backlog_estimated)).
    pub backlog: u64,
    /// The backlog is above [`BACKLOG_EXACT_UP_TO`] and was estimated from the id range (the
    /// largest id less the smallest, plus one): gaps left by rolled-back or dead-lettered
    /// rows make it an upper bound.
    pub backlog_estimated: bool,
    /// Age of the row at the head of the outbox (the smallest id, the next to publish): the
    /// relay's lag.
    pub oldest_age: Option<Duration>,
    /// Rows in the dead-letter table.
    pub dead_letters: u64,
    /// The holder of the relay lease, if it is live.
    pub leader: Option<String>,
}

/// A `(topic, key)` with a dead letter.
pub type BlockedKey = (String, Option<Vec<u8>>);
