//! The drain loop: hold the lease, claim a batch, produce all of it, await the
//! acknowledgements, delete what Kafka acknowledged, set aside what fails for good.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outbox_core::Result;
use outbox_core::relay::{BlockedKey, OutboxRecord, RelayStore};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};

use crate::config::{DrainConfig, PoisonPolicy};
use crate::metrics::Metrics;
use crate::record::to_record;

/// How often the dead-letter keys are re-read (an operator may retry or discard meanwhile).
const BLOCKED_KEYS_REFRESH: Duration = Duration::from_secs(2);
/// How often backlog, lag and dead-letter gauges are refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// The shortest wait between polls after a batch that was not full.
const MIN_POLL: Duration = Duration::from_millis(1);
/// The longest wait after a failing database or broker.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);

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
    producer: FutureProducer,
    settings: DrainConfig,
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
    blocked: HashSet<BlockedKey>,
    blocked_read_at: Option<Instant>,
    status_read_at: Option<Instant>,
    /// The last id produced: the next claim starts after it.
    cursor: i64,
    /// A batch produced but not yet acknowledged; it is finished after the next batch is
    /// claimed and sent, so the database and Kafka work at the same time.
    pending: Option<Batch>,
}

/// A claimed batch whose records were handed to the producer.
struct Batch {
    records: Vec<OutboxRecord>,
    in_flight: Vec<(usize, rdkafka::producer::DeliveryFuture)>,
    failures: Vec<(usize, KafkaError)>,
    started: Instant,
    dead_lettered: usize,
}

/// What finishing a batch did.
#[derive(Default)]
struct Finished {
    published: usize,
    dead_lettered: usize,
    /// Rows that stay in the outbox (transient failures): the cursor must go back for them.
    left_behind: bool,
}

fn key_of(record: &OutboxRecord) -> BlockedKey {
    (record.topic.clone(), record.event_key.clone())
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
            producer,
            settings,
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
            let result = tokio::select! {
                biased;
                result = &mut step => result,
                () = &mut shutdown => {
                    tracing::info!("shutting down: finishing the batch in flight");
                    let finished = tokio::time::timeout(self.settings.shutdown_timeout, step).await;
                    if let Ok(Ok(Step::Drained { published, dead_lettered, .. })) = finished {
                        summary.published += published as u64;
                        summary.dead_lettered += dead_lettered as u64;
                    } else {
                        tracing::warn!("batch not acknowledged before the shutdown timeout; it will be produced again");
                    }
                    break;
                }
            };
            wait = match result {
                Ok(Step::StandingBy) => (self.settings.lease_ttl / 4).min(Duration::from_secs(1)),
                Ok(Step::Drained {
                    claimed,
                    published,
                    dead_lettered,
                }) => {
                    summary.published += published as u64;
                    summary.dead_lettered += dead_lettered as u64;
                    backoff = self.settings.poll_interval;
                    if claimed >= self.settings.batch_size {
                        Duration::ZERO
                    } else if claimed > 0 {
                        MIN_POLL
                    } else {
                        (wait * 2).clamp(MIN_POLL, self.settings.poll_interval)
                    }
                }
                Err(e) => {
                    self.metrics.set_ready(false);
                    tracing::warn!(error = %e, retry_in = ?backoff, "relay step failed");
                    let this = backoff;
                    backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                    this
                }
            };
        }
        if let Err(e) = self
            .store
            .release_lease(&self.settings.lease_name, &self.instance)
            .await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
        self.metrics.leader.set(0);
        let _ = self.producer.flush(Duration::from_secs(1));
        Ok(summary)
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
        let granted = self
            .store
            .try_acquire_lease(&self.settings.lease_name, &self.instance, ttl)
            .await?;
        state.lease_until = granted.map(|_| asked + ttl);
        if granted.is_some() && self.metrics.leader.get() == 0 {
            tracing::info!(instance = %self.instance, "holding the relay lease");
        }
        self.metrics.leader.set(i64::from(granted.is_some()));
        Ok(granted.is_some())
    }

    async fn refresh(&self, state: &mut State) -> Result<()> {
        let stale = |at: Option<Instant>, every| at.is_none_or(|t| t.elapsed() > every);
        if self.settings.poison_policy == PoisonPolicy::Block
            && stale(state.blocked_read_at, BLOCKED_KEYS_REFRESH)
        {
            state.blocked = self.store.blocked_keys().await?.into_iter().collect();
            state.blocked_read_at = Some(Instant::now());
        }
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

    /// One round: lease, claim, produce, acknowledge.
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
        if !self.hold_lease(state).await? {
            // Records already produced are finished; nothing new is claimed.
            let done = match state.pending.take() {
                Some(batch) => self.finish(batch, state).await?,
                None => Finished::default(),
            };
            return Ok(if done.published + done.dead_lettered > 0 {
                Step::Drained {
                    claimed: 0,
                    published: done.published,
                    dead_lettered: done.dead_lettered,
                }
            } else {
                Step::StandingBy
            });
        }
        self.refresh(state).await?;
        let records = self
            .store
            .claim_after(state.cursor, self.settings.batch_size)
            .await?;
        self.metrics.set_ready(true);
        let claimed = records.len();
        // A lease about to run out must not be used to produce: another instance may start.
        if claimed > 0
            && state
                .lease_until
                .is_none_or(|until| until < Instant::now() + self.settings.lease_ttl / 3)
            && !self.hold_lease(state).await?
        {
            return Ok(Step::StandingBy);
        }
        let current = if claimed > 0 {
            Some(self.send(records, state).await?)
        } else {
            None
        };
        let previous = match current {
            Some(batch) => state.pending.replace(batch),
            None => state.pending.take(),
        };
        let mut done = match previous {
            Some(batch) => self.finish(batch, state).await?,
            None => Finished::default(),
        };
        if claimed < self.settings.batch_size {
            // Caught up: finish this batch now rather than holding it for the next poll, and
            // look from the start next time (a late commit may sit below the cursor).
            if let Some(batch) = state.pending.take() {
                let more = self.finish(batch, state).await?;
                done.published += more.published;
                done.dead_lettered += more.dead_lettered;
                done.left_behind |= more.left_behind;
            }
            state.cursor = 0;
        }
        if done.left_behind {
            state.cursor = 0;
        }
        Ok(Step::Drained {
            claimed,
            published: done.published,
            dead_lettered: done.dead_lettered,
        })
    }

    /// Hands a claimed batch to the producer: parks rows of blocked keys, holds back a key
    /// whose earlier record failed to enqueue, and advances the cursor.
    async fn send(&self, records: Vec<OutboxRecord>, state: &mut State) -> Result<Batch> {
        let started = Instant::now();
        let mut held: HashSet<BlockedKey> = HashSet::new();
        let mut in_flight = Vec::with_capacity(records.len());
        let mut failures = Vec::new();
        let mut dead_lettered = 0;
        let mut blocked_fresh = false;
        for (i, record) in records.iter().enumerate() {
            let key = key_of(record);
            if state.blocked.contains(&key) && !blocked_fresh {
                // Never park on a stale view: an operator may just have retried the key.
                state.blocked = self.store.blocked_keys().await?.into_iter().collect();
                state.blocked_read_at = Some(Instant::now());
                blocked_fresh = true;
            }
            if state.blocked.contains(&key) {
                let reason =
                    "held back: an earlier event with this key is in the dead-letter table";
                self.store.dead_letter(record, 0, reason).await?;
                self.metrics.dead_lettered.inc();
                dead_lettered += 1;
                continue;
            }
            if held.contains(&key) {
                continue;
            }
            match self.enqueue(record).await {
                Ok(delivery) => in_flight.push((i, delivery)),
                Err(e) => {
                    held.insert(key);
                    failures.push((i, e));
                }
            }
        }
        if let Some(last) = records.last() {
            state.cursor = last.id;
        }
        if !held.is_empty() {
            // Held rows stay in the outbox: look for them again.
            state.cursor = 0;
        }
        Ok(Batch {
            records,
            in_flight,
            failures,
            started,
            dead_lettered,
        })
    }

    /// Awaits a batch's acknowledgements, deletes what Kafka acknowledged in one statement,
    /// counts permanent failures and dead-letters what reached `max_attempts`.
    async fn finish(&self, batch: Batch, state: &mut State) -> Result<Finished> {
        let Batch {
            records,
            in_flight,
            mut failures,
            started,
            dead_lettered,
        } = batch;
        let mut done = Finished {
            dead_lettered,
            ..Finished::default()
        };
        let mut acked = Vec::with_capacity(in_flight.len());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for (i, delivery) in in_flight {
            match delivery.await {
                Ok(Ok(_)) => {
                    acked.push(records[i].id);
                    let age = u64::try_from(now_ms - records[i].created_at_ms).unwrap_or_default();
                    self.metrics.end_to_end_seconds.observe(age as f64 / 1000.0);
                }
                Ok(Err((e, _))) => failures.push((i, e)),
                Err(_canceled) => failures.push((i, KafkaError::Canceled)),
            }
        }
        if !acked.is_empty() {
            self.store.ack(&acked).await?;
            self.metrics.published.inc_by(acked.len() as u64);
        }
        done.published = acked.len();
        for (i, error) in failures {
            let record = &records[i];
            self.metrics.failed.inc();
            if !is_permanent(&error) {
                tracing::warn!(id = record.id, %error, "transient delivery failure; the row stays and is produced again");
                done.left_behind = true;
                continue;
            }
            let message = error.to_string();
            let attempts = self.store.record_failure(record.event_id, &message).await?;
            tracing::warn!(id = record.id, attempts, %error, "permanent delivery failure");
            if attempts >= self.settings.max_attempts {
                self.store.dead_letter(record, attempts, &message).await?;
                self.metrics.dead_lettered.inc();
                done.dead_lettered += 1;
                tracing::error!(id = record.id, event_id = %record.event_id, %error, "event dead-lettered");
                if self.settings.poison_policy == PoisonPolicy::Block {
                    state.blocked.insert(key_of(record));
                }
            } else {
                done.left_behind = true;
            }
        }
        self.metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(done)
    }

    /// Enqueues one record, waiting while the producer's queue is full.
    async fn enqueue(
        &self,
        record: &OutboxRecord,
    ) -> std::result::Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut kafka_record = to_record(record, &self.settings.source);
        loop {
            match self.producer.send_result(kafka_record) {
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
