//! The relay store's traits: a small core (read and acknowledge) and one trait per further
//! capability, so a store implements, and a caller asks for, only what it uses.

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use super::{BlockedKey, DeadLetter, Fence, OutboxRecord, OutboxStatus, ReadRow};
use crate::{NewOutboxRow, Result};

/// Reading the outbox in `id` order and acknowledging what was published: the relay's hot
/// path.
///
/// Reading takes no lock and removes nothing: a relay's exclusivity comes from the lease
/// ([`LeaseStore`]), and its writes are fenced by the lease generation ([`Fence`]).
///
/// # Contract
///
/// - `read_after` returns up to `limit` rows with `id > after` in `id` order, never a row
///   whose transaction has not committed, and (in a store's strict mode) never a row while a
///   row with a smaller `id` may still commit. It does not remove rows: reading twice returns
///   them again. A row whose columns do not decode comes back as [`ReadRow::Malformed`], with
///   a reason naming the column; the read itself never fails because of one row's content.
/// - `ack` deletes exactly the given rows (ids not in the outbox are ignored), in one
///   transaction, forgets their attempts, and returns how many rows it deleted.
/// - `ack` given a [`Fence`] writes nothing and returns
///   [`Error::LeaseLost`](crate::Error::LeaseLost) unless the lease still has that holder and
///   token, checked in the same transaction as the write.
pub trait RelayStore: Send + Sync {
    /// Reads the next rows with an `id` above `after`, in `id` order, each decoded on its
    /// own: a relay that keeps a cursor skips rows it already produced, and lets the index
    /// skip deleted ones.
    fn read_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ReadRow>>> + Send;

    /// Deletes acknowledged rows, if `fence` (when given) still holds; returns how many were
    /// deleted.
    fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> impl Future<Output = Result<u64>> + Send;
}

/// Conveniences over [`RelayStore`] for tools and tests that want well-formed records only.
pub trait RelayStoreExt: RelayStore {
    /// The next well-formed rows in `id` order, from the start (malformed rows are left out:
    /// see [`RelayStore::read_after`]).
    fn read_batch(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxRecord>>> + Send {
        self.read_records_after(i64::MIN, limit)
    }

    /// The next well-formed rows with an `id` above `after`, in `id` order (malformed rows
    /// are left out, so fewer than `limit` may come back while more wait).
    fn read_records_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRecord>>> + Send {
        async move {
            let rows = self.read_after(after, limit).await?;
            Ok(rows.into_iter().filter_map(ReadRow::record).collect())
        }
    }
}

impl<S: RelayStore + ?Sized> RelayStoreExt for S {}

/// Counting failed attempts and setting permanently failing rows aside.
///
/// # Contract
///
/// - `record_failure` counts a failed attempt for an event (keeping the last error) and
///   returns the count so far; `ack` and `dead_letter` of the row forget the count.
/// - `dead_letter` moves a row (by `id`, whatever its columns hold), with its attempts and
///   error, to the dead-letter table atomically: afterwards it is in exactly one of the two
///   tables. Given a [`Fence`], it writes nothing and returns
///   [`Error::LeaseLost`](crate::Error::LeaseLost) unless the lease still has that holder and
///   token, checked in the same transaction as the write.
/// - `blocked_keys` lists each distinct `(topic, key)` of the dead letters once, with the
///   smallest outbox id among its dead letters; a dead letter whose topic or key does not
///   decode is left out rather than failing the call.
pub trait FailureStore: Send + Sync {
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

    /// The distinct `(topic, key)` pairs that have dead letters, each with the smallest
    /// outbox id among its dead letters: a relay with the block policy holds back the key's
    /// events after that id.
    fn blocked_keys(&self) -> impl Future<Output = Result<Vec<(BlockedKey, i64)>>> + Send;
}

/// The leader lease: one active relay at a time, each grant a new fencing token.
///
/// # Contract
///
/// - `try_acquire_lease` grants `name` to `holder` for `ttl` when it is free, expired, or
///   already `holder`'s (a restarted relay taking its own lease back), returning a fencing
///   token that grows with every grant; otherwise `None`. Two callers racing for a free
///   lease never both get it.
/// - `renew_lease` extends the lease only while `holder` still has it with `token`, and
///   returns whether it did.
/// - `release_lease` ends `holder`'s lease at once (a no-op when someone else holds it).
pub trait LeaseStore: Send + Sync {
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
}

/// What an operator reads and does: status, and the dead letters listed, retried or
/// discarded.
///
/// # Contract
///
/// - `status` counts the backlog and the dead letters, gives the age of the oldest waiting
///   row (leaving out rows whose `created_at` is no point in time) and the live holder of
///   `lease`; it never fails because of one malformed row.
/// - `dead_letters` lists up to `limit` dead letters in `id` order, each with its attempts
///   and error; a malformed one is listed with what could be decoded.
/// - `retry_dead_letter` puts a dead letter back into the outbox with its original `id` and
///   `event_id`, atomically, and returns whether there was one; `discard_dead_letter`
///   deletes it and returns whether there was one.
pub trait AdminStore: Send + Sync {
    /// Backlog, lag, dead letters and leader of `lease`.
    fn status(&self, lease: &str) -> impl Future<Output = Result<OutboxStatus>> + Send;

    /// Dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// Puts a dead letter back into the outbox with its original `id` (and `event_id`), so
    /// it is produced in its original place: ahead of its key's later events.
    fn retry_dead_letter(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes a dead letter for good.
    fn discard_dead_letter(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;
}

/// Inserting rows outside an application transaction: for tests, tools and the memory store.
pub trait InsertRows: Send + Sync {
    /// Inserts rows in order, in one transaction.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaIdOutOfRange`](crate::Error::SchemaIdOutOfRange) for a row whose schema
    /// id the column cannot store (nothing of the batch is written), and the store's errors.
    fn insert_rows(&self, rows: &[NewOutboxRow]) -> impl Future<Output = Result<()>> + Send;
}
