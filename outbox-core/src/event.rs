//! The event model: what application code publishes.

use apache_avro::AvroSchema;
use serde::Serialize;

use crate::Result;
use crate::schema::Schema;

/// A domain event that can be published through the outbox.
///
/// Derive `Serialize` and `AvroSchema` (from [`outbox_core::avro`](crate::avro), so the
/// versions match), name the topic, and say which aggregate the event belongs to: its id is the
/// Kafka key, so all events of one aggregate land in one partition, in order.
///
/// # Examples
///
/// ```
/// use outbox_core::avro::AvroSchema;
/// use outbox_core::Event;
///
/// #[derive(serde::Serialize, AvroSchema)]
/// #[avro(namespace = "com.acme.orders", doc = "An order was placed")]
/// struct OrderPlaced {
///     order_id: String,
///     total_cents: i64,
/// }
///
/// impl Event for OrderPlaced {
///     const TOPIC: &'static str = "orders";
///     fn key(&self) -> Option<String> {
///         Some(self.order_id.clone())
///     }
/// }
///
/// let schema = OrderPlaced::schema()?;
/// assert_eq!(schema.full_name().as_deref(), Some("com.acme.orders.OrderPlaced"));
/// # Ok::<(), outbox_core::Error>(())
/// ```
pub trait Event: Serialize + AvroSchema {
    /// The Kafka topic the event goes to.
    const TOPIC: &'static str;

    /// The aggregate id, used as the Kafka key; `None` for unkeyed events (no per-key order).
    fn key(&self) -> Option<String> {
        None
    }

    /// Extra headers sent with the record (after the CloudEvents ones).
    fn headers(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The event's Avro schema, converted from the derived one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`](crate::Error::InvalidSchema) if the derived schema is one
    /// Java's rules refuse.
    fn schema() -> Result<Schema> {
        Schema::from_avro(&<Self as AvroSchema>::get_schema())
    }
}
