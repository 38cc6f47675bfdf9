//! Write-time validation and encoding of events into Kafka record values.

mod binary;
pub mod wire;

use apache_avro::types::Value;
use serde::Serialize;

use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// The default limit on an encoded record: key + value + stored headers (names and values),
/// 1 MiB, Kafka's broker default. The relay configures its producer to accept every record
/// within it, with the CloudEvents headers and the protocol framing on top.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// How a record value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// Confluent wire format: `0x00`, the 4-byte big-endian schema id, the Avro binary datum.
    /// Any Confluent deserializer reads it.
    #[default]
    Avro,
    /// Plain JSON, validated against the same schema, for consumers without a registry.
    Json,
}

impl PayloadFormat {
    /// The `content-type` the relay sends with records of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Avro => "application/avro",
            Self::Json => "application/json",
        }
    }
}

/// Validates and encodes events of one registered schema.
///
/// # Examples
///
/// ```
/// use outbox_core::encode::{EventCodec, wire};
/// use outbox_core::Schema;
///
/// #[derive(serde::Serialize)]
/// struct Placed { order_id: String, total_cents: i64 }
///
/// let schema = Schema::parse_str(r#"{"type":"record","name":"Placed","fields":[
///     {"name":"order_id","type":"string"},{"name":"total_cents","type":"long"}]}"#)?;
/// let codec = EventCodec::new("orders-value", 7, schema);
/// let bytes = codec.encode(&Placed { order_id: "o-1".into(), total_cents: 1250 })?;
/// assert_eq!(wire::split_frame(&bytes)?.0.get(), 7); // Confluent framing carries the schema id
/// # Ok::<(), outbox_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EventCodec {
    subject: String,
    schema_id: SchemaId,
    schema: Schema,
    format: PayloadFormat,
    max_bytes: usize,
}

impl EventCodec {
    /// A codec for the schema registered under `subject` with `schema_id`, encoding Avro in
    /// Confluent framing, with the 1 MiB default size limit.
    pub fn new(subject: impl Into<String>, schema_id: impl Into<SchemaId>, schema: Schema) -> Self {
        Self {
            subject: subject.into(),
            schema_id: schema_id.into(),
            schema,
            format: PayloadFormat::Avro,
            max_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// Chooses the payload format.
    #[must_use]
    pub fn with_format(mut self, format: PayloadFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the largest record accepted (key + value + stored headers), in bytes.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The largest record accepted (key + value + stored headers), in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The subject the schema is registered under.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The registered schema id.
    pub fn schema_id(&self) -> SchemaId {
        self.schema_id
    }

    /// The schema events are checked against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The payload format.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// Validates `event` against the schema and encodes it as a record value.
    ///
    /// # Errors
    ///
    /// - [`Error::Serialize`] when serde cannot turn the event into an Avro value;
    /// - [`Error::SchemaViolation`] naming the field path and the reason when it does not
    ///   conform;
    /// - [`Error::PayloadTooLarge`] when the encoded value exceeds the limit.
    pub fn encode<E: Serialize + ?Sized>(&self, event: &E) -> Result<Vec<u8>> {
        let value = apache_avro::to_value(event).map_err(|e| Error::Serialize {
            reason: e.to_string(),
        })?;
        match self.format {
            PayloadFormat::Avro => self.encode_value(&value),
            PayloadFormat::Json => {
                self.validate_value(&value)?;
                let json = serde_json::to_vec(event).map_err(|e| Error::Serialize {
                    reason: e.to_string(),
                })?;
                self.check_size(json)
            }
        }
    }

    /// Validates an Avro value and encodes it in Confluent framing, whatever the format.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode), without the serde step.
    pub fn encode_value(&self, value: &Value) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        out.push(wire::MAGIC_BYTE);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        binary::encode(self.schema.parsed(), value, &mut out).map_err(|v| self.violation(v))?;
        self.check_size(out)
    }

    /// Checks an Avro value against the schema without keeping the encoding.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaViolation`] naming the path and the reason.
    pub fn validate_value(&self, value: &Value) -> Result<()> {
        binary::encode(self.schema.parsed(), value, &mut Vec::new()).map_err(|v| self.violation(v))
    }

    fn violation(&self, v: binary::Violation) -> Error {
        Error::SchemaViolation {
            subject: self.subject.clone(),
            path: v.path,
            reason: v.reason,
        }
    }

    fn check_size(&self, payload: Vec<u8>) -> Result<Vec<u8>> {
        if payload.len() > self.max_bytes {
            return Err(Error::PayloadTooLarge {
                topic: self
                    .subject
                    .strip_suffix("-value")
                    .unwrap_or(&self.subject)
                    .to_owned(),
                size: payload.len(),
                limit: self.max_bytes,
            });
        }
        Ok(payload)
    }
}
