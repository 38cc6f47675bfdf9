//! The relay's view of the outbox: claim, acknowledge, count failures, dead-letter, lease.
//!
//! [`RelayStore`] is implemented per database by `outbox-sqlx` and in memory here; the
//! [`conformance`] functions hold every implementation to the same contract.

pub mod conformance;
mod memory;

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

pub use memory::MemoryRelayStore;

use crate::{NewOutboxRow, Result};

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
    pub schema_id: Option<i32>,
    /// The record's `content-type`.
    pub content_type: String,
    /// The Kafka record value.
    pub payload: Vec<u8>,
    /// Stored headers, in order.
    pub headers: Vec<(String, String)>,
    /// When the row was written, in milliseconds since the Unix epoch (the record timestamp).
    pub created_at_ms: i64,
}

/// A claimed row the relay cannot turn into a record (a malformed column, written by a writer
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

/// One claimed row: a record to produce, or a row that cannot become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimedRow {
    /// A well-formed row.
    Record(OutboxRecord),
    /// A row with a malformed column.
    Malformed(MalformedRow),
}

impl ClaimedRow {
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

/// What an operator needs to see at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    /// Rows waiting to be published.
    pub backlog: u64,
    /// Age of the oldest waiting row (the relay's lag).
    pub oldest_age: Option<Duration>,
    /// Rows in the dead-letter table.
    pub dead_letters: u64,
    /// The holder of the relay lease, if it is live.
    pub leader: Option<String>,
}

/// The relay's operations on the outbox.
///
/// # Contract
///
/// - `claim_rows_after` returns up to `limit` rows with `id > after` in `id` order, never a row
///   whose transaction has not committed, and (in a store's strict mode) never a row while a
///   row with a smaller `id` may still commit. It does not remove rows: claiming twice returns
///   them again. A row whose columns do not decode comes back as [`ClaimedRow::Malformed`]
///   (the claim itself never fails because of one row's content).
/// - `ack` deletes exactly the given rows, in one statement, and forgets their attempts.
/// - `ack` and `dead_letter` given a [`Fence`] write nothing and return
///   [`Error::LeaseLost`](crate::Error::LeaseLost) unless the lease still has that holder and
///   token, checked in the same transaction as the write.
/// - `record_failure` counts a failed attempt for an event and returns the count so far.
/// - `dead_letter` moves a row (by `id`, whatever its columns hold), with its attempts and
///   error, to the dead-letter table atomically: afterwards it is in exactly one of the two
///   tables. Listing and status never fail because of a malformed row either.
/// - `try_acquire_lease` grants `name` to `holder` for `ttl` when it is free, expired, or
///   already `holder`'s (a restarted relay taking its own lease back), returning a fencing
///   token that grows with every grant; otherwise `None`.
/// - `renew_lease` extends the lease only while `holder` still has it with `token`.
pub trait RelayStore: Send + Sync {
    /// Claims the next well-formed rows in `id` order, from the start (malformed rows are
    /// left out: see [`claim_rows_after`](Self::claim_rows_after)).
    fn claim_batch(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxRecord>>> + Send {
        self.claim_after(i64::MIN, limit)
    }

    /// Claims the next well-formed rows with an `id` above `after`, in `id` order (malformed
    /// rows are left out: see [`claim_rows_after`](Self::claim_rows_after)).
    fn claim_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRecord>>> + Send {
        async move {
            let rows = self.claim_rows_after(after, limit).await?;
            Ok(rows.into_iter().filter_map(ClaimedRow::record).collect())
        }
    }

    /// Claims the next rows with an `id` above `after`, in `id` order, each decoded on its
    /// own: a relay that keeps a cursor skips rows it already produced, and lets the index
    /// skip deleted ones.
    fn claim_rows_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ClaimedRow>>> + Send;

    /// Deletes acknowledged rows, if `fence` (when given) still holds; returns how many were
    /// deleted.
    fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> impl Future<Output = Result<u64>> + Send;

    /// Counts a failed attempt; returns the attempts so far.
    fn record_failure(
        &self,
        event_id: Uuid,
        error: &str,
    ) -> impl Future<Output = Result<u32>> + Send;

    /// Moves the row with outbox id `id` to the dead-letter table, if `fence` (when given)
    /// still holds.
    fn dead_letter(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Takes a lease that is free, expired or `holder`'s own; `Some(new fencing token)` when
    /// granted.
    fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Extends a lease `holder` was granted with `token`; false when it was taken over.
    fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Gives a lease up, if `holder` has it.
    fn release_lease(&self, name: &str, holder: &str) -> impl Future<Output = Result<()>> + Send;

    /// Backlog, lag, dead letters and leader of `lease`.
    fn status(&self, lease: &str) -> impl Future<Output = Result<OutboxStatus>> + Send;

    /// Dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// Puts a dead letter back into the outbox with its original `id` (and `event_id`), so
    /// it is produced in its original place: ahead of its key's later events.
    fn retry_dead_letter(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes a dead letter for good.
    fn discard_dead_letter(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// The distinct `(topic, key)` pairs that have dead letters, each with the smallest
    /// outbox id among its dead letters: a relay with the block policy holds back the key's
    /// events after that id.
    fn blocked_keys(&self) -> impl Future<Output = Result<Vec<(BlockedKey, i64)>>> + Send;
}

/// A `(topic, key)` with a dead letter.
pub type BlockedKey = (String, Option<Vec<u8>>);

/// Inserting rows outside an application transaction: for tests, tools and the memory store.
pub trait InsertRows: Send + Sync {
    /// Inserts rows in order, in one transaction.
    fn insert_rows(&self, rows: &[NewOutboxRow]) -> impl Future<Output = Result<()>> + Send;
}
