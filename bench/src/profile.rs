//! Where a relay's drain time goes: a store that times every call the relay makes on it.
//!
//! The relay's step is read (database) → await the previous batch's acknowledgements (Kafka)
//! → enqueue the batch read (CPU) → delete the previous batch (database). Timing the store's
//! calls splits a drain into the database's share and the rest (enqueue, awaiting Kafka, the
//! loop's bookkeeping) without touching the relay.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use outbox_core::Result;
use outbox_core::relay::{
    AdminStore, BlockedKey, DeadLetter, FailureStore, Fence, LeaseStore, OutboxStatus, ReadRow,
    RelayStore,
};
use uuid::Uuid;

/// Time spent in each kind of store call, summed over a drain.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreTimes {
    /// `read_after`: the claim, strict-order horizon included.
    pub(crate) read: Duration,
    pub(crate) reads: usize,
    /// `ack`: the fenced delete.
    pub(crate) ack: Duration,
    pub(crate) acks: usize,
    /// Lease, status and failure bookkeeping.
    pub(crate) other: Duration,
}

/// A store that delegates every call to `inner` and adds its duration to [`StoreTimes`].
#[derive(Debug, Clone)]
pub(crate) struct TimedStore<S> {
    inner: S,
    times: Arc<Mutex<StoreTimes>>,
}

impl<S> TimedStore<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            times: Arc::default(),
        }
    }

    /// The times so far.
    pub(crate) fn times(&self) -> StoreTimes {
        *self.times.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, started: Instant, what: impl FnOnce(&mut StoreTimes, Duration)) {
        let took = started.elapsed();
        what(
            &mut self.times.lock().unwrap_or_else(PoisonError::into_inner),
            took,
        );
    }
}

impl<S: RelayStore> RelayStore for TimedStore<S> {
    async fn read_after(&self, after: i64, limit: usize) -> Result<Vec<ReadRow>> {
        let started = Instant::now();
        let rows = self.inner.read_after(after, limit).await;
        self.add(started, |t, d| {
            t.read += d;
            t.reads += 1;
        });
        rows
    }

    async fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> Result<u64> {
        let started = Instant::now();
        let deleted = self.inner.ack(ids, fence).await;
        self.add(started, |t, d| {
            t.ack += d;
            t.acks += 1;
        });
        deleted
    }
}

impl<S: FailureStore> FailureStore for TimedStore<S> {
    async fn record_failure(&self, event_id: Uuid, error: &str) -> Result<u32> {
        let started = Instant::now();
        let out = self.inner.record_failure(event_id, error).await;
        self.add(started, |t, d| t.other += d);
        out
    }

    async fn dead_letter(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let started = Instant::now();
        let out = self.inner.dead_letter(id, attempts, error, fence).await;
        self.add(started, |t, d| t.other += d);
        out
    }

    async fn blocked_keys(&self) -> Result<Vec<(BlockedKey, i64)>> {
        let started = Instant::now();
        let out = self.inner.blocked_keys().await;
        self.add(started, |t, d| t.other += d);
        out
    }
}

impl<S: LeaseStore> LeaseStore for TimedStore<S> {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        let started = Instant::now();
        let out = self.inner.try_acquire_lease(name, holder, ttl).await;
        self.add(started, |t, d| t.other += d);
        out
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl: Duration,
    ) -> Result<bool> {
        let started = Instant::now();
        let out = self.inner.renew_lease(name, holder, token, ttl).await;
        self.add(started, |t, d| t.other += d);
        out
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let started = Instant::now();
        let out = self.inner.release_lease(name, holder).await;
        self.add(started, |t, d| t.other += d);
        out
    }
}

impl<S: AdminStore> AdminStore for TimedStore<S> {
    async fn status(&self, lease: &str) -> Result<OutboxStatus> {
        let started = Instant::now();
        let out = self.inner.status(lease).await;
        self.add(started, |t, d| t.other += d);
        out
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(limit).await
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<bool> {
        self.inner.retry_dead_letter(id).await
    }

    async fn discard_dead_letter(&self, id: i64) -> Result<bool> {
        self.inner.discard_dead_letter(id).await
    }
}
