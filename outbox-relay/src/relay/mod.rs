//! The drain loop: hold the lease, read a batch, produce all of it, await the
//! acknowledgements, delete what Kafka acknowledged, set aside what fails for good.
//!
//! The engine is store-agnostic: it runs over any store with the capabilities it uses
//! ([`RelayStore`], [`FailureStore`], [`LeaseStore`], and [`AdminStore`] for the status
//! gauges).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::relay::{AdminStore, FailureStore, LeaseStore, RelayStore};
use outbox_core::{Error, Result};
use rdkafka::producer::Producer;

use crate::config::{DrainConfig, KafkaConfig, PoisonPolicy};
use crate::metrics::Metrics;
use crate::producer::KafkaProducer;
use state::{Batch, Delivered, Finished, State, block, key_of};

pub use builder::RelayBuilder;
pub use kafka_error::is_permanent;
use kafka_error::is_too_large;
pub use latency::LATENCY_TARGET;

mod ack;
mod builder;
mod kafka_error;
pub(crate) mod latency;
mod lease;
mod pace;
mod poison;
mod produce;
mod rebuild;
mod state;

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
        /// Rows read.
        read: usize,
        /// Records Kafka acknowledged (rows deleted).
        published: usize,
        /// Rows moved to the dead-letter table.
        dead_lettered: usize,
        /// Rows read but left in the outbox behind an earlier failed event of their key.
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
/// # async fn demo(store: outbox_core::relay::MemoryRelayStore) -> outbox_core::Result<()> {
/// use outbox_relay::{config::RelayConfig, producer::producer, Relay};
///
/// let config = RelayConfig::load(None, Default::default())?;
/// let relay = Relay::builder(store, producer(&config.kafka)?)
///     .with_settings(config.relay.clone())
///     .with_instance(config.instance_id())
///     .build();
/// relay.run(async { tokio::signal::ctrl_c().await.ok(); }).await?; // until Ctrl-C
/// # Ok(()) }
/// ```
pub struct Relay<S> {
    store: S,
    /// Replaced when librdkafka reports a fatal error (see [`RelayBuilder::with_producer_config`]).
    producer: std::sync::RwLock<KafkaProducer>,
    kafka: Option<KafkaConfig>,
    settings: DrainConfig,
    max_message_bytes: usize,
    instance: String,
    metrics: Arc<Metrics>,
    wakeup: Option<Arc<tokio::sync::Notify>>,
    capture: Option<crate::record::CaptureEncoder>,
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

impl<S> Relay<S> {
    /// A relay over `store`, producing with `producer` (see [`crate::producer`]): set the
    /// rest on the [`RelayBuilder`], then [`build`](RelayBuilder::build) it.
    pub fn builder(store: S, producer: KafkaProducer) -> RelayBuilder<S> {
        RelayBuilder::new(store, producer)
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S> Relay<S>
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore,
{
    /// Drains until `shutdown` completes, then stops reading, waits (up to the shutdown
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
        // Whether a notification may cut the next wait short: only an idle leader's (see
        // `woken`).
        let mut wakeable = false;
        let mut backoff = self.settings.poll_interval;
        let mut stop_by = None;
        loop {
            let woken = async {
                match &self.wakeup {
                    // A notification cuts an idle leader's wait short. Under load (the
                    // pause after a partial batch) the relay paces itself as polling does:
                    // with a notification per commit, waking on each would turn every commit
                    // into a read of its own. A standby's wait and an error backoff are not
                    // cut short either: a busy outbox would otherwise make every standby
                    // try the lease, or a failing relay retry, once per commit.
                    Some(wakeup) if wakeable && wait > MIN_POLL => wakeup.notified().await,
                    _ => std::future::pending().await,
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
                    wakeable = matches!(result, Ok(Step::Drained { .. }));
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
        // A retried dead letter is back below the cursor: read from the start so it goes
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

    /// One round: lease, read the next batch while Kafka acknowledges the previous one, settle
    /// the previous batch's failures, produce the new batch, delete what Kafka acknowledged.
    ///
    /// The previous batch's failures are settled *before* the new batch is produced, so a key
    /// whose event failed or was dead-lettered has none of its later events produced (the block
    /// policy holds for the pipelined batch too); the database work (read, delete) still runs
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
        match &result {
            Err(Error::LeaseLost { .. }) => self.lease_lost(state),
            // A step that failed part way may have left rows of its batch unproduced behind
            // the cursor (the database lost while `send` dead-letters a row stops it there):
            // read from the start again, so no later event of their keys goes out first.
            Err(_) => state.cursor = None,
            Ok(_) => {}
        }
        result
    }

    /// [`Relay::step`], before a lost lease is dealt with.
    async fn step_holding(&self, state: &mut State) -> Result<Step> {
        if !self.hold_lease(state).await? {
            // Records already produced are finished; nothing new is read.
            let done = self.finish_pending(state).await?;
            return Ok(if done.published + done.dead_lettered > 0 {
                Step::Drained {
                    read: 0,
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
            // Reading from the start would read the rows in flight again: finish them first.
            done.add(self.finish_pending(state).await?);
        }
        let rows = self
            .store
            .read_after(state.cursor.unwrap_or(i64::MIN), self.settings.batch_size)
            .await?;
        self.metrics.set_ready(true);
        let read = rows.len();
        // A lease about to run out must not be used to produce: another instance may start.
        if read > 0
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
        // The previous batch is deleted while this one is handed to the producer: the
        // database works on the delete while this task builds and enqueues records (`send`
        // yields now and then so the delete's round trips go on). Both run to the end; an
        // error of either is returned after that (rows not deleted are produced again).
        let fence = self.fence(state);
        let mut acknowledged = Finished::default();
        let acknowledge = async {
            match &delivered {
                Some(delivered) => {
                    self.acknowledge(delivered, fence.as_ref(), &mut acknowledged)
                        .await
                }
                None => Ok(()),
            }
        };
        let send = async {
            if read > 0 {
                state.pending = Some(self.send(rows, state, &mut done).await?);
            }
            Ok::<_, Error>(())
        };
        let (acked, sent) = tokio::join!(acknowledge, send);
        done.add(acknowledged);
        sent?;
        acked?;
        if read < self.settings.batch_size {
            // Caught up: finish this batch now rather than holding it for the next poll, and
            // look from the start next time (a late commit may sit below the cursor).
            done.add(self.finish_pending(state).await?);
            state.cursor = None;
        }
        if done.left_behind {
            state.cursor = None;
        }
        Ok(Step::Drained {
            read,
            published: done.published,
            dead_lettered: done.dead_lettered,
            held_back: done.held_back,
        })
    }

    /// One step outside the loop (tests and tools): lease, read, produce, acknowledge. Steps
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
fn assert_run_is_send<S>(relay: &Relay<S>) -> impl Send + '_
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore + 'static,
{
    relay.run(std::future::pending())
}
