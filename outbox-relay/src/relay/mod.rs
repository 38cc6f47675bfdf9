//! The drain loop: hold the lease, claim a batch, produce all of it, await the
//! acknowledgements, delete what Kafka acknowledged, set aside what fails for good.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::relay::{BlockedKey, OutboxRecord, RelayStore};
use outbox_core::{Error, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};

use crate::config::{DrainConfig, KafkaConfig, PoisonPolicy};
use crate::metrics::Metrics;

mod ack;
mod lease;
mod poison;
mod produce;
mod rebuild;

/// How often the dead-letter keys are re-read (an operator may retry or discard meanwhile).
const BLOCKED_KEYS_REFRESH: Duration = Duration::from_secs(2);
/// How often backlog, lag and dead-letter gauges are refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// The shortest wait between polls after a batch that was not full.
const MIN_POLL: Duration = Duration::from_millis(1);
/// The longest wait after a failing database or broker.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// Acknowledgements overdue this long mark Kafka unready (`/readyz`).
const KAFKA_UNREADY_AFTER: Duration = Duration::from_secs(5);
/// How often the loop beats while it waits for acknowledgements.
const ACK_WAIT_BEAT: Duration = Duration::from_secs(1);
/// The longest wait between two attempts of a permanently failing event.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// What one step of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Another instance holds the lease.
    StandingBy,
    /// A batch was handled.
    Drained {
        /// Rows claimed.
        claimed: usize,
        /// Records Kafka acknowledged (rows deleted).
        published: usize,
        /// Rows moved to the dead-letter table.
        dead_lettered: usize,
        /// Claimed rows left in the outbox behind an earlier failed event of their key.
        held_back: usize,
    },
}

/// Totals of a run, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records published.
    pub published: u64,
    /// Rows dead-lettered.
    pub dead_lettered: u64,
}

/// Drains an outbox to Kafka.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(store: outbox_sqlx::postgres::PgRelayStore) -> outbox_core::Result<()> {
/// use outbox_relay::{config::RelayConfig, producer::producer, Relay};
///
/// let config = RelayConfig::load(None, Default::default())?;
/// let relay = Relay::new(store, producer(&config.kafka)?, config.relay.clone(), config.instance_id());
/// relay.run(async { tokio::signal::ctrl_c().await.ok(); }).await?; // until Ctrl-C
/// # Ok(()) }
/// ```
pub struct Relay<S> {
    store: S,
    /// Replaced when librdkafka reports a fatal error (see [`Relay::with_producer_config`]).
    producer: std::sync::RwLock<FutureProducer>,
    kafka: Option<KafkaConfig>,
    settings: DrainConfig,
    max_message_bytes: usize,
    instance: String,
    metrics: Arc<Metrics>,
    wakeup: Option<Arc<tokio::sync::Notify>>,
    once: tokio::sync::Mutex<State>,
}

impl<S> std::fmt::Debug for Relay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("instance", &self.instance)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    lease_until: Option<Instant>,
    /// The lease generation last granted: every write is fenced with it.
    token: Option<i64>,
    /// After a take-over, when to try for the lease again.
    retake_after: Option<Instant>,
    /// Keys with a dead letter, and the smallest dead id of each: later events wait.
    blocked: HashMap<BlockedKey, i64>,
    blocked_read_at: Option<Instant>,
    status_read_at: Option<Instant>,
    /// Keys whose event failed permanently but may still succeed: not produced before then.
    retry_after: HashMap<BlockedKey, Instant>,
    /// The last id claimed: the next claim starts after it. `None` claims from the start,
    /// below every id (a plain-SQL writer may insert ids of 0 or less).
    cursor: Option<i64>,
    /// The batch produced but not yet acknowledged; it is finished during the next step,
    /// after that step's claim, so the database and Kafka work at the same time.
    pending: Option<Batch>,
}

/// A claimed batch whose records were handed to the producer.
struct Batch {
    records: Vec<OutboxRecord>,
    in_flight: Vec<(usize, rdkafka::producer::DeliveryFuture)>,
    failures: Vec<(usize, KafkaError)>,
    started: Instant,
}

/// A batch whose acknowledgements all arrived (or failed).
struct Delivered {
    records: Vec<OutboxRecord>,
    acked: Vec<usize>,
    failures: Vec<(usize, KafkaError)>,
    started: Instant,
}

/// What a step did.
#[derive(Default)]
struct Finished {
    published: usize,
    dead_lettered: usize,
    /// Rows that stay in the outbox (failures, held keys): the cursor must go back for them.
    left_behind: bool,
    /// Keys with a failed event: their later events wait for it.
    held: HashSet<BlockedKey>,
    /// Rows left in the outbox behind a failed event of their key.
    held_back: usize,
}

impl Finished {
    fn add(&mut self, other: Self) {
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
fn block(state: &mut State, key: BlockedKey, id: i64) {
    if key.1.is_none() {
        return;
    }
    let dead = state.blocked.entry(key).or_insert(id);
    *dead = (*dead).min(id);
}

fn key_of(record: &OutboxRecord) -> BlockedKey {
    (record.topic.clone(), record.event_key.clone())
}

/// The producer's own refusal of a record's size: the same record is always refused.
fn is_too_large(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize)
    )
}

/// Errors that retrying the same record cannot fix.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::UnknownPartition
                | C::InvalidRecord
                | C::PolicyViolation
                | C::InvalidRequiredAcks
        )
    )
}

impl<S: RelayStore> Relay<S> {
    /// A relay over `store`, producing with `producer` (see [`crate::producer`]).
    pub fn new(
        store: S,
        producer: FutureProducer,
        settings: DrainConfig,
        instance: String,
    ) -> Self {
        Self {
            store,
            producer: std::sync::RwLock::new(producer),
            kafka: None,
            settings,
            max_message_bytes: crate::producer::DEFAULT_MESSAGE_MAX_BYTES,
            instance,
            metrics: Arc::new(Metrics::new()),
            wakeup: None,
            once: tokio::sync::Mutex::default(),
        }
    }

    /// Wakes the loop early when `wakeup` is notified (for example by a PostgreSQL
    /// LISTEN/NOTIFY listener); polling goes on as a fallback.
    #[must_use]
    pub fn with_wakeup(mut self, wakeup: Arc<tokio::sync::Notify>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// The producer's `message.max.bytes` (see [`crate::producer::max_message_bytes`]): a
    /// record above it is dead-lettered before it is produced. Default:
    /// [`crate::producer::DEFAULT_MESSAGE_MAX_BYTES`].
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The Kafka settings the producer was built from: sets the size limit (see
    /// [`Relay::with_max_message_bytes`]) and lets the relay build a new producer when
    /// librdkafka reports a fatal error (an idempotence sequence failure), instead of
    /// spinning on the dead one. Without it, a fatal error fails `/healthz`.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] for a malformed `message.max.bytes`.
    pub fn with_producer_config(mut self, kafka: KafkaConfig) -> Result<Self> {
        self.max_message_bytes = crate::producer::max_message_bytes(&kafka)?;
        self.kafka = Some(kafka);
        Ok(self)
    }

    /// Shares these metrics (for the HTTP endpoint).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Drains until `shutdown` completes, then stops claiming, waits (up to the shutdown
    /// timeout) for both batches in flight (the one being acknowledged and the pipelined one)
    /// to be acknowledged, releases the lease and returns.
    ///
    /// Failures of the database or the broker are logged and retried with backoff; the loop
    /// never exits on them.
    ///
    /// # Errors
    ///
    /// None today; reserved for unrecoverable configuration errors.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RunSummary> {
        let mut shutdown = pin!(shutdown);
        let mut state = State::default();
        let mut summary = RunSummary::default();
        let mut wait = Duration::ZERO;
        let mut backoff = self.settings.poll_interval;
        let mut stop_by = None;
        loop {
            let woken = async {
                match &self.wakeup {
                    Some(wakeup) => wakeup.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
            }
            self.metrics.heartbeat();
            let mut step = pin!(self.step(&mut state));
            tokio::select! {
                biased;
                result = &mut step => {
                    wait = self.next_wait(result, wait, &mut backoff, &mut summary);
                }
                () = &mut shutdown => {
                    tracing::info!("shutting down: finishing the batches in flight");
                    let deadline = Instant::now() + self.settings.shutdown_timeout;
                    stop_by = Some(deadline);
                    match tokio::time::timeout_at(deadline.into(), step).await {
                        Ok(result) => {
                            self.next_wait(result, wait, &mut backoff, &mut summary);
                        }
                        Err(_) => tracing::warn!(
                            "batch not acknowledged before the shutdown timeout; it will be produced again"
                        ),
                    }
                    break;
                }
            }
        }
        // The batch produced last (the pipelined one) is acknowledged too, so a rolling
        // deploy does not produce it again.
        let deadline = stop_by.unwrap_or_else(|| Instant::now() + self.settings.shutdown_timeout);
        self.finish_before(deadline, &mut state, &mut summary).await;
        if let Err(e) = self
            .store
            .release_lease(&self.settings.lease_name, &self.instance)
            .await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
        self.metrics.leader.set(0);
        let producer = self.producer();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
        Ok(summary)
    }

    /// The wait before the next step, given how this one went.
    fn next_wait(
        &self,
        result: Result<Step>,
        wait: Duration,
        backoff: &mut Duration,
        summary: &mut RunSummary,
    ) -> Duration {
        match result {
            Ok(Step::StandingBy) => {
                self.metrics.progress();
                (self.settings.lease_ttl / 4).min(Duration::from_secs(1))
            }
            Ok(Step::Drained {
                claimed,
                published,
                dead_lettered,
                held_back,
            }) => {
                summary.published += published as u64;
                summary.dead_lettered += dead_lettered as u64;
                *backoff = self.settings.poll_interval;
                // Rows all held back wait on purpose (a backoff), which a restart cannot fix.
                if published + dead_lettered > 0 || claimed == 0 || held_back == claimed {
                    self.metrics.progress();
                }
                if claimed >= self.settings.batch_size && held_back < claimed {
                    Duration::ZERO
                } else if claimed > held_back {
                    MIN_POLL
                } else {
                    (wait * 2).clamp(MIN_POLL, self.settings.poll_interval)
                }
            }
            Err(e @ Error::LeaseLost { .. }) => {
                tracing::warn!(error = %e, "a write was fenced off: this relay stands by");
                self.metrics.progress();
                (self.settings.lease_ttl / 4).min(Duration::from_secs(1))
            }
            Err(e) => {
                self.metrics.set_ready(false);
                tracing::warn!(error = %e, retry_in = ?*backoff, "relay step failed");
                let this = *backoff;
                *backoff = (*backoff * 2).min(MAX_ERROR_BACKOFF);
                this
            }
        }
    }

    /// Shutdown: finishes the batch still in flight, up to `deadline`.
    async fn finish_before(&self, deadline: Instant, state: &mut State, summary: &mut RunSummary) {
        if state.pending.is_none() {
            return;
        }
        match tokio::time::timeout_at(deadline.into(), self.finish_pending(state)).await {
            Ok(Ok(done)) => {
                summary.published += done.published as u64;
                summary.dead_lettered += done.dead_lettered as u64;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not finish the last batch; it will be produced again");
            }
            Err(_) => tracing::warn!(
                "batch not acknowledged before the shutdown timeout; it will be produced again"
            ),
        }
    }

    async fn refresh(&self, state: &mut State) -> Result<()> {
        let stale = |at: Option<Instant>, every| at.is_none_or(|t| t.elapsed() > every);
        // A retried dead letter is back below the cursor: claim from the start so it goes
        // out ahead of its key's later events.
        if self.settings.poison_policy == PoisonPolicy::Block
            && stale(state.blocked_read_at, BLOCKED_KEYS_REFRESH)
            && self.reload_blocked(state).await?
        {
            state.cursor = None;
        }
        let now = Instant::now();
        state.retry_after.retain(|_, until| *until > now);
        if stale(state.status_read_at, STATUS_REFRESH) {
            let status = self.store.status(&self.settings.lease_name).await?;
            self.metrics
                .backlog
                .set(i64::try_from(status.backlog).unwrap_or(i64::MAX));
            self.metrics
                .lag_seconds
                .set(status.oldest_age.map_or(0.0, |a| a.as_secs_f64()));
            self.metrics
                .dead_letters
                .set(i64::try_from(status.dead_letters).unwrap_or(i64::MAX));
            state.status_read_at = Some(Instant::now());
        }
        Ok(())
    }

    /// One round: lease, claim the next batch while Kafka acknowledges the previous one, settle
    /// the previous batch's failures, produce the new batch, delete what Kafka acknowledged.
    ///
    /// The previous batch's failures are settled *before* the new batch is produced, so a key
    /// whose event failed or was dead-lettered has none of its later events produced (the block
    /// policy holds for the pipelined batch too); the database work (claim, delete) still runs
    /// while Kafka works.
    ///
    /// # Errors
    ///
    /// Database errors; Kafka errors are handled per record.
    ///
    /// # Cancel safety
    ///
    /// Cancelling after records were produced but before they were acknowledged leaves the
    /// rows in the outbox: they are produced again (duplicates, never loss).
    async fn step(&self, state: &mut State) -> Result<Step> {
        let result = self.step_holding(state).await;
        if let Err(Error::LeaseLost { .. }) = &result {
            self.lease_lost(state);
        }
        result
    }

    /// [`Relay::step`], before a lost lease is dealt with.
    async fn step_holding(&self, state: &mut State) -> Result<Step> {
        if !self.hold_lease(state).await? {
            // Records already produced are finished; nothing new is claimed.
            let done = self.finish_pending(state).await?;
            return Ok(if done.published + done.dead_lettered > 0 {
                Step::Drained {
                    claimed: 0,
                    published: done.published,
                    dead_lettered: done.dead_lettered,
                    held_back: 0,
                }
            } else {
                Step::StandingBy
            });
        }
        self.refresh(state).await?;
        self.replace_dead_producer().await;
        let mut done = Finished::default();
        if state.cursor.is_none() {
            // Claiming from the start would claim the rows in flight again: finish them first.
            done.add(self.finish_pending(state).await?);
        }
        let rows = self
            .store
            .claim_rows_after(state.cursor.unwrap_or(i64::MIN), self.settings.batch_size)
            .await?;
        self.metrics.set_ready(true);
        let claimed = rows.len();
        // A lease about to run out must not be used to produce: another instance may start.
        if claimed > 0
            && state
                .lease_until
                .is_none_or(|until| until < Instant::now() + self.settings.lease_ttl / 3)
            && !self.hold_lease(state).await?
        {
            return Ok(Step::StandingBy);
        }
        let delivered = match state.pending.take() {
            Some(batch) => {
                let delivered = self.deliveries(batch, state).await;
                self.settle_failures(&delivered, state, &mut done).await?;
                Some(delivered)
            }
            None => None,
        };
        if claimed > 0 {
            let batch = self.send(rows, state, &mut done).await?;
            state.pending = Some(batch);
        }
        if let Some(delivered) = delivered {
            self.acknowledge(&delivered, state, &mut done).await?;
        }
        if claimed < self.settings.batch_size {
            // Caught up: finish this batch now rather than holding it for the next poll, and
            // look from the start next time (a late commit may sit below the cursor).
            done.add(self.finish_pending(state).await?);
            state.cursor = None;
        }
        if done.left_behind {
            state.cursor = None;
        }
        Ok(Step::Drained {
            claimed,
            published: done.published,
            dead_lettered: done.dead_lettered,
            held_back: done.held_back,
        })
    }

    /// One step outside the loop (tests and tools): lease, claim, produce, acknowledge. Steps
    /// overlap like the loop's (a batch is finished during the next step), and a step that
    /// finds the outbox caught up finishes everything it produced.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn drain_once(&self) -> Result<Step> {
        let mut state = self.once.lock().await;
        self.step(&mut state).await
    }
}

// The run future must be Send so it can be spawned.
#[allow(dead_code)]
fn assert_run_is_send<S: RelayStore + 'static>(relay: &Relay<S>) -> impl Send + '_ {
    relay.run(std::future::pending())
}
