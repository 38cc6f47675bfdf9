//! The runner's Prometheus metrics.

use prometheus::{IntCounter, IntGauge, Registry};

/// The inbox runner's metrics, all prefixed `outbox_inbox_`; serve [`Self::registry`] with
/// the application's other metrics.
#[derive(Debug)]
pub struct InboxMetrics {
    registry: Registry,
    /// Events whose effect committed.
    pub processed: IntCounter,
    /// Events skipped because their `ce_id` was already recorded.
    pub duplicates: IntCounter,
    /// Records set aside in the inbox dead letters.
    pub dead_lettered: IntCounter,
    /// Failed handler attempts (each retry counts).
    pub handler_failures: IntCounter,
    /// Records not yet processed on the assigned partitions (high watermark minus the next
    /// offset to commit), refreshed every commit interval.
    pub lag: IntGauge,
}

impl InboxMetrics {
    /// Creates and registers every metric in a registry of its own.
    ///
    /// # Panics
    ///
    /// Never in practice: the names are constant and valid.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("outbox_inbox_{name}"), help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let processed = counter("processed_total", "events whose effect committed");
        let duplicates = counter("duplicates_skipped_total", "events skipped as duplicates");
        let dead_lettered = counter(
            "dead_lettered_total",
            "records set aside in the inbox dead letters",
        );
        let handler_failures = counter("handler_failures_total", "failed handler attempts");
        let lag = IntGauge::new(
            "outbox_inbox_lag_records",
            "records not yet processed on assigned partitions",
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag.clone()))
            .expect("unique metric");
        Self {
            registry,
            processed,
            duplicates,
            dead_lettered,
            handler_failures,
            lag,
        }
    }

    /// The registry holding these metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for InboxMetrics {
    fn default() -> Self {
        Self::new()
    }
}
