//! The drain loop: hold the lease, claim a batch, produce all of it, await the
//! acknowledgements, delete what Kafka acknowledged, set aside what fails for good.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outbox_core::relay::{BlockedKey, ClaimedRow, Fence, OutboxRecord, RelayStore};
use outbox_core::{Error, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};

use crate::config::{DrainConfig, KafkaConfig, PoisonPolicy};
use crate::metrics::Metrics;
use crate::record::{to_record, unproducible};

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
    /// The last id claimed: the next claim starts after it.
    cursor: i64,
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
fn block(state: &mut State, key: BlockedKey, id: i64) {
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
    /// timeout) for the batch in flight to be acknowledged, releases the lease and returns.
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

    /// The current producer.
    fn producer(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces a producer that failed fatally (librdkafka refuses every record after that):
    /// the rows it did not acknowledge stay in the outbox and are produced again by the new
    /// one.
    async fn replace_dead_producer(&self) {
        let current = self.producer();
        let Some((code, reason)) = current.client().fatal_error() else {
            return;
        };
        let Some(kafka) = &self.kafka else {
            tracing::error!(?code, %reason, "the producer failed fatally; restart the relay");
            self.metrics.set_producer_failed(true);
            return;
        };
        match crate::producer::producer(kafka) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "the producer failed fatally; built a new one, unacknowledged rows are produced again");
                let old = std::mem::replace(
                    &mut *self
                        .producer
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    fresh,
                );
                self.metrics.producer_rebuilds.inc();
                self.metrics.set_producer_failed(false);
                // Dropping a producer purges and flushes it, which blocks.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "the producer failed fatally and a new one could not be built");
                self.metrics.set_producer_failed(true);
            }
        }
    }

    /// Holds (acquires or renews) the lease; false when another instance has it.
    async fn hold_lease(&self, state: &mut State) -> Result<bool> {
        let ttl = self.settings.lease_ttl;
        let now = Instant::now();
        if let Some(until) = state.lease_until
            && until > now + ttl * 2 / 3
        {
            return Ok(true);
        }
        let asked = Instant::now();
        let held = match (state.lease_until, state.token) {
            (Some(_), Some(token)) => {
                let renewed = self
                    .store
                    .renew_lease(&self.settings.lease_name, &self.instance, token, ttl)
                    .await?;
                if !renewed {
                    self.lease_lost(state);
                }
                renewed
            }
            _ if state.retake_after.is_some_and(|t| t > now) => false,
            _ => match self
                .store
                .try_acquire_lease(&self.settings.lease_name, &self.instance, ttl)
                .await?
            {
                Some(token) => {
                    tracing::info!(instance = %self.instance, generation = token, "holding the relay lease");
                    state.token = Some(token);
                    true
                }
                None => false,
            },
        };
        state.lease_until = held.then_some(asked + ttl);
        self.metrics.leader.set(i64::from(held));
        Ok(held)
    }

    /// Stops at once after the lease was taken over: nothing more is claimed or produced,
    /// and the lease is not tried again for a lease period (a live twin with the same
    /// identity keeps it that long).
    fn lease_lost(&self, state: &mut State) {
        if state.lease_until.is_some() {
            tracing::error!(
                instance = %self.instance,
                "the relay lease was taken over (by another relay, or one using the same instance_id); stopping"
            );
        }
        state.lease_until = None;
        state.retake_after = Some(Instant::now() + self.settings.lease_ttl);
        state.cursor = 0;
        self.metrics.leader.set(0);
    }

    /// The lease generation writes are made under.
    fn fence(&self, state: &State) -> Option<Fence> {
        state.token.map(|token| Fence {
            lease: self.settings.lease_name.clone(),
            holder: self.instance.clone(),
            token,
        })
    }

    async fn refresh(&self, state: &mut State) -> Result<()> {
        let stale = |at: Option<Instant>, every| at.is_none_or(|t| t.elapsed() > every);
        // A retried dead letter is back below the cursor: claim from the start so it goes
        // out ahead of its key's later events.
        if self.settings.poison_policy == PoisonPolicy::Block
            && stale(state.blocked_read_at, BLOCKED_KEYS_REFRESH)
            && self.reload_blocked(state).await?
        {
            state.cursor = 0;
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
        if state.cursor == 0 {
            // Claiming from the start would claim the rows in flight again: finish them first.
            done.add(self.finish_pending(state).await?);
        }
        let rows = self
            .store
            .claim_rows_after(state.cursor, self.settings.batch_size)
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
            state.cursor = 0;
        }
        if done.left_behind {
            state.cursor = 0;
        }
        Ok(Step::Drained {
            claimed,
            published: done.published,
            dead_lettered: done.dead_lettered,
            held_back: done.held_back,
        })
    }

    /// Moves a row that cannot be produced to the dead-letter table at once (retrying cannot
    /// help) and, under the block policy, blocks its key.
    async fn dead_letter_now(
        &self,
        id: i64,
        key: Option<BlockedKey>,
        reason: &str,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<()> {
        let moved = self
            .move_to_dead_letters(id, 0, reason, state, done)
            .await?;
        if moved {
            tracing::error!(
                id,
                reason,
                "row cannot become a Kafka record; dead-lettered"
            );
        }
        if self.settings.poison_policy == PoisonPolicy::Block
            && let Some(key) = key
        {
            if moved {
                block(state, key, id);
            } else {
                done.held.insert(key);
            }
        }
        Ok(())
    }

    /// Moves a row to the dead-letter table; false when it cannot be, because a dead letter
    /// with the same `event_id` exists (a writer reused an id): the row then stays in the
    /// outbox, reported, and the others go on.
    async fn move_to_dead_letters(
        &self,
        id: i64,
        attempts: u32,
        reason: &str,
        state: &State,
        done: &mut Finished,
    ) -> Result<bool> {
        match self
            .store
            .dead_letter(id, attempts, reason, self.fence(state).as_ref())
            .await
        {
            Ok(()) => {
                self.metrics.dead_lettered.inc();
                done.dead_lettered += 1;
                Ok(true)
            }
            Err(Error::Conflict { what }) => {
                tracing::error!(id, %what, reason, "cannot dead-letter the row: a dead letter has its event_id; it stays in the outbox");
                done.left_behind = true;
                done.held_back += 1;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Hands a claimed batch to the producer: dead-letters rows that cannot become records,
    /// parks rows of blocked keys, holds back keys whose earlier event failed (in the previous
    /// batch, or at enqueue in this one), and advances the cursor.
    async fn send(
        &self,
        rows: Vec<ClaimedRow>,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<Batch> {
        let started = Instant::now();
        let mut records = Vec::with_capacity(rows.len());
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut failures = Vec::new();
        let mut blocked_fresh = false;
        if let Some(last) = rows.last() {
            state.cursor = last.id();
        }
        for row in rows {
            let record = match row {
                ClaimedRow::Record(record) => record,
                ClaimedRow::Malformed(bad) => {
                    if let Some(key) = &bad.key
                        && self
                            .is_blocked(key, bad.id, state, &mut blocked_fresh, done)
                            .await?
                    {
                        self.park(bad.id, state, done).await?;
                        continue;
                    }
                    self.dead_letter_now(bad.id, bad.key, &bad.reason, state, done)
                        .await?;
                    continue;
                }
            };
            let key = key_of(&record);
            if self
                .is_blocked(&key, record.id, state, &mut blocked_fresh, done)
                .await?
            {
                self.park(record.id, state, done).await?;
                continue;
            }
            if done.held.contains(&key)
                || state
                    .retry_after
                    .get(&key)
                    .is_some_and(|t| *t > Instant::now())
            {
                // Stays in the outbox, behind its key's failed event.
                done.left_behind = true;
                done.held_back += 1;
                continue;
            }
            if let Some(reason) =
                unproducible(&record, &self.settings.source, self.max_message_bytes)
            {
                self.dead_letter_now(record.id, Some(key), &reason, state, done)
                    .await?;
                continue;
            }
            match self.enqueue(&record).await {
                Ok(delivery) => {
                    in_flight.push((records.len(), delivery));
                    records.push(record);
                }
                Err(e) if is_too_large(&e) => {
                    let reason = format!("refused by the producer: {e}");
                    self.dead_letter_now(record.id, Some(key), &reason, state, done)
                        .await?;
                }
                Err(e) => {
                    done.held.insert(key);
                    done.left_behind = true;
                    failures.push((records.len(), e));
                    records.push(record);
                }
            }
        }
        Ok(Batch {
            records,
            in_flight,
            failures,
            started,
        })
    }

    /// Whether the row `id` of `key` comes after a dead letter of its key. A key seen blocked
    /// is re-read once per batch, since an operator may just have retried it; a key found
    /// retried is held back for this batch, so the next claim (from the start) produces the
    /// retried rows first.
    async fn is_blocked(
        &self,
        key: &BlockedKey,
        id: i64,
        state: &mut State,
        fresh: &mut bool,
        done: &mut Finished,
    ) -> Result<bool> {
        let after_dead = |state: &State| state.blocked.get(key).is_some_and(|dead| *dead < id);
        if self.settings.poison_policy != PoisonPolicy::Block || !after_dead(state) {
            return Ok(false);
        }
        if !*fresh {
            let before = state.blocked.clone();
            if self.reload_blocked(state).await? {
                for (key, dead) in before {
                    if state.blocked.get(&key) != Some(&dead) {
                        done.held.insert(key);
                    }
                }
                done.left_behind = true;
            }
            *fresh = true;
        }
        Ok(after_dead(state))
    }

    /// Re-reads the dead letters' keys; true when a key lost a dead letter (it was retried or
    /// discarded), so rows below the cursor may be waiting.
    async fn reload_blocked(&self, state: &mut State) -> Result<bool> {
        let fresh: HashMap<BlockedKey, i64> =
            self.store.blocked_keys().await?.into_iter().collect();
        let released = state
            .blocked
            .iter()
            .any(|(key, dead)| fresh.get(key).is_none_or(|now| now > dead));
        state.blocked = fresh;
        state.blocked_read_at = Some(Instant::now());
        Ok(released)
    }

    /// Parks a row of a blocked key in the dead-letter table, behind its key's dead letter.
    async fn park(&self, id: i64, state: &State, done: &mut Finished) -> Result<()> {
        let reason = "held back: an earlier event with this key is in the dead-letter table";
        self.move_to_dead_letters(id, 0, reason, state, done)
            .await
            .map(drop)
    }

    /// Awaits every acknowledgement of a batch.
    ///
    /// While acknowledgements are overdue the loop still beats (waiting on Kafka is not a
    /// stuck loop) and, after a few seconds, Kafka is marked unready: an outage shows on
    /// `/readyz`, not `/healthz`.
    async fn deliveries(&self, batch: Batch, state: &mut State) -> Delivered {
        let Batch {
            records,
            in_flight,
            mut failures,
            started,
        } = batch;
        let mut acked = Vec::with_capacity(in_flight.len());
        let mut last_ack = Instant::now();
        let mut lost = false;
        for (i, mut delivery) in in_flight {
            if lost {
                // Not awaited: the rows stay for the new holder, which produces them again.
                failures.push((i, KafkaError::Canceled));
                continue;
            }
            let result = loop {
                match tokio::time::timeout(ACK_WAIT_BEAT, &mut delivery).await {
                    Ok(result) => break Some(result),
                    Err(_) => {
                        self.metrics.heartbeat();
                        if last_ack.elapsed() > KAFKA_UNREADY_AFTER {
                            self.metrics.set_kafka_ready(false);
                        }
                        // Keep the lease while waiting; stop at once if it was taken over.
                        if matches!(self.hold_lease(state).await, Ok(false)) {
                            break None;
                        }
                    }
                }
            };
            let Some(result) = result else {
                lost = true;
                failures.push((i, KafkaError::Canceled));
                continue;
            };
            last_ack = Instant::now();
            self.metrics.set_kafka_ready(true);
            match result {
                Ok(Ok(_)) => acked.push(i),
                Ok(Err((e, _))) => failures.push((i, e)),
                Err(_canceled) => failures.push((i, KafkaError::Canceled)),
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        Delivered {
            records,
            acked,
            failures,
            started,
        }
    }

    /// Counts a delivered batch's failures: transient ones stay for the next claim, permanent
    /// ones back off and are dead-lettered after `max_attempts`. Every failed key is held back
    /// from the next batch.
    async fn settle_failures(
        &self,
        delivered: &Delivered,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<()> {
        for (i, error) in &delivered.failures {
            let record = &delivered.records[*i];
            let key = key_of(record);
            self.metrics.failed.inc();
            done.held.insert(key.clone());
            if !is_permanent(error) {
                tracing::warn!(id = record.id, %error, "transient delivery failure; the row stays and is produced again");
                done.left_behind = true;
                continue;
            }
            let message = error.to_string();
            let attempts = self.store.record_failure(record.event_id, &message).await?;
            tracing::warn!(id = record.id, attempts, %error, "permanent delivery failure");
            if attempts >= self.settings.max_attempts {
                state.retry_after.remove(&key);
                if self
                    .move_to_dead_letters(record.id, attempts, &message, state, done)
                    .await?
                {
                    tracing::error!(id = record.id, event_id = %record.event_id, %error, "event dead-lettered");
                    if self.settings.poison_policy == PoisonPolicy::Block {
                        block(state, key, record.id);
                    }
                }
            } else {
                // Back off before the next attempt: a permanent error does not clear in
                // milliseconds (an operator has to act).
                let exponent = attempts.saturating_sub(1).min(16);
                let wait = self
                    .settings
                    .retry_backoff
                    .saturating_mul(1 << exponent)
                    .min(MAX_RETRY_BACKOFF);
                state.retry_after.insert(key, Instant::now() + wait);
                done.left_behind = true;
            }
        }
        Ok(())
    }

    /// Deletes what Kafka acknowledged, in one statement.
    async fn acknowledge(
        &self,
        delivered: &Delivered,
        state: &State,
        done: &mut Finished,
    ) -> Result<()> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let ids: Vec<i64> = delivered
            .acked
            .iter()
            .map(|&i| delivered.records[i].id)
            .collect();
        if !ids.is_empty() {
            self.store.ack(&ids, self.fence(state).as_ref()).await?;
            self.metrics.published.inc_by(ids.len() as u64);
            for &i in &delivered.acked {
                let age =
                    u64::try_from(now_ms - delivered.records[i].created_at_ms).unwrap_or_default();
                self.metrics.end_to_end_seconds.observe(age as f64 / 1000.0);
            }
        }
        done.published += ids.len();
        self.metrics
            .batch_seconds
            .observe(delivered.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Finishes the batch in flight, if any: awaits, settles, acknowledges.
    async fn finish_pending(&self, state: &mut State) -> Result<Finished> {
        let mut done = Finished::default();
        if let Some(batch) = state.pending.take() {
            let delivered = self.deliveries(batch, state).await;
            self.settle_failures(&delivered, state, &mut done).await?;
            self.acknowledge(&delivered, state, &mut done).await?;
        }
        Ok(done)
    }

    /// Enqueues one record, waiting while the producer's queue is full.
    async fn enqueue(
        &self,
        record: &OutboxRecord,
    ) -> std::result::Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut kafka_record = to_record(record, &self.settings.source);
        let producer = self.producer();
        loop {
            match producer.send_result(kafka_record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    kafka_record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
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
