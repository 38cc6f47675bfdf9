//! Where end-to-end latency goes: each event's stage timestamps inside the relay, from its
//! `outbox_relay::latency` trace events, stamped with this process's clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, filter};

use crate::report::{ms, percentile};

/// The relay's stages, in order (see `outbox_relay::LATENCY_TARGET`).
pub(crate) const STAGES: [&str; 4] = ["claimed", "enqueued", "acked", "deleted"];

/// Each event's first instant at each stage, while recording.
#[derive(Default)]
pub(crate) struct Stamps {
    recording: AtomicBool,
    seen: Mutex<HashMap<uuid::Uuid, [Option<Instant>; 4]>>,
}

impl Stamps {
    /// The process's stamps; the subscriber is installed on first use. The relay's stage
    /// events are enabled only while recording, so other phases pay one cached check.
    pub(crate) fn global() -> Arc<Self> {
        static STAMPS: OnceLock<Arc<Stamps>> = OnceLock::new();
        Arc::clone(STAMPS.get_or_init(|| {
            let stamps = Arc::new(Self::default());
            let on = Arc::clone(&stamps);
            let layer = Recorder(Arc::clone(&stamps)).with_filter(filter::filter_fn(move |m| {
                m.target() == outbox_relay::LATENCY_TARGET && on.recording.load(Ordering::Relaxed)
            }));
            // Another subscriber (none today) would only cost the breakdown.
            let _ =
                tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
            stamps
        }))
    }

    /// Starts recording afresh.
    pub(crate) fn start(&self) {
        self.seen.lock().expect("lock").clear();
        self.recording.store(true, Ordering::Relaxed);
    }

    /// Stops recording and hands over what was stamped.
    pub(crate) fn stop(&self) -> HashMap<uuid::Uuid, [Option<Instant>; 4]> {
        self.recording.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

struct Recorder(Arc<Stamps>);

#[derive(Default)]
struct Fields {
    stage: Option<usize>,
    event_id: Option<uuid::Uuid>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "stage" {
            self.stage = STAGES.iter().position(|s| *s == value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "event_id" {
            self.event_id = uuid::Uuid::parse_str(&format!("{value:?}")).ok();
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let at = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(stage), Some(id)) = (fields.stage, fields.event_id) {
            let mut seen = self.0.seen.lock().expect("lock");
            seen.entry(id).or_default()[stage].get_or_insert(at);
        }
    }
}

/// One event's path: commit, the relay's stages, receipt by the consumer.
pub(crate) struct Path {
    pub(crate) committed: Instant,
    pub(crate) stages: [Option<Instant>; 4],
    pub(crate) received: Instant,
}

/// The intervals reported, `(name, from, to)` as indexes into commit, claimed, enqueued,
/// acked, deleted, received (0..=5).
const INTERVALS: [(&str, usize, usize); 4] = [
    ("commit -> claimed", 0, 1),
    ("claimed -> enqueued", 1, 2),
    ("enqueued -> ack seen", 2, 3),
    ("enqueued -> received", 2, 5),
];

impl Path {
    fn at(&self, i: usize) -> Option<Instant> {
        match i {
            0 => Some(self.committed),
            5 => Some(self.received),
            i => self.stages[i - 1],
        }
    }

    fn interval(&self, from: usize, to: usize) -> Option<Duration> {
        Some(self.at(to)?.saturating_duration_since(self.at(from)?))
    }

    fn total(&self) -> Duration {
        self.received.saturating_duration_since(self.committed)
    }
}

/// Per interval: p50 and p99 over all events, and the mean over the slowest 1% (where the
/// p99 goes). Rows `(interval, "p50 / p99", "mean in slowest 1%")`.
pub(crate) fn breakdown(paths: &[Path]) -> Vec<(String, String, String)> {
    let mut by_total: Vec<&Path> = paths.iter().collect();
    by_total.sort_by_key(|p| p.total());
    let tail = &by_total[by_total.len() - by_total.len().div_ceil(100).min(by_total.len())..];
    INTERVALS
        .iter()
        .map(|&(name, from, to)| {
            let mut all: Vec<Duration> =
                paths.iter().filter_map(|p| p.interval(from, to)).collect();
            let slow: Vec<Duration> = tail.iter().filter_map(|p| p.interval(from, to)).collect();
            let mean =
                slow.iter().sum::<Duration>().as_secs_f64() * 1000.0 / slow.len().max(1) as f64;
            (
                name.to_owned(),
                format!(
                    "{:.1} / {:.1} ms",
                    ms(percentile(&mut all, 0.5)),
                    ms(percentile(&mut all, 0.99))
                ),
                format!("slowest 1%: mean {mean:.1} ms"),
            )
        })
        .collect()
}
