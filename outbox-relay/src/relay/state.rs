//! What the drain loop carries from one step to the next.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use outbox_core::relay::{BlockedKey, OutboxRecord};
use rdkafka::error::KafkaError;

#[derive(Default)]
pub(super) struct State {
    pub(super) lease_until: Option<Instant>,
    /// The lease generation last granted: every write is fenced with it.
    pub(super) token: Option<i64>,
    /// After a take-over, when to try for the lease again.
    pub(super) retake_after: Option<Instant>,
    /// Keys with a dead letter, and the smallest dead id of each: later events wait.
    pub(super) blocked: HashMap<BlockedKey, i64>,
    pub(super) blocked_read_at: Option<Instant>,
    pub(super) status_read_at: Option<Instant>,
    /// Keys whose event failed permanently but may still succeed: not produced before then.
    pub(super) retry_after: HashMap<BlockedKey, Instant>,
    /// The last id read: the next read starts after it. `None` reads from the start,
    /// below every id (a plain-SQL writer may insert ids of 0 or less).
    pub(super) cursor: Option<i64>,
    /// The batch produced but not yet acknowledged; it is finished during the next step,
    /// after that step's read, so the database and Kafka work at the same time.
    pub(super) pending: Option<Batch>,
}

/// A batch read whose records were handed to the producer.
pub(super) struct Batch {
    pub(super) records: Vec<OutboxRecord>,
    pub(super) in_flight: Vec<(usize, rdkafka::producer::DeliveryFuture)>,
    pub(super) failures: Vec<(usize, KafkaError)>,
    pub(super) started: Instant,
}

/// A batch whose acknowledgements all arrived (or failed).
pub(super) struct Delivered {
    pub(super) records: Vec<OutboxRecord>,
    pub(super) acked: Vec<usize>,
    pub(super) failures: Vec<(usize, KafkaError)>,
    pub(super) started: Instant,
}

/// What a step did.
#[derive(Default)]
pub(super) struct Finished {
    pub(super) published: usize,
    pub(super) dead_lettered: usize,
    /// Rows that stay in the outbox (failures, held keys): the cursor must go back for them.
    pub(super) left_behind: bool,
    /// Keys with a failed event: their later events wait for it.
    pub(super) held: HashSet<BlockedKey>,
    /// Rows left in the outbox behind a failed event of their key.
    pub(super) held_back: usize,
}

impl Finished {
    pub(super) fn add(&mut self, other: Self) {
        self.published += other.published;
        self.dead_lettered += other.dead_lettered;
        self.left_behind |= other.left_behind;
        self.held.extend(other.held);
        self.held_back += other.held_back;
    }
}

/// Records a dead letter of `key` at `id` (the block policy holds back what follows it).
/// Blocks `key` from `id` on. Events without a key have no order to keep, so a keyless dead
/// letter blocks nothing (it would park every later keyless event of its topic).
pub(super) fn block(state: &mut State, key: BlockedKey, id: i64) {
    if key.1.is_none() {
        return;
    }
    let dead = state.blocked.entry(key).or_insert(id);
    *dead = (*dead).min(id);
}

pub(super) fn key_of(record: &OutboxRecord) -> BlockedKey {
    (record.topic.clone(), record.event_key.clone())
}
