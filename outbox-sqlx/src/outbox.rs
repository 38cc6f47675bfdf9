//! The handle application code publishes through.

use std::fmt;
use std::sync::Arc;

use outbox_core::encode::EventCodec;
use outbox_core::lint::LintReport;
use outbox_core::publish::{Codecs, EventType, OutboxOptions};
use outbox_core::registry::{EitherStore, Registry, RemoteSchemaStore};
use outbox_core::table::{PublishTarget, Statements};
use outbox_core::wal::WalStatements;
use outbox_core::{Event, Result};
use sqlx::Pool;
use uuid::Uuid;

use crate::SqlxSchemaStore;
use crate::database::OutboxDatabase;
use crate::error::store;
use crate::migrate::migrate;
use crate::relay_store::SqlxRelayStore;

/// Publishes events in the caller's sqlx transaction.
///
/// Built once at start-up with [`Outbox::builder`], which migrates the tables and registers
/// every event type it will publish (refusing a breaking schema change with every
/// incompatibility listed); its settings are [`OutboxBuilder`]'s methods. Cheap to clone;
/// share it across tasks.
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
    registry: Registry<WriterStore<DB>>,
    codecs: Codecs,
    /// Rows in the events table, or (WAL mode) logical messages.
    target: PublishTarget,
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
            .field("options", self.inner.codecs.options())
            .finish_non_exhaustive()
    }
}

/// Where a writer's schemas live: the embedded tables or a remote registry.
pub type WriterStore<DB> = EitherStore<SqlxSchemaStore<DB>, RemoteSchemaStore>;

/// Configures and builds an [`Outbox`], like sqlx's `PgPoolOptions`: chain the setters, then
/// [`build`](Self::build).
pub struct OutboxBuilder<DB: OutboxDatabase> {
    pool: Pool<DB>,
    options: OutboxOptions,
    wal: bool,
}

impl<DB: OutboxDatabase> fmt::Debug for OutboxBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxBuilder")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<DB: OutboxDatabase> OutboxBuilder<DB> {
    outbox_core::outbox_builder_setters!(options);

    /// WAL mode (PostgreSQL): `publish` emits each event as a transactional logical message
    /// (`pg_logical_emit_message(true, prefix, envelope)`) in the caller's transaction instead
    /// of inserting a row; the relay reads it from its replication slot
    /// (`source = "wal"`). A rolled-back transaction emits nothing.
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with [`outbox_core::Error::WalSlot`] unless the relay's
    /// slot exists (`outbox-relay migrate` with `source = "wal"` creates it): a message
    /// emitted while no slot exists would be lost for good. On MySQL and SQLite it fails with
    /// [`outbox_core::Error::InvalidConfig`].
    #[must_use]
    pub fn wal(mut self, enabled: bool) -> Self {
        self.wal = enabled;
        self
    }

    /// Migrates (unless turned off), registers every event type, and returns the outbox.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::IncompatibleSchema`] listing every incompatibility when a
    /// registered type breaks its subject's compatibility;
    /// [`outbox_core::Error::InvalidSchema`] for a schema Java's rules refuse;
    /// [`outbox_core::Error::Store`] when the database fails.
    pub async fn build(self) -> Result<Outbox<DB>> {
        let stmts = Arc::new(Statements::new(DB::DIALECT, &self.options.table_names));
        // Refused on MySQL and SQLite before anything is written.
        let wal = self
            .wal
            .then(|| WalStatements::new(DB::DIALECT, &self.options.table_names))
            .transpose()?;
        if self.options.run_migrations {
            migrate(&self.pool, &stmts).await?;
        }
        let store = match &self.options.schema_registry {
            Some(remote) => EitherStore::Right(RemoteSchemaStore::new(remote.clone())),
            None => EitherStore::Left(SqlxSchemaStore::new(self.pool.clone(), Arc::clone(&stmts))),
        };
        let registry = Registry::new(store)
            .with_default_mode(self.options.default_compatibility)
            .with_lint(self.options.lint_level, self.options.lint_config.clone())
            .on_lint(log_lint);
        let event_types = self.options.event_types.clone();
        let target = match wal {
            Some(wal) => {
                crate::wal::check_wal_slot_on(&self.pool, &wal).await?;
                PublishTarget::Wal(wal)
            }
            None => PublishTarget::Table {
                notify: self.options.notify_relay,
            },
        };
        let outbox = Outbox {
            inner: Arc::new(Inner {
                pool: self.pool,
                stmts,
                registry,
                codecs: Codecs::new(self.options),
                target,
            }),
        };
        for ty in &event_types {
            outbox.register_type(ty).await?;
        }
        Ok(outbox)
    }
}

impl<DB: OutboxDatabase> Outbox<DB> {
    /// Starts building an outbox over `pool`.
    pub fn builder(pool: Pool<DB>) -> OutboxBuilder<DB> {
        OutboxBuilder {
            pool,
            options: OutboxOptions::default(),
            wal: false,
        }
    }

    /// Registers `E`'s schema (idempotent) and returns the codec events of `E` use.
    ///
    /// # Errors
    ///
    /// As [`OutboxBuilder::build`].
    pub async fn register<E: Event + 'static>(&self) -> Result<Arc<EventCodec>> {
        self.register_type(&EventType::of::<E>()).await
    }

    async fn register_type(&self, ty: &EventType) -> Result<Arc<EventCodec>> {
        let codecs = &self.inner.codecs;
        let (subject, schema) = codecs.subject(ty)?;
        let registered = self.inner.registry.register(&subject, &schema).await?;
        Ok(codecs.add(ty, registered.id, subject, schema))
    }

    async fn codec<E: Event + 'static>(&self) -> Result<Arc<EventCodec>> {
        match self.inner.codecs.get::<E>() {
            Some(codec) => Ok(codec),
            None if self.inner.codecs.options().auto_register => self.register::<E>().await,
            None => Err(Codecs::unregistered::<E>()),
        }
    }

    /// Validates, encodes and inserts `event` on `conn`, the caller's transaction
    /// (`&mut *tx`). Returns the event's id (`ce_id`).
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::SchemaViolation`] (naming the field path),
    /// [`outbox_core::Error::PayloadTooLarge`] or [`outbox_core::Error::UnregisteredEvent`]
    /// before any SQL runs, so nothing is written and the transaction stays usable;
    /// [`outbox_core::Error::Store`] when the insert fails.
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
        let ids = self
            .insert(conn, std::slice::from_ref(event), headers)
            .await?;
        Ok(ids[0])
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
        self.insert(conn, events, &[]).await
    }

    async fn insert<E: Event + 'static>(
        &self,
        conn: &mut DB::Connection,
        events: &[E],
        headers: &[(&str, &str)],
    ) -> Result<Vec<Uuid>> {
        let codec = self.codec::<E>().await?;
        let rows = Codecs::rows(&codec, events, headers)?;
        for statement in self.inner.stmts.publish_to(&self.inner.target, &rows)? {
            DB::run(conn, &statement.sql, statement.params)
                .await
                .map_err(store(statement.operation))?;
        }
        Ok(rows.iter().map(|r| r.event_id).collect())
    }

    /// The schema registry: this database's schema tables, or the remote registry.
    pub fn registry(&self) -> &Registry<WriterStore<DB>> {
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

/// Logs each violation of a new schema (the registry refuses it too at `LintLevel::Deny`).
fn log_lint(subject: &str, report: &LintReport) {
    for v in &report.violations {
        tracing::warn!(subject, violation = %v, "schema design rule broken");
    }
}
