//! Outbox rows as Kafka records: CloudEvents Kafka binding, binary mode.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use outbox_core::relay::OutboxRecord;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

/// The CloudEvents spec version sent as `ce_specversion`.
pub const CE_SPECVERSION: &str = "1.0";

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_CHARS: usize = 249;

/// librdkafka's framing of one record beyond its key, value and headers (length, attributes,
/// timestamp and offset deltas, key and value lengths, header count, each a varint at its
/// widest): what it adds before comparing with `message.max.bytes`.
const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// The widest framing of one header (key and value lengths, varints).
const HEADER_OVERHEAD: usize = 10;

/// Why Kafka would refuse `topic` as a topic name, if it would.
pub fn topic_problem(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some("topic: empty".to_owned());
    }
    if topic == "." || topic == ".." {
        return Some(format!("topic: {topic:?} is not a valid Kafka topic name"));
    }
    if topic.len() > MAX_TOPIC_CHARS {
        return Some(format!(
            "topic: {} characters, Kafka allows at most {MAX_TOPIC_CHARS}",
            topic.chars().count()
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic: {c:?} is not allowed in a Kafka topic name (letters, digits, '.', '_', '-')"
        ));
    }
    None
}

/// The size librdkafka gives the record for a row when it checks `message.max.bytes`: key,
/// value, every header (CloudEvents ones included) and the record framing, at its widest.
pub fn wire_size(record: &OutboxRecord, source: &str) -> usize {
    // ce_specversion, ce_id, ce_source, ce_type, ce_time, content-type.
    let cloud_events = [
        "ce_specversion".len() + CE_SPECVERSION.len(),
        "ce_id".len() + 36,
        "ce_source".len() + source.len(),
        "ce_type".len() + record.event_type.len(),
        "ce_time".len() + "2026-01-01T00:00:00.000Z".len(),
        "content-type".len() + record.content_type.len(),
    ];
    let headers: usize = cloud_events
        .iter()
        .map(|len| len + HEADER_OVERHEAD)
        .chain(
            record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + HEADER_OVERHEAD),
        )
        .sum();
    RECORD_OVERHEAD + record.event_key.as_ref().map_or(0, Vec::len) + record.payload.len() + headers
}

/// Why a well-formed row still cannot become a record the producer accepts (a topic Kafka
/// refuses, a record above `max_message_bytes`), if it cannot. Such a row is dead-lettered at
/// once: retrying cannot change the answer.
pub fn unproducible(
    record: &OutboxRecord,
    source: &str,
    max_message_bytes: usize,
) -> Option<String> {
    if let Some(problem) = topic_problem(&record.topic) {
        return Some(problem);
    }
    let size = wire_size(record, source);
    (size > max_message_bytes).then(|| {
        format!(
            "record of {size} bytes (key + value + headers, framed) exceeds the producer's \
             message.max.bytes of {max_message_bytes}"
        )
    })
}

/// The headers of a record: `ce_specversion`, `ce_id` (lowercase hyphenated UUID),
/// `ce_source`, `ce_type`, `ce_time` (RFC 3339), `content-type`, then the stored headers.
pub fn headers(record: &OutboxRecord, source: &str) -> OwnedHeaders {
    let created =
        UNIX_EPOCH + Duration::from_millis(u64::try_from(record.created_at_ms).unwrap_or_default());
    let id = record.event_id.hyphenated().to_string();
    // RFC 3339 ends with year 9999; the stores refuse later rows, and this never panics.
    let mut time = String::new();
    if write!(time, "{}", humantime::format_rfc3339_millis(created)).is_err() {
        time.clear();
    }
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
