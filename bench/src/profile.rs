//! Where a relay's drain time goes: a store that times every call the relay makes on it.
//!
//! The relay's step is read (database) → await the previous batch's acknowledgements (Kafka)
//! → enqueue the batch read (CPU) → delete the previous batch (database). Timing the store's
//! calls splits a drain into the database's share and the rest (enqueue, awaiting Kafka, the
//! loop's bookkeeping) without touching the relay.

use std::future::Future;
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
    /// Wall time with at least one call outstanding (less than the calls' sum when a caller
    /// overlaps them).
    pub(crate) busy: Duration,
}

impl std::ops::Sub for StoreTimes {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            read: self.read - earlier.read,
            reads: self.reads - earlier.reads,
            ack: self.ack - earlier.ack,
            acks: self.acks - earlier.acks,
            other: self.other - earlier.other,
            busy: self.busy - earlier.busy,
        }
    }
}

/// The times, and the calls outstanding now.
#[derive(Debug, Default)]
struct Clock {
    times: StoreTimes,
    outstanding: usize,
    busy_from: Option<Instant>,
}

/// A store that delegates every call to `inner` and adds its duration to [`StoreTimes`].
#[derive(Debug, Clone)]
pub(crate) struct TimedStore<S> {
    inner: S,
    clock: Arc<Mutex<Clock>>,
}

impl<S> TimedStore<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            clock: Arc::default(),
        }
    }

    /// The times so far.
    pub(crate) fn times(&self) -> StoreTimes {
        self.lock().times
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call`, adding its duration to the times with `what`.
    async fn timed<T>(
        &self,
        call: impl Future<Output = T>,
        what: impl FnOnce(&mut StoreTimes, Duration),
    ) -> T {
        let started = Instant::now();
        {
            let mut clock = self.lock();
            clock.outstanding += 1;
            clock.busy_from.get_or_insert(started);
        }
        let out = call.await;
        let mut clock = self.lock();
        what(&mut clock.times, started.elapsed());
        clock.outstanding -= 1;
        if clock.outstanding == 0
            && let Some(from) = clock.busy_from.take()
        {
            clock.times.busy += from.elapsed();
        }
        out
    }
}

/// Adds a call's duration to the bookkeeping time.
fn other(times: &mut StoreTimes, took: Duration) {
    times.other += took;
}

impl<S: RelayStore> RelayStore for TimedStore<S> {
    async fn read_after(&self, after: i64, limit: usize) -> Result<Vec<ReadRow>> {
        self.timed(self.inner.read_after(after, limit), |t, d| {
            t.read += d;
            t.reads += 1;
        })
        .await
    }

    async fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> Result<u64> {
        self.timed(self.inner.ack(ids, fence), |t, d| {
            t.ack += d;
            t.acks += 1;
        })
        .await
    }
}

impl<S: FailureStore> FailureStore for TimedStore<S> {
    async fn record_failure(&self, event_id: Uuid, error: &str) -> Result<u32> {
        self.timed(self.inner.record_failure(event_id, error), other)
            .await
    }

    async fn dead_letter(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.timed(self.inner.dead_letter(id, attempts, error, fence), other)
            .await
    }

    async fn blocked_keys(&self) -> Result<Vec<(BlockedKey, i64)>> {
        self.timed(self.inner.blocked_keys(), other).await
    }
}

impl<S: LeaseStore> LeaseStore for TimedStore<S> {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        self.timed(self.inner.try_acquire_lease(name, holder, ttl), other)
            .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl: Duration,
    ) -> Result<bool> {
        self.timed(self.inner.renew_lease(name, holder, token, ttl), other)
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.timed(self.inner.release_lease(name, holder), other)
            .await
    }
}

impl<S: AdminStore> AdminStore for TimedStore<S> {
    async fn status(&self, lease: &str) -> Result<OutboxStatus> {
        self.timed(self.inner.status(lease), other).await
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
