//! The codecs of the registered event types, and the rows they make.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::encode::EventCodec;
use crate::event::Event;
use crate::registry::SubjectNameStrategy;
use crate::schema::Schema;
use crate::{Error, NewOutboxRow, Result};

use super::{EventType, OutboxOptions};

/// The codecs of the registered event types, and the rows they make.
#[derive(Debug)]
pub struct Codecs {
    options: OutboxOptions,
    by_type: RwLock<HashMap<TypeId, Arc<EventCodec>>>,
}

impl Codecs {
    /// No codecs yet, for these options.
    pub fn new(options: OutboxOptions) -> Self {
        Self {
            options,
            by_type: RwLock::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &OutboxOptions {
        &self.options
    }

    /// The subject and schema `ty` registers under.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] for a schema Java's rules refuse; [`Error::InvalidConfig`] when
    /// a record-name strategy meets an unnamed schema.
    pub fn subject(&self, ty: &EventType) -> Result<(String, Schema)> {
        let schema = (ty.schema)()?;
        let strategy = self.options.subject_name_strategy;
        let subject = match (strategy, schema.full_name()) {
            (SubjectNameStrategy::TopicName, name) => {
                strategy.subject(ty.topic, name.as_deref().unwrap_or_default())
            }
            (strategy, Some(name)) => strategy.subject(ty.topic, &name),
            (strategy, None) => {
                return Err(Error::InvalidConfig {
                    key: "subject_name_strategy".to_owned(),
                    reason: format!(
                        "{strategy} needs a named (record) schema; {} has none",
                        ty.type_name
                    ),
                });
            }
        };
        Ok((subject, schema))
    }

    /// Records the registration of `ty` and returns its codec.
    pub fn add(
        &self,
        ty: &EventType,
        schema_id: crate::SchemaId,
        subject: String,
        schema: Schema,
    ) -> Arc<EventCodec> {
        let codec = Arc::new(
            EventCodec::new(subject, schema_id, schema)
                .with_format(self.options.payload_format)
                .with_max_bytes(self.options.max_payload_bytes),
        );
        self.by_type
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ty.type_id, Arc::clone(&codec));
        codec
    }

    /// The codec of `E`, if registered.
    pub fn get<E: Event + 'static>(&self) -> Option<Arc<EventCodec>> {
        self.by_type
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<E>())
            .cloned()
    }

    /// The error for publishing an unregistered `E`.
    pub fn unregistered<E: Event + 'static>() -> Error {
        let event_type = E::schema()
            .ok()
            .and_then(|s| s.full_name())
            .unwrap_or_else(|| std::any::type_name::<E>().to_owned());
        Error::UnregisteredEvent { event_type }
    }

    /// Validates and encodes `events` into rows (all or nothing), adding `headers` to each.
    ///
    /// # Errors
    ///
    /// The first event's [`EventCodec::encode`] error.
    pub fn rows<E: Event>(
        codec: &EventCodec,
        events: &[E],
        headers: &[(&str, &str)],
    ) -> Result<Vec<NewOutboxRow>> {
        events
            .iter()
            .map(|event| {
                let mut row = NewOutboxRow::from_event(codec, event)?;
                row.headers.extend(
                    headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                );
                row.check_size(codec.max_bytes())?;
                Ok(row)
            })
            .collect()
    }
}
