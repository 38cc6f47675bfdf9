//! The runner's settings.

use std::time::Duration;

use outbox_core::PoisonPolicy;
use outbox_core::table::MAX_INBOX_ID_BYTES;

use crate::{Error, Result};

/// How an [`Inbox`](crate::Inbox) consumes. Build with [`InboxSettings::new`], then change the
/// fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InboxSettings {
    /// The Kafka consumer group, also the inbox's `consumer_group` column.
    pub group: String,
    /// The topics to consume.
    pub topics: Vec<String>,
    /// Attempts of a failing handler before the record is dead-lettered (default 5).
    pub max_attempts: u32,
    /// The first wait between attempts; doubled each time up to [`Self::max_backoff`]
    /// (default 100 ms).
    pub backoff: Duration,
    /// The longest wait between attempts (default 5 s).
    pub max_backoff: Duration,
    /// What happens to later records of a key after one was dead-lettered (default block,
    /// as the relay's).
    pub poison_policy: PoisonPolicy,
    /// Inbox rows older than this are deleted (default 7 days). It must exceed the window in
    /// which the relay can publish a duplicate of an event (see the crate docs).
    pub retention: Duration,
    /// How often retention runs (default 1 hour).
    pub retention_interval: Duration,
    /// The largest value decoded; larger ones are dead-lettered (default 1 MiB, Kafka's
    /// default `message.max.bytes`).
    pub max_value_bytes: usize,
    /// How often processed offsets are committed to Kafka (default 500 ms). Offsets are
    /// committed only for records whose database transaction committed.
    pub commit_interval: Duration,
    /// Records queued per partition before the partition is paused (default 256).
    pub queue_per_partition: usize,
    /// How long a revoke waits for a partition's record in flight (default 30 s).
    pub revoke_timeout: Duration,
}

impl InboxSettings {
    /// Settings for `group` consuming `topics`, every other field at its default.
    pub fn new(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            poison_policy: PoisonPolicy::Block,
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_interval: Duration::from_secs(3600),
            max_value_bytes: 1024 * 1024,
            commit_interval: Duration::from_millis(500),
            queue_per_partition: 256,
            revoke_timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |key, reason: &str| {
            Err(Error::InvalidConfig {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.group.is_empty() || self.group.len() > MAX_INBOX_ID_BYTES {
            return invalid("group", "must be 1 to 255 bytes");
        }
        if self.topics.is_empty() {
            return invalid("topics", "at least one topic is needed");
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.queue_per_partition == 0 {
            return invalid("queue_per_partition", "must be at least 1");
        }
        if self.retention.is_zero() || self.retention_interval.is_zero() {
            return invalid("retention", "retention and its interval must be positive");
        }
        Ok(())
    }
}
