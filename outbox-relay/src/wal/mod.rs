//! WAL mode (`source = "wal"`, PostgreSQL): the relay reads the outbox's logical replication
//! slot instead of polling the table, produces each committed event in commit order with the
//! polling relay's record path, and confirms an LSN only past transactions whose every event
//! Kafka acknowledged or the dead-letter table holds.
//!
//! Only one client can stream from a slot: a second relay gets SQLSTATE 55006 and stands by,
//! retrying, until the holder's connection is gone (the slot plays the lease's part).

mod admit;
pub mod command;
mod settle;
mod stream;
mod tls;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::relay::{BlockedKey, FailureStore, OutboxRecord};
use outbox_core::table::TableNames;
use outbox_core::wal::WalNames;
use outbox_core::{Error, Result};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, Producer};
use sqlx::PgPool;
use uuid::Uuid;

use settle::{delivered, delivered_front};
pub use stream::{PgWireStream, WalEvent, WalStream};

use crate::config::{DrainConfig, PoisonPolicy};
use crate::metrics::Metrics;
use crate::producer::KafkaProducer;
use crate::relay::RunSummary;

/// The stream is read while fewer than this many batches (`batch_size` records each) are
/// produced and not settled. Throughput is at most this window over the acknowledgement
/// time, so the window is wide enough for a broker whose acknowledgements take hundreds of
/// milliseconds under a backlog (the test broker's do); the byte cap below still bounds
/// memory.
const IN_FLIGHT_BATCHES: usize = 64;
/// ... and while their payloads, keys and headers stay under this many bytes, so large events
/// bound the relay's memory instead.
const MAX_IN_FLIGHT_BYTES: usize = 32 << 20;

/// How long a standby waits before trying the slot again.
const STANDBY_RETRY: Duration = Duration::from_secs(1);
/// The longest wait after a failing database, broker or stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the slot's lag is read for the metrics and the alarm.
const LAG_REFRESH: Duration = Duration::from_secs(5);

/// Drains an outbox's replication slot to Kafka.
pub struct WalRelay {
    pool: PgPool,
    names: TableNames,
    wal: WalNames,
    database_url: String,
    producer: KafkaProducer,
    settings: DrainConfig,
    max_message_bytes: usize,
    lag_alarm_bytes: i64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for WalRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalRelay")
            .field("slot", &self.wal.slot)
            .finish_non_exhaustive()
    }
}

/// A committed transaction's events, produced, not all settled yet.
struct Txn {
    end_lsn: u64,
    records: Vec<Admitted>,
}

/// An event handed to the producer: its record, the dead letter it delivers (a retry), and
/// its delivery.
type Admitted = (OutboxRecord, Option<i64>, Delivery);

/// One record's delivery: awaited, or its outcome (`Err(None)`: never handed to Kafka).
enum Delivery {
    Waiting(DeliveryFuture),
    Done(std::result::Result<(), Option<KafkaError>>),
}

/// What ended one streaming session.
enum Ended {
    /// Shutdown asked.
    Shutdown,
    /// A record failed: reconnect from the confirmed LSN and produce it (and what follows) again.
    Failed,
}

/// Records handed to the producer and not settled yet.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    records: usize,
    bytes: usize,
}

impl InFlight {
    fn size(record: &OutboxRecord) -> usize {
        record.payload.len()
            + record.event_key.as_ref().map_or(0, Vec::len)
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    fn add(&mut self, record: &OutboxRecord) {
        self.records += 1;
        self.bytes += Self::size(record);
    }

    /// Settled: no longer in flight.
    pub(super) fn remove(&mut self, record: &OutboxRecord) {
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(Self::size(record));
    }

    /// Whether the stream may be read: under both caps.
    fn under(&self, records: usize) -> bool {
        self.records < records && self.bytes < MAX_IN_FLIGHT_BYTES
    }
}

/// State kept across streaming sessions.
#[derive(Default)]
struct Memory {
    /// Failed attempts per event (a failing event is produced again after a reconnect).
    attempts: HashMap<Uuid, u32>,
    /// Keys with a dead letter (block policy): their later events are dead-lettered too.
    blocked: HashMap<BlockedKey, i64>,
    /// Retried dead letters produced in this session, not acknowledged yet: still listed,
    /// but no longer holding their key back.
    retries_in_flight: HashSet<i64>,
}

impl WalRelay {
    /// A WAL relay for the outbox `names` on `pool`, streaming with the credentials of
    /// `database_url`, producing with `producer`.
    pub fn new(
        pool: PgPool,
        names: TableNames,
        database_url: String,
        producer: KafkaProducer,
        settings: DrainConfig,
    ) -> Self {
        Self {
            wal: WalNames::new(&names),
            pool,
            names,
            database_url,
            producer,
            settings,
            max_message_bytes: crate::producer::DEFAULT_MESSAGE_MAX_BYTES,
            lag_alarm_bytes: i64::MAX,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// A record above `bytes` is dead-lettered before it is produced.
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Logs a warning and sets `outbox_relay_wal_slot_lag_alarm` while the slot holds back
    /// more than `bytes` of WAL.
    #[must_use]
    pub fn with_lag_alarm_bytes(mut self, bytes: u64) -> Self {
        self.lag_alarm_bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self
    }

    /// Shares these metrics (for the HTTP endpoint).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The producer it hands records to.
    pub fn producer(&self) -> &KafkaProducer {
        &self.producer
    }

    /// Streams until `shutdown` completes, then settles what is in flight (up to the shutdown
    /// timeout), confirms it and returns. A standby (the slot is in use) retries every second.
    ///
    /// # Errors
    ///
    /// [`Error::WalSlot`] when the recorded slot is gone, lost or on another cluster: never
    /// worked around, since events may be missing. Other failures are retried with backoff.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RunSummary> {
        let mut shutdown = pin!(shutdown);
        let mut summary = RunSummary::default();
        let mut memory = Memory::default();
        let _lag = self.watch_lag();
        let mut backoff = self.settings.poll_interval.max(Duration::from_millis(50));
        loop {
            let wait = match self.session(&mut shutdown, &mut summary, &mut memory).await {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::Failed) => self.settings.retry_backoff,
                Err(Error::WalSlotInUse { slot }) => {
                    tracing::debug!(slot, "the slot is in use by another relay: standing by");
                    self.metrics.leader.set(0);
                    self.metrics.progress();
                    STANDBY_RETRY
                }
                Err(e @ Error::WalSlot { .. }) => return Err(e),
                Err(e) => {
                    self.metrics.set_ready(false);
                    tracing::warn!(error = %e, retry_in = ?backoff, "wal relay failed");
                    let this = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    this
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.metrics.leader.set(0);
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
        Ok(summary)
    }

    /// One connection to the slot: stream, produce, settle, confirm.
    async fn session(
        &self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        summary: &mut RunSummary,
        memory: &mut Memory,
    ) -> Result<Ended> {
        outbox_sqlx::postgres::check_wal_slot(&self.pool, &self.names).await?;
        let mut stream = PgWireStream::connect(&self.database_url, &self.wal).await?;
        // The stream starts again from the confirmed LSN: nothing is in flight.
        memory.retries_in_flight.clear();
        if self.settings.poison_policy == PoisonPolicy::Block {
            let store = outbox_sqlx::postgres::PgRelayStore::new(
                self.pool.clone(),
                Arc::new(outbox_core::table::Statements::new(
                    outbox_core::table::Dialect::Postgres,
                    &self.names,
                )),
            );
            memory.blocked = store.blocked_keys().await?.into_iter().collect();
        }
        tracing::info!(slot = self.wal.slot, "streaming from the replication slot");
        self.metrics.leader.set(1);
        self.metrics.set_ready(true);
        self.drain(&mut stream, shutdown, summary, memory).await
    }

    /// Reads the stream, produces each committed event, and confirms settled transactions.
    async fn drain(
        &self,
        stream: &mut impl WalStream,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        summary: &mut RunSummary,
        memory: &mut Memory,
    ) -> Result<Ended> {
        let mut pending: VecDeque<Txn> = VecDeque::new();
        let mut open: Option<Vec<Admitted>> = None;
        let mut in_flight = InFlight::default();
        let cap = self.settings.batch_size.max(1) * IN_FLIGHT_BATCHES;
        loop {
            self.metrics.heartbeat();
            tokio::select! {
                biased;
                () = &mut *shutdown => {
                    let deadline = Instant::now() + self.settings.shutdown_timeout;
                    while let Some(front) = pending.front_mut() {
                        if tokio::time::timeout_at(deadline.into(), delivered(front)).await.is_err() {
                            break;
                        }
                        if !self.settle(&mut pending, stream, summary, memory, &mut in_flight).await? {
                            return Ok(Ended::Failed);
                        }
                    }
                    // Let the last confirmation reach the server before the connection closes.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Ok(Ended::Shutdown);
                }
                () = delivered_front(&mut pending), if !pending.is_empty() => {
                    if !self.settle(&mut pending, stream, summary, memory, &mut in_flight).await? {
                        return Ok(Ended::Failed);
                    }
                }
                // Inside a transaction the stream is read to its commit whatever is in
                // flight: its records settle only as a whole, so stopping before the commit
                // would wait for ever (memory is then bounded by the writer's transaction).
                event = stream.next(), if in_flight.under(cap) || open.is_some() => {
                    let Some(event) = event? else {
                        return Err(Error::Store {
                            operation: "wal stream",
                            retryable: true,
                            source: "the server ended the replication stream".into(),
                        });
                    };
                    self.metrics.progress();
                    match event {
                        WalEvent::Begin { .. } => open = Some(Vec::new()),
                        WalEvent::Message { lsn, prefix, content } => {
                            if prefix != self.wal.message_prefix {
                                continue;
                            }
                            let id = i64::try_from(lsn).unwrap_or(i64::MAX);
                            let item = self.admit(id, &content, memory, summary).await?;
                            if let Some(item) = item {
                                in_flight.add(&item.0);
                                open.get_or_insert_with(Vec::new).push(item);
                            }
                        }
                        WalEvent::Commit { end_lsn } => {
                            let records = open.take().unwrap_or_default();
                            if records.is_empty() && pending.is_empty() {
                                stream.confirm(end_lsn);
                            } else {
                                pending.push_back(Txn { end_lsn, records });
                            }
                        }
                        WalEvent::KeepAlive { wal_end } => {
                            if pending.is_empty() && open.is_none() {
                                stream.confirm(wal_end);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads the slot's lag into the metrics and raises the alarm every [`LAG_REFRESH`], in
    /// a task of its own until the guard is dropped: the read joins `pg_stat_replication`
    /// and can take a tenth of a second while the slot is busy, which the stream must not
    /// wait for.
    fn watch_lag(&self) -> LagWatch {
        let (pool, names) = (self.pool.clone(), self.names.clone());
        let (metrics, alarm_bytes) = (Arc::clone(&self.metrics), self.lag_alarm_bytes);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(LAG_REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                read_lag(&pool, &names, &metrics, alarm_bytes).await;
            }
        });
        LagWatch(task.abort_handle())
    }
}

/// Stops the lag task when the relay stops.
struct LagWatch(tokio::task::AbortHandle);

impl Drop for LagWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One read of the slot's lag into `metrics`, warning while it is above `alarm_bytes`.
async fn read_lag(pool: &PgPool, names: &TableNames, metrics: &Metrics, alarm_bytes: i64) {
    match outbox_sqlx::postgres::wal_slot_status(pool, names).await {
        Ok(Some(status)) => {
            metrics.wal_slot_lag_bytes.set(status.lag_bytes);
            let alarm = status.lag_bytes > alarm_bytes;
            metrics.wal_slot_lag_alarm.set(i64::from(alarm));
            if alarm {
                tracing::warn!(
                    slot = status.slot,
                    lag_bytes = status.lag_bytes,
                    alarm_bytes,
                    "the replication slot holds back more WAL than the alarm allows"
                );
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the slot's lag"),
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
