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
