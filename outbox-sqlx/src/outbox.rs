//! The handle application code publishes through.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use outbox_core::compat::CompatibilityMode;
use outbox_core::encode::{DEFAULT_MAX_PAYLOAD_BYTES, EventCodec, PayloadFormat};
use outbox_core::registry::{Registry, SubjectNameStrategy};
use outbox_core::table::{Dialect, Statements, TableNames};
use outbox_core::{Error, Event, NewOutboxRow, Result};
use sqlx::Pool;
use uuid::Uuid;

use crate::database::OutboxDatabase;
use crate::migrate::migrate;
use crate::relay_store::{SqlxRelayStore, insert};
use crate::schema_store::SqlxSchemaStore;

/// Publishes events in the caller's sqlx transaction.
///
/// Built once at start-up with [`Outbox::builder`], which migrates the tables and registers
/// every event type it will publish (refusing a breaking schema change with every
/// incompatibility listed). Cheap to clone; share it across tasks.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use outbox_core::avro::AvroSchema;
/// use outbox_core::Event;
/// use outbox_sqlx::sqlite::SqliteOutbox;
///
/// #[derive(serde::Serialize, AvroSchema)]
/// struct OrderPlaced { order_id: String, total_cents: i64 }
/// impl Event for OrderPlaced {
///     const TOPIC: &'static str = "orders";
///     fn key(&self) -> Option<String> { Some(self.order_id.clone()) }
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite:app.db?mode=rwc").await?;
/// let outbox = SqliteOutbox::builder(pool.clone()).register::<OrderPlaced>().build().await?;
///
/// let mut tx = pool.begin().await?;
/// sqlx::query("insert into orders (id) values ('o-1')").execute(&mut *tx).await?;
/// outbox.publish(&mut *tx, &OrderPlaced { order_id: "o-1".into(), total_cents: 990 }).await?;
/// tx.commit().await?; // the event exists iff this commits
/// # Ok(()) }
/// ```
pub struct Outbox<DB: OutboxDatabase> {
    inner: Arc<Inner<DB>>,
}

struct Inner<DB: OutboxDatabase> {
    pool: Pool<DB>,
    stmts: Arc<Statements>,
    registry: Registry<SqlxSchemaStore<DB>>,
    codecs: RwLock<HashMap<TypeId, Arc<EventCodec>>>,
    settings: Settings,
}

#[derive(Debug, Clone)]
struct Settings {
    strategy: SubjectNameStrategy,
    format: PayloadFormat,
    max_payload_bytes: usize,
    auto_register: bool,
    notify: bool,
}

impl<DB: OutboxDatabase> Clone for Outbox<DB> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<DB: OutboxDatabase> fmt::Debug for Outbox<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("tables", self.inner.stmts.names())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

type Registration<DB> = fn(&Outbox<DB>) -> RegisterFuture<'_>;
type RegisterFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

/// Configures and builds an [`Outbox`].
pub struct OutboxBuilder<DB: OutboxDatabase> {
    pool: Pool<DB>,
    names: TableNames,
    run_migrations: bool,
    default_mode: CompatibilityMode,
    settings: Settings,
    registrations: Vec<Registration<DB>>,
}

impl<DB: OutboxDatabase> fmt::Debug for OutboxBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxBuilder")
            .field("names", &self.names)
            .field("run_migrations", &self.run_migrations)
            .field("default_mode", &self.default_mode)
            .field("settings", &self.settings)
            .field("registrations", &self.registrations.len())
            .finish_non_exhaustive()
    }
}

impl<DB: OutboxDatabase> OutboxBuilder<DB> {
    /// Uses these table names (default: `outbox_*` in the connection's default schema).
    #[must_use]
    pub fn table_names(mut self, names: TableNames) -> Self {
        self.names = names;
        self
    }

    /// Registers an event type at start-up: its schema is registered (or found) under its
    /// subject and checked for compatibility. Register every type you publish.
    #[must_use]
    pub fn register<E: Event + 'static>(mut self) -> Self {
        self.registrations
            .push(|outbox| Box::pin(async move { outbox.register::<E>().await.map(drop) }));
        self
    }

    /// How subjects are named (default: `<topic>-value`).
    #[must_use]
    pub fn subject_name_strategy(mut self, strategy: SubjectNameStrategy) -> Self {
        self.settings.strategy = strategy;
        self
    }

    /// The compatibility mode for subjects with no setting of their own and no global setting
    /// in the database (default: `FULL_TRANSITIVE`).
    #[must_use]
    pub fn default_compatibility(mut self, mode: CompatibilityMode) -> Self {
        self.default_mode = mode;
        self
    }

    /// The payload format (default: Avro in Confluent framing).
    #[must_use]
    pub fn payload_format(mut self, format: PayloadFormat) -> Self {
        self.settings.format = format;
        self
    }

    /// The largest encoded event accepted (default 1 MiB, Kafka's default
    /// `message.max.bytes`); larger events are refused at `publish`.
    #[must_use]
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_payload_bytes = bytes;
        self
    }

    /// Whether publishing a type that was not registered at start-up registers it on first
    /// use (outside the caller's transaction) instead of failing with
    /// [`Error::UnregisteredEvent`]. Off by default: schema changes belong to start-up.
    #[must_use]
    pub fn auto_register(mut self, on: bool) -> Self {
        self.settings.auto_register = on;
        self
    }

    /// PostgreSQL: also `NOTIFY` the relays' channel in every publishing transaction, so a
    /// relay with `listen_notify` wakes at commit instead of at its next poll. Off by default:
    /// NOTIFY takes a cluster-wide lock at commit, which serializes committing transactions.
    /// Ignored on other databases.
    #[must_use]
    pub fn notify_relay(mut self, on: bool) -> Self {
        self.settings.notify = on;
        self
    }

    /// Whether `build` creates or upgrades the tables (default: yes).
    #[must_use]
    pub fn run_migrations(mut self, on: bool) -> Self {
        self.run_migrations = on;
        self
    }

    /// Migrates (unless turned off), registers every event type, and returns the outbox.
    ///
    /// # Errors
    ///
    /// [`Error::IncompatibleSchema`] listing every incompatibility when a registered type
    /// breaks its subject's compatibility; [`Error::InvalidSchema`] for a schema Java's rules
    /// refuse; [`Error::Store`] when the database fails.
    pub async fn build(self) -> Result<Outbox<DB>> {
        let stmts = Arc::new(Statements::new(DB::DIALECT, &self.names));
        if self.run_migrations {
            migrate(&self.pool, &stmts).await?;
        }
        let store = SqlxSchemaStore::new(self.pool.clone(), Arc::clone(&stmts));
        let outbox = Outbox {
            inner: Arc::new(Inner {
                pool: self.pool,
                stmts,
                registry: Registry::new(store).with_default_mode(self.default_mode),
                codecs: RwLock::default(),
                settings: self.settings,
            }),
        };
        for registration in &self.registrations {
            registration(&outbox).await?;
        }
        Ok(outbox)
    }
}

impl<DB: OutboxDatabase> Outbox<DB> {
    /// Starts building an outbox over `pool`.
    pub fn builder(pool: Pool<DB>) -> OutboxBuilder<DB> {
        OutboxBuilder {
            pool,
            names: TableNames::default(),
            run_migrations: true,
            default_mode: CompatibilityMode::default(),
            settings: Settings {
                strategy: SubjectNameStrategy::default(),
                format: PayloadFormat::default(),
                max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
                auto_register: false,
                notify: false,
            },
            registrations: Vec::new(),
        }
    }

    /// Registers `E`'s schema (idempotent) and returns the codec events of `E` use.
    ///
    /// # Errors
    ///
    /// As [`OutboxBuilder::build`].
    pub async fn register<E: Event + 'static>(&self) -> Result<Arc<EventCodec>> {
        let schema = E::schema()?;
        let settings = &self.inner.settings;
        let name = schema.full_name();
        let subject = match (settings.strategy, name) {
            (SubjectNameStrategy::TopicName, name) => settings
                .strategy
                .subject(E::TOPIC, name.as_deref().unwrap_or_default()),
            (strategy, Some(name)) => strategy.subject(E::TOPIC, &name),
            (strategy, None) => {
                return Err(Error::InvalidConfig {
                    key: "subject_name_strategy".to_owned(),
                    reason: format!(
                        "{strategy} needs a named (record) schema; {} has none",
                        std::any::type_name::<E>()
                    ),
                });
            }
        };
        let registered = self.inner.registry.register(&subject, &schema).await?;
        let codec = Arc::new(
            EventCodec::new(subject, registered.id, schema)
                .with_format(settings.format)
                .with_max_bytes(settings.max_payload_bytes),
        );
        self.inner
            .codecs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(TypeId::of::<E>(), Arc::clone(&codec));
        Ok(codec)
    }

    async fn codec<E: Event + 'static>(&self) -> Result<Arc<EventCodec>> {
        let known = self
            .inner
            .codecs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<E>())
            .cloned();
        match known {
            Some(codec) => Ok(codec),
            None if self.inner.settings.auto_register => self.register::<E>().await,
            None => Err(Error::UnregisteredEvent {
                event_type: E::schema()?
                    .full_name()
                    .unwrap_or_else(|| std::any::type_name::<E>().to_owned()),
            }),
        }
    }

    /// Validates, encodes and inserts `event` on `conn`, the caller's transaction
    /// (`&mut *tx`). Returns the event's id (`ce_id`).
    ///
    /// # Errors
    ///
    /// [`Error::SchemaViolation`] (naming the field path), [`Error::PayloadTooLarge`] or
    /// [`Error::UnregisteredEvent`] before any SQL runs, so nothing is written and the
    /// transaction stays usable; [`Error::Store`] when the insert fails.
    ///
    /// # Cancel safety
    ///
    /// Cancelling may leave the insert applied or not; the caller's transaction decides, as
    /// for any statement in it.
    pub async fn publish<E: Event + 'static>(
        &self,
        conn: &mut DB::Connection,
        event: &E,
    ) -> Result<Uuid> {
        self.publish_with_headers(conn, event, &[]).await
    }

    /// [`publish`](Self::publish) with extra headers (for example a W3C `traceparent`).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_with_headers<E: Event + 'static>(
        &self,
        conn: &mut DB::Connection,
        event: &E,
        headers: &[(&str, &str)],
    ) -> Result<Uuid> {
        let codec = self.codec::<E>().await?;
        let mut row = NewOutboxRow::from_event(&codec, event)?;
        row.headers.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        insert::<DB>(conn, &self.inner.stmts, std::slice::from_ref(&row)).await?;
        self.notify(conn).await?;
        Ok(row.event_id)
    }

    /// Validates and encodes every event, then inserts them all in one statement (per 1,000)
    /// on `conn`. Nothing is written if any event is invalid.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), for the first invalid event.
    pub async fn publish_all<E: Event + 'static>(
        &self,
        conn: &mut DB::Connection,
        events: &[E],
    ) -> Result<Vec<Uuid>> {
        let codec = self.codec::<E>().await?;
        let rows = events
            .iter()
            .map(|event| NewOutboxRow::from_event(&codec, event))
            .collect::<Result<Vec<_>>>()?;
        insert::<DB>(conn, &self.inner.stmts, &rows).await?;
        self.notify(conn).await?;
        Ok(rows.iter().map(|r| r.event_id).collect())
    }

    async fn notify(&self, conn: &mut DB::Connection) -> Result<()> {
        let stmts = &self.inner.stmts;
        if self.inner.settings.notify && DB::DIALECT == Dialect::Postgres {
            let channel = crate::database::Value::Text(stmts.notify_channel());
            DB::run(conn, &stmts.notify, vec![channel])
                .await
                .map_err(crate::error::store("notify relays"))?;
        }
        Ok(())
    }

    /// The schema registry over this database's schema tables.
    pub fn registry(&self) -> &Registry<SqlxSchemaStore<DB>> {
        &self.inner.registry
    }

    /// A relay store over the same pool and tables (strict order on PostgreSQL).
    pub fn relay_store(&self) -> SqlxRelayStore<DB> {
        SqlxRelayStore::new(self.inner.pool.clone(), Arc::clone(&self.inner.stmts))
    }

    /// The SQL statements for this outbox's tables.
    pub fn statements(&self) -> &Statements {
        &self.inner.stmts
    }
}
