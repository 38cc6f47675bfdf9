//! Prometheus metrics and the health state the HTTP endpoint serves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder,
};

/// The relay's metrics, all prefixed `outbox_relay_`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records Kafka acknowledged (and rows deleted).
    pub published: IntCounter,
    /// Records that failed to be delivered (transient or permanent).
    pub failed: IntCounter,
    /// Rows moved to the dead-letter table.
    pub dead_lettered: IntCounter,
    /// Rows waiting in the outbox (refreshed every few seconds; above
    /// [`outbox_core::relay::BACKLOG_EXACT_UP_TO`] estimated from the id range).
    pub backlog: IntGauge,
    /// Age of the row at the head of the outbox (the next to publish), in seconds.
    pub lag_seconds: Gauge,
    /// Rows in the dead-letter table.
    pub dead_letters: IntGauge,
    /// 1 while this instance holds the lease.
    pub leader: IntGauge,
    /// Claim-to-acknowledge time of a batch.
    pub batch_seconds: Histogram,
    /// Row creation to Kafka acknowledgement.
    pub end_to_end_seconds: Histogram,
    /// Fatal producer errors after which the producer was rebuilt.
    pub producer_rebuilds: IntCounter,
    /// WAL mode: bytes of WAL the relay's slot holds back (written since its confirmed LSN).
    pub wal_slot_lag_bytes: IntGauge,
    /// WAL mode: 1 while the slot's lag is above the configured alarm.
    pub wal_slot_lag_alarm: IntGauge,
    ready: AtomicBool,
    kafka_ready: AtomicBool,
    producer_failed: AtomicBool,
    last_loop_ms: AtomicU64,
    last_progress_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    ///
    /// Never in practice: names are fixed and distinct.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("outbox_relay_{name}"), help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(format!("outbox_relay_{name}"), help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(
                HistogramOpts::new(format!("outbox_relay_{name}"), help).buckets(buckets),
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let lag = Gauge::new(
            "outbox_relay_lag_seconds",
            "Age of the oldest unpublished event",
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag.clone()))
            .expect("unique metric");
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        Self {
            published: counter("published_total", "Records acknowledged by Kafka"),
            failed: counter("failed_total", "Records Kafka did not accept"),
            dead_lettered: counter("dead_lettered_total", "Rows moved to the dead-letter table"),
            backlog: int_gauge(
                "backlog_rows",
                "Rows waiting in the outbox (estimated from the id range above 100000)",
            ),
            lag_seconds: lag,
            dead_letters: int_gauge("dead_letters", "Rows in the dead-letter table"),
            leader: int_gauge("leader", "1 while this instance holds the relay lease"),
            batch_seconds: histogram(
                "batch_duration_seconds",
                "Claim to acknowledgement of a batch",
                latency.clone(),
            ),
            end_to_end_seconds: histogram(
                "end_to_end_latency_seconds",
                "Event creation to Kafka acknowledgement",
                latency,
            ),
            producer_rebuilds: counter(
                "producer_rebuilds_total",
                "Producers rebuilt after a fatal error",
            ),
            wal_slot_lag_bytes: int_gauge(
                "wal_slot_lag_bytes",
                "WAL bytes the replication slot holds back (WAL mode)",
            ),
            wal_slot_lag_alarm: int_gauge(
                "wal_slot_lag_alarm",
                "1 while the slot's lag is above wal.lag_alarm_bytes (WAL mode)",
            ),
            registry,
            ready: AtomicBool::new(false),
            kafka_ready: AtomicBool::new(true),
            producer_failed: AtomicBool::new(false),
            last_loop_ms: AtomicU64::new(now_ms()),
            last_progress_ms: AtomicU64::new(now_ms()),
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Marks whether the last database operations succeeded.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Marks whether Kafka acknowledges records (false while acknowledgements are overdue).
    pub fn set_kafka_ready(&self, ready: bool) {
        self.kafka_ready.store(ready, Ordering::Relaxed);
    }

    /// Marks that the producer failed fatally and could not be rebuilt.
    pub fn set_producer_failed(&self, failed: bool) {
        self.producer_failed.store(failed, Ordering::Relaxed);
    }

    /// Why the relay cannot do its work right now (`/readyz`): the database or Kafka does not
    /// answer.
    pub fn unready(&self) -> Option<&'static str> {
        if !self.ready.load(Ordering::Relaxed) {
            return Some("database unavailable (or not reached yet)");
        }
        if !self.kafka_ready.load(Ordering::Relaxed) {
            return Some("kafka is not acknowledging records");
        }
        None
    }

    /// Whether the relay can do its work (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.unready().is_none()
    }

    /// Records that the drain loop is alive.
    pub fn heartbeat(&self) {
        self.last_loop_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the drain loop last went round (`/healthz` fails when it is stuck).
    pub fn since_heartbeat_ms(&self) -> u64 {
        now_ms().saturating_sub(self.last_loop_ms.load(Ordering::Relaxed))
    }

    /// Records progress: rows published or dead-lettered, nothing to claim, or standing by.
    pub fn progress(&self) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the relay last made progress.
    pub fn since_progress_ms(&self) -> u64 {
        now_ms().saturating_sub(self.last_progress_ms.load(Ordering::Relaxed))
    }

    /// Why the relay needs a restart, if it does (`/healthz`): the loop has not gone round, or
    /// it has made no progress, for `stuck_after` while it is ready (database and broker
    /// answer). An outage makes it unready instead (`/readyz`), since a restart cannot fix it.
    pub fn unhealthy(&self, stuck_after: std::time::Duration) -> Option<&'static str> {
        let limit = u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX);
        if self.producer_failed.load(Ordering::Relaxed) {
            return Some("producer failed fatally");
        }
        if self.since_heartbeat_ms() > limit {
            return Some("drain loop stuck");
        }
        if self.is_ready() && self.since_progress_ms() > limit {
            return Some("no progress while rows wait");
        }
        None
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
