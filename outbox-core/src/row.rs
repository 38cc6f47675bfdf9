//! The outbox row: what a writer inserts and the relay turns into a Kafka record.

use uuid::Uuid;

use crate::encode::EventCodec;
use crate::event::Event;
use crate::table::SqlValue;
use crate::{Error, Result, SchemaId};

/// A row to insert into `outbox_events`, every column a writer sets.
///
/// `id`, `created_at` (and on PostgreSQL `txid`) come from database defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxRow {
    /// UUIDv7, unique: the CloudEvents `id` (`ce_id`) consumers deduplicate on.
    pub event_id: Uuid,
    /// The Kafka topic.
    pub topic: String,
    /// The Kafka key (the aggregate id), UTF-8.
    pub event_key: Option<Vec<u8>>,
    /// The Avro full name of the event (`ce_type`).
    pub event_type: String,
    /// The registered schema id the payload was encoded with.
    pub schema_id: Option<SchemaId>,
    /// The record's `content-type`.
    pub content_type: String,
    /// The Kafka record value, exactly as it will be produced.
    pub payload: Vec<u8>,
    /// Headers sent after the CloudEvents ones, in order (`traceparent` among them when set).
    pub headers: Vec<(String, String)>,
}

impl NewOutboxRow {
    /// Validates and encodes `event` with `codec` into a row with a fresh UUIDv7. With the
    /// `opentelemetry` feature, the current trace context is added as a `traceparent` header
    /// (unless the event sets one).
    ///
    /// # Errors
    ///
    /// Those of [`EventCodec::encode`], and [`Error::PayloadTooLarge`] when key, value and
    /// headers together exceed the codec's limit; nothing is produced for an invalid event.
    pub fn from_event<E: Event>(codec: &EventCodec, event: &E) -> Result<Self> {
        let payload = codec.encode(event)?;
        let mut headers = event.headers();
        if let Some(traceparent) = crate::trace::current_traceparent()
            && !headers
                .iter()
                .any(|(name, _)| name == crate::trace::TRACEPARENT)
        {
            headers.push((crate::trace::TRACEPARENT.to_owned(), traceparent));
        }
        let row = Self {
            event_id: Uuid::now_v7(),
            topic: E::TOPIC.to_owned(),
            event_key: event.key().map(String::into_bytes),
            event_type: codec.schema().full_name().unwrap_or_default(),
            schema_id: Some(codec.schema_id()),
            content_type: codec.format().content_type().to_owned(),
            payload,
            headers,
        };
        row.stored_schema_id()?;
        row.check_size(codec.max_bytes())?;
        Ok(row)
    }

    /// The bytes of the record this row becomes, as the size limit counts them: key + value +
    /// stored header names and values.
    pub fn record_size(&self) -> usize {
        self.event_key.as_ref().map_or(0, Vec::len)
            + self.payload.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Refuses a row whose record is larger than `limit` bytes (see [`Self::record_size`]).
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`] with the record's size.
    pub fn check_size(&self, limit: usize) -> Result<()> {
        let size = self.record_size();
        if size > limit {
            return Err(Error::PayloadTooLarge {
                topic: self.topic.clone(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// Adds a header (after those already there).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `event_id` column value: lowercase hyphenated.
    pub fn event_id_text(&self) -> String {
        self.event_id.hyphenated().to_string()
    }

    /// The `schema_id` column value.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaIdOutOfRange`] above `i32::MAX` (such an id used to become `NULL`).
    pub fn stored_schema_id(&self) -> Result<Option<i32>> {
        self.schema_id.map(SchemaId::to_column).transpose()
    }

    /// The parameters of this row in [`insert_events_sql`](crate::table::insert_events_sql),
    /// in [`EVENT_INSERT_COLUMNS`](crate::table::EVENT_INSERT_COLUMNS) order.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaIdOutOfRange`] (see [`Self::stored_schema_id`]).
    pub fn insert_params(&self) -> Result<[SqlValue; 8]> {
        Ok([
            SqlValue::Text(self.event_id_text()),
            SqlValue::Text(self.topic.clone()),
            SqlValue::OptBytes(self.event_key.clone()),
            SqlValue::Text(self.event_type.clone()),
            SqlValue::OptI32(self.stored_schema_id()?),
            SqlValue::Text(self.content_type.clone()),
            SqlValue::Bytes(self.payload.clone()),
            SqlValue::Text(self.headers_json()),
        ])
    }

    /// The `headers` column value: a JSON array of `[name, value]` pairs (order and repeated
    /// names kept, as Kafka headers allow).
    pub fn headers_json(&self) -> String {
        headers_to_json(&self.headers)
    }
}

/// Encodes headers as the `headers` column stores them.
pub fn headers_to_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes the `headers` column.
///
/// # Errors
///
/// [`Error::Decode`] when the text is not a JSON array of `[name, value]` string pairs. The
/// reason never quotes the column (a header value may be a credential: the reason is logged
/// and kept with the dead letter).
pub fn headers_from_json(text: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(text).map_err(|e| Error::Decode {
        reason: format!(
            "headers: not a JSON array of [name, value] string pairs: {}",
            without_values(&e.to_string())
        ),
    })
}

/// A serde message without the value it quotes: serde writes the refused value in quotes or
/// backticks (`invalid type: string "Bearer ..."`, `` integer `42` ``) before `, expected`;
/// the expectation and the position after it name types and places only.
fn without_values(message: &str) -> String {
    let Some(at) = message.find(['`', '"']) else {
        return message.to_owned();
    };
    let head = message[..at].trim_end();
    match message.rsplit_once(", expected") {
        Some((before, rest)) if before.len() >= at => format!("{head}, expected{rest}"),
        _ => format!("{head} (value not shown)"),
    }
}
