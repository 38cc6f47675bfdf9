//! The consumer side: decode record values with a registry (embedded or remote).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use apache_avro::types::Value;
use serde::de::DeserializeOwned;

use super::{Registry, SchemaStore};
use crate::encode::wire;
use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// Decodes Confluent-framed record values: looks up the writer schema by the id in the frame
/// (once per id), and resolves it against the consumer's own schema when one is given, so a
/// consumer on v1 reads data written with v2.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use outbox_core::encode::EventCodec;
/// use outbox_core::registry::{Decoder, MemorySchemaStore, Registry};
/// use outbox_core::Schema;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Placed { order_id: String }
///
/// let registry = Registry::new(MemorySchemaStore::default());
/// let schema = Schema::parse_str(r#"{"type":"record","name":"Placed","fields":[{"name":"order_id","type":"string"}]}"#)?;
/// let id = registry.register("orders-value", &schema).await?.id;
/// let bytes = EventCodec::new("orders-value", id, schema).encode(&Placed { order_id: "o-1".into() })?;
///
/// let decoder = Decoder::new(registry);
/// let event: Placed = decoder.decode(&bytes).await?;
/// assert_eq!(event, Placed { order_id: "o-1".into() });
/// # Ok::<(), outbox_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Decoder<S> {
    registry: Registry<S>,
    reader: Option<Schema>,
    writers: Mutex<HashMap<SchemaId, Schema>>,
}

impl<S: SchemaStore> Decoder<S> {
    /// A decoder that reads with each record's writer schema.
    pub fn new(registry: Registry<S>) -> Self {
        Self {
            registry,
            reader: None,
            writers: Mutex::default(),
        }
    }

    /// Reads every record with `reader` (the consumer's schema), resolving from the writer's.
    #[must_use]
    pub fn with_reader_schema(mut self, reader: Schema) -> Self {
        self.reader = Some(reader);
        self
    }

    async fn writer(&self, id: SchemaId) -> Result<Schema> {
        if let Some(schema) = self
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(schema.clone());
        }
        let schema = self.registry.schema_by_id(id).await?;
        self.writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, schema.clone());
        Ok(schema)
    }

    /// Decodes a record value into an Avro value.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for a malformed value; [`Error::SchemaNotFound`] for an unknown id.
    pub async fn decode_value(&self, record_value: &[u8]) -> Result<Value> {
        let (id, datum) = wire::split_frame(record_value)?;
        let writer = self.writer(id).await?;
        wire::decode_datum(datum, &writer, self.reader.as_ref())
    }

    /// Decodes a record value into a typed event.
    ///
    /// # Errors
    ///
    /// As [`decode_value`](Self::decode_value), and [`Error::Decode`] when the value does
    /// not fit `T`.
    pub async fn decode<T: DeserializeOwned>(&self, record_value: &[u8]) -> Result<T> {
        let value = self.decode_value(record_value).await?;
        apache_avro::from_value(&value).map_err(|e| Error::Decode {
            reason: e.to_string(),
        })
    }
}
