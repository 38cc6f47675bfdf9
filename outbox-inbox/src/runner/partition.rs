//! One assigned partition: its ordered worker's queue and its progress.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use rdkafka::message::OwnedMessage;
use tokio::sync::mpsc;

/// An assigned partition. Dropped from the shared map when revoked; its worker notices
/// [`Partition::revoked`] and stops before the next record.
#[derive(Debug)]
pub(super) struct Partition {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Queue to the worker (bounded: when full, the partition is paused).
    pub(super) queue: mpsc::Sender<OwnedMessage>,
    /// Records polled while the queue was full, in order, waiting for room.
    pub(super) stash: Mutex<VecDeque<OwnedMessage>>,
    pub(super) paused: AtomicBool,
    pub(super) revoked: AtomicBool,
    /// Held by the worker while it processes a record, so a revoke can wait for it.
    pub(super) busy: tokio::sync::Mutex<()>,
    /// The offset after the last record whose transaction committed (-1: none yet).
    pub(super) processed: AtomicI64,
    /// The offset last committed to Kafka (-1: none yet).
    pub(super) committed: AtomicI64,
}

impl Partition {
    pub(super) fn new(topic: &str, partition: i32, queue: mpsc::Sender<OwnedMessage>) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            queue,
            stash: Mutex::default(),
            paused: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
            processed: AtomicI64::new(-1),
            committed: AtomicI64::new(-1),
        }
    }

    pub(super) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }

    /// The offset to commit, if it moved since the last commit.
    pub(super) fn uncommitted(&self) -> Option<i64> {
        let processed = self.processed.load(Ordering::SeqCst);
        (processed > self.committed.load(Ordering::SeqCst)).then_some(processed)
    }
}
