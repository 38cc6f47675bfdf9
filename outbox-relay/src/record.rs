//! Outbox rows as Kafka records: CloudEvents Kafka binding, binary mode.

use std::time::{Duration, UNIX_EPOCH};

use outbox_core::relay::OutboxRecord;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

/// The CloudEvents spec version sent as `ce_specversion`.
pub const CE_SPECVERSION: &str = "1.0";

/// The headers of a record: `ce_specversion`, `ce_id` (lowercase hyphenated UUID),
/// `ce_source`, `ce_type`, `ce_time` (RFC 3339), `content-type`, then the stored headers.
pub fn headers(record: &OutboxRecord, source: &str) -> OwnedHeaders {
    let created =
        UNIX_EPOCH + Duration::from_millis(u64::try_from(record.created_at_ms).unwrap_or_default());
    let id = record.event_id.hyphenated().to_string();
    let time = humantime::format_rfc3339_millis(created).to_string();
    let mut headers = OwnedHeaders::new_with_capacity(6 + record.headers.len());
    for (key, value) in [
        ("ce_specversion", CE_SPECVERSION),
        ("ce_id", id.as_str()),
        ("ce_source", source),
        ("ce_type", record.event_type.as_str()),
        ("ce_time", time.as_str()),
        ("content-type", record.content_type.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_str()),
        });
    }
    headers
}

/// The Kafka record for a row: topic, key, value (the payload as stored), timestamp
/// (`created_at`), headers.
pub fn to_record<'a>(record: &'a OutboxRecord, source: &str) -> FutureRecord<'a, Vec<u8>, Vec<u8>> {
    let mut out = FutureRecord::to(&record.topic)
        .payload(&record.payload)
        .timestamp(record.created_at_ms)
        .headers(headers(record, source));
    if let Some(key) = &record.event_key {
        out = out.key(key);
    }
    out
}
