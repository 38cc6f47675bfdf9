//! The poll thread: reads records, hands each to its partition's worker, commits processed
//! offsets, and answers rebalances.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outbox_core::registry::SchemaStore;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc::error::TrySendError;

use super::partition::Partition;
use super::{Shared, record};
use crate::InboxBackend;

/// How long one poll waits for a record, so stop requests and stashes are seen promptly.
const POLL_WAIT: Duration = Duration::from_millis(50);

/// How often the lag gauge is refreshed (a watermark fetch per partition).
const LAG_EVERY: Duration = Duration::from_secs(5);
/// How long one watermark fetch may hold the poll thread.
const LAG_FETCH_WAIT: Duration = Duration::from_millis(200);

/// The consumer's context: rebalance callbacks run on the poll thread, inside `poll`.
#[derive(Debug)]
pub(super) struct InboxContext<B, S> {
    pub(super) shared: Arc<Shared<B, S>>,
}

impl<B, S> ClientContext for InboxContext<B, S> where Self: Send + Sync {}

impl<B: InboxBackend, S: SchemaStore + Send + Sync + 'static> ConsumerContext
    for InboxContext<B, S>
{
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<Arc<Partition>> = {
                let mut map = lock(&self.shared.partitions);
                tpl.elements()
                    .iter()
                    .filter_map(|e| map.remove(&(e.topic().to_owned(), e.partition())))
                    .collect()
            };
            tracing::info!(partitions = revoked.len(), "partitions revoked");
            settle(consumer, &revoked, self.shared.settings.revoke_timeout);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut map = lock(&self.shared.partitions);
                for e in tpl.elements() {
                    let key = (e.topic().to_owned(), e.partition());
                    if map.contains_key(&key) {
                        continue;
                    }
                    let (tx, rx) =
                        tokio::sync::mpsc::channel(self.shared.settings.queue_per_partition);
                    let partition = Arc::new(Partition::new(e.topic(), e.partition(), tx));
                    self.shared.runtime.spawn(record::work(
                        Arc::clone(&self.shared),
                        Arc::clone(&partition),
                        rx,
                    ));
                    map.insert(key, partition);
                }
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }
}

pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stops `partitions`' workers, waits (up to `timeout`) for their record in flight, and
/// commits what they processed. A record whose transaction commits after the wait is not
/// committed here: its next owner finds its `ce_id` in the inbox and skips it.
fn settle<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[Arc<Partition>],
    timeout: Duration,
) {
    for p in partitions {
        p.revoked.store(true, Ordering::SeqCst);
        lock(&p.stash).clear();
    }
    let deadline = Instant::now() + timeout;
    for p in partitions {
        loop {
            if p.busy.try_lock().is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(topic = %p.topic, partition = p.partition, "record still in flight at revoke; its offset is left uncommitted");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    commit(consumer, partitions, CommitMode::Sync);
}

/// Commits the processed offsets of `partitions` that moved.
fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[Arc<Partition>],
    mode: CommitMode,
) {
    let mut tpl = TopicPartitionList::new();
    let mut moved = Vec::new();
    for p in partitions {
        if let Some(offset) = p.uncommitted()
            && tpl
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(offset))
                .is_ok()
        {
            moved.push((p, offset));
        }
    }
    if moved.is_empty() {
        return;
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            for (p, offset) in moved {
                p.committed.store(offset, Ordering::SeqCst);
            }
        }
        Err(e) => tracing::warn!(error = %e, "offset commit failed; retried at the next interval"),
    }
}

/// The poll loop, until the runner stops; then it settles every partition and leaves.
pub(super) fn run<B: InboxBackend, S: SchemaStore + Send + Sync + 'static>(
    consumer: &BaseConsumer<InboxContext<B, S>>,
    shared: &Arc<Shared<B, S>>,
) {
    let mut last_commit = Instant::now();
    let mut last_lag = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        let partitions: Vec<Arc<Partition>> = lock(&shared.partitions).values().cloned().collect();
        for p in &partitions {
            drain_stash(consumer, p);
        }
        match consumer.poll(POLL_WAIT) {
            Some(Ok(message)) => {
                let message = message.detach();
                let key = (message.topic().to_owned(), message.partition());
                let partition = lock(&shared.partitions).get(&key).cloned();
                if let Some(p) = partition {
                    hand_over(consumer, &p, message);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
            None => {}
        }
        if last_commit.elapsed() >= shared.settings.commit_interval {
            commit(consumer, &partitions, CommitMode::Async);
            last_commit = Instant::now();
        }
        if last_lag.elapsed() >= LAG_EVERY {
            report_lag(consumer, shared, &partitions);
            last_lag = Instant::now();
        }
    }
    let partitions: Vec<Arc<Partition>> =
        lock(&shared.partitions).drain().map(|(_, p)| p).collect();
    settle(consumer, &partitions, shared.settings.revoke_timeout);
    consumer.unsubscribe();
}

/// Queues `message` for its worker, behind any stashed records; pauses the partition when
/// the queue is full, so memory stays bounded.
fn hand_over<C: ConsumerContext>(consumer: &BaseConsumer<C>, p: &Partition, message: OwnedMessage) {
    let mut stash = lock(&p.stash);
    if !stash.is_empty() {
        stash.push_back(message);
        return;
    }
    match p.queue.try_send(message) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(message)) => {
            stash.push_back(message);
            drop(stash);
            set_paused(consumer, p, true);
        }
    }
}

fn drain_stash<C: ConsumerContext>(consumer: &BaseConsumer<C>, p: &Partition) {
    let mut stash = lock(&p.stash);
    while let Some(message) = stash.pop_front() {
        match p.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => stash.clear(),
            Err(TrySendError::Full(message)) => {
                stash.push_front(message);
                return;
            }
        }
    }
    drop(stash);
    if p.paused.load(Ordering::SeqCst) {
        set_paused(consumer, p, false);
    }
}

fn set_paused<C: ConsumerContext>(consumer: &BaseConsumer<C>, p: &Partition, pause: bool) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&p.topic, p.partition);
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => p.paused.store(pause, Ordering::SeqCst),
        Err(e) => tracing::warn!(error = %e, pause, "pause/resume failed"),
    }
}

fn report_lag<B, S, C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    shared: &Shared<B, S>,
    partitions: &[Arc<Partition>],
) {
    let mut lag = 0i64;
    for p in partitions {
        if let Ok((_, high)) = consumer.fetch_watermarks(&p.topic, p.partition, LAG_FETCH_WAIT) {
            let done = p.processed.load(Ordering::SeqCst);
            if high >= 0 && done >= 0 {
                lag = lag.saturating_add((high - done).max(0));
            }
        }
    }
    shared.metrics.lag.set(lag);
}
