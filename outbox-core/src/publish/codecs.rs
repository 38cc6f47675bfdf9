//! What every writer (sqlx, diesel) shares: its options, the event types it registers, and
//! the codecs that turn events into rows.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::compat::CompatibilityMode;
use crate::encode::{DEFAULT_MAX_PAYLOAD_BYTES, EventCodec, PayloadFormat};
use crate::event::Event;
use crate::lint::{LintConfig, LintLevel};
use crate::registry::{RemoteRegistryConfig, SubjectNameStrategy};
use crate::schema::Schema;
use crate::table::TableNames;
use crate::{Error, NewOutboxRow, Result};

/// An event type a writer publishes: its topic and schema, captured from the Rust type.
#[derive(Clone, Copy)]
pub struct EventType {
    type_id: TypeId,
    type_name: &'static str,
    topic: &'static str,
    schema: fn() -> Result<Schema>,
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

/// How a writer is set up; its builder sets these through [`Configure`].
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// The table names.
    pub table_names: TableNames,
    /// Whether building creates or upgrades the tables.
    pub run_migrations: bool,
    /// The mode for subjects without a setting of their own or a global one.
    pub default_compatibility: CompatibilityMode,
    /// How subjects are named.
    pub subject_name_strategy: SubjectNameStrategy,
    /// The payload format.
    pub payload_format: PayloadFormat,
    /// The largest encoded record accepted (key + value + headers).
    pub max_payload_bytes: usize,
    /// Whether an event type not registered at start-up registers on first publish.
    pub auto_register: bool,
    /// PostgreSQL: NOTIFY listening relays in every publishing transaction.
    pub notify_relay: bool,
    /// The event types registered at start-up.
    pub event_types: Vec<EventType>,
    /// A remote Confluent-compatible registry to register with instead of the embedded one.
    pub schema_registry: Option<RemoteRegistryConfig>,
    /// Whether registering a new schema runs the schema linter, and what a violation does.
    pub lint_level: LintLevel,
    /// The linter's rules, when `lint_level` is not `Allow`.
    pub lint_config: LintConfig,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            table_names: TableNames::default(),
            run_migrations: true,
            default_compatibility: CompatibilityMode::default(),
            subject_name_strategy: SubjectNameStrategy::default(),
            payload_format: PayloadFormat::default(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            auto_register: false,
            notify_relay: false,
            event_types: Vec::new(),
            schema_registry: None,
            lint_level: LintLevel::default(),
            lint_config: LintConfig::default(),
        }
    }
}

/// The setters every writer's builder has. Builders implement `options_mut`; the rest comes
/// with the trait (bring it into scope to call them).
pub trait Configure: Sized {
    /// The options being built.
    fn options_mut(&mut self) -> &mut OutboxOptions;

    /// Uses these table names (default: `outbox_*`).
    #[must_use]
    fn table_names(mut self, names: TableNames) -> Self {
        self.options_mut().table_names = names;
        self
    }

    /// Registers an event type at start-up: its schema is registered (or found) under its
    /// subject and checked for compatibility. Register every type you publish.
    #[must_use]
    fn register<E: Event + 'static>(mut self) -> Self {
        self.options_mut().event_types.push(EventType::of::<E>());
        self
    }

    /// How subjects are named (default: `<topic>-value`).
    #[must_use]
    fn subject_name_strategy(mut self, strategy: SubjectNameStrategy) -> Self {
        self.options_mut().subject_name_strategy = strategy;
        self
    }

    /// The compatibility mode for subjects with no setting of their own and no global setting
    /// in the database (default: `FULL_TRANSITIVE`).
    #[must_use]
    fn default_compatibility(mut self, mode: CompatibilityMode) -> Self {
        self.options_mut().default_compatibility = mode;
        self
    }

    /// The payload format (default: Avro in Confluent framing).
    #[must_use]
    fn payload_format(mut self, format: PayloadFormat) -> Self {
        self.options_mut().payload_format = format;
        self
    }

    /// The largest encoded record accepted, key + value + headers (default 1 MiB, Kafka's
    /// broker default); larger events are refused at publish. The relay's producer accepts
    /// records up to 1 MiB plus the CloudEvents headers; raise its `message.max.bytes` (and
    /// the broker's) to match a larger limit.
    #[must_use]
    fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.options_mut().max_payload_bytes = bytes;
        self
    }

    /// Whether publishing a type not registered at start-up registers it on first use
    /// instead of failing with [`Error::UnregisteredEvent`]. Off by default: schema changes
    /// belong to start-up.
    #[must_use]
    fn auto_register(mut self, on: bool) -> Self {
        self.options_mut().auto_register = on;
        self
    }

    /// PostgreSQL: also `NOTIFY` the relays' channel in every publishing transaction, so a
    /// relay with `listen_notify` wakes at commit instead of at its next poll. Off by default:
    /// NOTIFY takes a cluster-wide lock at commit, which serializes committing transactions.
    /// Ignored on other databases.
    #[must_use]
    fn notify_relay(mut self, on: bool) -> Self {
        self.options_mut().notify_relay = on;
        self
    }

    /// Registers schemas with a remote Confluent-compatible registry instead of the embedded
    /// tables. Ids are cached at start-up, so publishing makes no network call.
    #[must_use]
    fn schema_registry(mut self, registry: RemoteRegistryConfig) -> Self {
        self.options_mut().schema_registry = Some(registry);
        self
    }

    /// Runs the schema linter ([`crate::lint`]) on every new schema registered: at
    /// [`LintLevel::Deny`] a schema with an error-severity violation is refused
    /// ([`Error::LintFailed`]), at [`LintLevel::Warn`] violations are logged. Schemas
    /// already registered are never refused. Default: [`LintLevel::Allow`] (no linting).
    #[must_use]
    fn lint(mut self, level: LintLevel) -> Self {
        self.options_mut().lint_level = level;
        self
    }

    /// The linter's rules and thresholds (default: [`LintConfig::default`]), for example
    /// [`LintConfig::from_file`].
    #[must_use]
    fn lint_config(mut self, config: LintConfig) -> Self {
        self.options_mut().lint_config = config;
        self
    }

    /// Whether building creates or upgrades the tables (default: yes).
    #[must_use]
    fn run_migrations(mut self, on: bool) -> Self {
        self.options_mut().run_migrations = on;
        self
    }
}

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
        schema_id: u32,
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

/// Runs a future that completes without waiting, as the futures of a blocking store (such as
/// diesel's) do, so blocking back ends reuse the async registry engine.
///
/// # Panics
///
/// If the future is not ready on its first poll: that store is not blocking.
pub fn complete_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => {
            panic!("complete_now: the future waited; only blocking stores may be driven this way")
        }
    }
}
