//! Outbox rows as Kafka records: CloudEvents Kafka binding, binary mode; captured rows'
//! JSON images encoded to Avro ([`CaptureEncoder`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use outbox_core::capture::{CAPTURE_CONTENT_TYPE, encode_image};
use outbox_core::encode::PayloadFormat;
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::relay::OutboxRecord;
use outbox_core::{Error, Result, Schema, SchemaId};
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

/// Where the relay finds the schema a captured row names by id: the registry
/// (`outbox_core::registry::Registry` implements it), object-safe so the relay need not be
/// generic over the schema store.
pub trait SchemaSource: Send + Sync + 'static {
    /// The schema registered with `id`.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::SchemaNotFound`] for an unknown id; store errors.
    fn schema(&self, id: SchemaId) -> Pin<Box<dyn Future<Output = Result<Schema>> + Send + '_>>;
}

impl<S: SchemaStore + 'static> SchemaSource for Registry<S> {
    fn schema(&self, id: SchemaId) -> Pin<Box<dyn Future<Output = Result<Schema>> + Send + '_>> {
        Box::pin(self.schema_by_id(id))
    }
}

/// Schemas kept by id; the ids a relay meets are few (one per captured table version).
const MAX_CACHED_SCHEMAS: usize = 1024;

/// Turns captured rows (a trigger's JSON image, [`CAPTURE_CONTENT_TYPE`]) into the
/// Confluent-framed Avro of their registered schema, as `publish` writes it.
pub struct CaptureEncoder {
    source: Arc<dyn SchemaSource>,
    cache: Mutex<HashMap<SchemaId, Schema>>,
}

impl std::fmt::Debug for CaptureEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureEncoder").finish_non_exhaustive()
    }
}

impl CaptureEncoder {
    /// An encoder reading schemas from `source`.
    pub fn new(source: impl SchemaSource) -> Self {
        Self {
            source: Arc::new(source),
            cache: Mutex::default(),
        }
    }

    /// Encodes `record` in place when it is a captured row (its payload becomes Avro, its
    /// content type `application/avro`); other rows are left alone. `Ok(Some(reason))` is a
    /// row that can never become a record (no schema id, an unknown one, a value that does
    /// not fit, naming the field): the caller dead-letters it.
    ///
    /// # Errors
    ///
    /// A store error reading the schema (retryable: the batch is tried again).
    pub async fn encode(&self, record: &mut OutboxRecord) -> Result<Option<String>> {
        if record.content_type != CAPTURE_CONTENT_TYPE {
            return Ok(None);
        }
        let Some(id) = record.schema_id else {
            return Ok(Some(
                "schema_id: a captured row needs its schema id".to_owned(),
            ));
        };
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        let schema = match cached {
            Some(schema) => schema,
            None => match self.source.schema(id).await {
                Ok(schema) => {
                    let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                    if cache.len() >= MAX_CACHED_SCHEMAS {
                        cache.clear();
                    }
                    cache.insert(id, schema.clone());
                    schema
                }
                Err(Error::SchemaNotFound { .. }) => {
                    return Ok(Some(format!("schema_id: no schema with id {id}")));
                }
                Err(e) => return Err(e),
            },
        };
        // The key as compact JSON with sorted names, so a key's bytes (and partition) are
        // the same whichever database's JSON functions wrote it.
        let key = match record
            .event_key
            .as_deref()
            .map(serde_json::from_slice::<serde_json::Value>)
        {
            Some(Ok(key)) => Some(key.to_string().into_bytes()),
            Some(Err(e)) => {
                return Ok(Some(format!(
                    "event_key: a captured row's key is not JSON: {e}"
                )));
            }
            None => None,
        };
        let subject = format!("{}-value", record.topic);
        match encode_image(&schema, id, &subject, &record.payload) {
            Ok(avro) => {
                record.event_key = key;
                record.payload = avro;
                record.content_type = PayloadFormat::Avro.content_type().to_owned();
                Ok(None)
            }
            Err(e) => Ok(Some(format!(
                "payload: captured row does not fit schema {id}: {e}"
            ))),
        }
    }
}
