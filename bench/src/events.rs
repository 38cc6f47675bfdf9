//! The events the benchmarks publish.

use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use serde::Serialize;

#[derive(Serialize, AvroSchema, Clone)]
#[avro(namespace = "bench")]
pub(crate) struct Payload {
    pub(crate) key: String,
    pub(crate) seq: i64,
    pub(crate) blob: String,
}

impl Event for Payload {
    const TOPIC: &'static str = "bench";
    fn key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

#[derive(Serialize, AvroSchema, Clone)]
#[avro(namespace = "bench")]
pub(crate) struct TenFields {
    pub(crate) order_id: String,
    pub(crate) customer: String,
    pub(crate) total_cents: i64,
    pub(crate) quantity: i32,
    pub(crate) ratio: f64,
    pub(crate) paid: bool,
    pub(crate) coupon: Option<String>,
    pub(crate) lines: Vec<i32>,
    pub(crate) currency: String,
    pub(crate) created_ms: i64,
}

/// The benchmark event under a topic of its own: WAL mode's records go to the topic the
/// event type names (no trigger can reroute a logical message), so each end-to-end run in
/// WAL mode publishes one of these to start from an empty topic.
macro_rules! topic_events {
    ($($name:ident => $topic:literal),* $(,)?) => {$(
        #[derive(Serialize, AvroSchema, Clone)]
        #[avro(namespace = "bench")]
        pub(crate) struct $name {
            key: String,
            seq: i64,
            blob: String,
        }

        impl Event for $name {
            const TOPIC: &'static str = $topic;
            fn key(&self) -> Option<String> {
                Some(self.key.clone())
            }
        }

        impl From<Payload> for $name {
            fn from(p: Payload) -> Self {
                Self { key: p.key, seq: p.seq, blob: p.blob }
            }
        }
    )*};
}

topic_events! {
    WalRun0 => "bench-wal-e2e-0",
    WalRun1 => "bench-wal-e2e-1",
    WalRun2 => "bench-wal-e2e-2",
}

/// How many [`topic_events`] there are: WAL runs beyond it reuse a topic.
pub(crate) const WAL_RUN_TOPICS: usize = 3;
