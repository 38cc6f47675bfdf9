//! An event type a writer registers: the Rust type, its topic and schema.

use std::any::TypeId;
use std::fmt;

use crate::Result;
use crate::event::Event;
use crate::schema::Schema;

/// An event type a writer publishes: its topic and schema, captured from the Rust type.
#[derive(Clone, Copy)]
pub struct EventType {
    pub(super) type_id: TypeId,
    pub(super) type_name: &'static str,
    pub(super) topic: &'static str,
    pub(super) schema: fn() -> Result<Schema>,
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventType")
            .field("type", &self.type_name)
            .field("topic", &self.topic)
            .finish()
    }
}

impl EventType {
    /// The event type `E`.
    pub fn of<E: Event + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<E>(),
            type_name: std::any::type_name::<E>(),
            topic: E::TOPIC,
            schema: E::schema,
        }
    }

    /// The topic its events go to.
    pub fn topic(&self) -> &'static str {
        self.topic
    }
}
