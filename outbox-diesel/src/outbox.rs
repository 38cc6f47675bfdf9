//! The handle application code publishes through, on the caller's diesel connection.

use std::fmt;
use std::marker::PhantomData;

use outbox_core::publish::OutboxOptions;
use outbox_core::table::Statements;
use outbox_core::{Error, Event, Result};
use uuid::Uuid;

use crate::connection::{DieselBackend, OutboxConnection};
use crate::error::store;
use crate::pool::DieselPool;
use crate::writer::Writer;

/// Publishes events on the caller's diesel connection, inside its transaction.
///
/// Built once at start-up with [`DieselOutbox::builder`] (settings: [`DieselOutboxBuilder`]), which
/// migrates the tables and registers every event type against the same schema tables as
/// `outbox-sqlx`. Rows are identical to `outbox-sqlx`'s: both encode with `outbox-core` and
/// run its insert statement. Share it (`Arc`) across threads.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use diesel::{Connection, RunQueryDsl, SqliteConnection};
/// use outbox_core::avro::AvroSchema;
/// use outbox_core::Event;
/// use outbox_diesel::sqlite::SqliteOutbox;
///
/// #[derive(serde::Serialize, AvroSchema)]
/// struct OrderPlaced { order_id: String, total_cents: i64 }
/// impl Event for OrderPlaced {
///     const TOPIC: &'static str = "orders";
///     fn key(&self) -> Option<String> { Some(self.order_id.clone()) }
/// }
///
/// let mut conn = SqliteConnection::establish("app.db")?;
/// let outbox = SqliteOutbox::builder().register::<OrderPlaced>().build(&mut conn)?;
/// conn.transaction(|conn| {
///     diesel::sql_query("insert into orders (id) values ('o-1')").execute(conn)?;
///     outbox.publish(conn, &OrderPlaced { order_id: "o-1".into(), total_cents: 990 })?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })?; // the event exists iff this commits
/// # Ok(()) }
/// ```
pub struct DieselOutbox<B: DieselBackend> {
    writer: Writer,
    backend: PhantomData<fn() -> B>,
}

impl<B: DieselBackend> fmt::Debug for DieselOutbox<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselOutbox")
            .field("options", self.writer.codecs.options())
            .finish_non_exhaustive()
    }
}

/// Configures and builds a [`DieselOutbox`]: chain the setters, then [`build`](Self::build).
#[derive(Debug)]
pub struct DieselOutboxBuilder<B> {
    options: OutboxOptions,
    wal: bool,
    backend: PhantomData<fn() -> B>,
}

impl<B: DieselBackend> DieselOutboxBuilder<B> {
    outbox_core::outbox_builder_setters!(options);

    /// WAL mode (PostgreSQL): `publish` emits each event as a transactional logical message
    /// (`pg_logical_emit_message(true, prefix, envelope)`) in the caller's transaction instead
    /// of inserting a row; the relay reads it from its replication slot (`source = "wal"`).
    /// A rolled-back transaction emits nothing. The same statements as `outbox-sqlx`'s.
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with [`Error::WalSlot`] unless the slot recorded at
    /// `outbox-relay migrate` (with `source = "wal"`) still exists on this cluster: a message
    /// emitted while no slot exists would be lost for good, and a slot that is gone is never
    /// re-created. On MySQL and SQLite it fails with [`Error::InvalidConfig`] before anything
    /// is written.
    #[must_use]
    pub fn wal(mut self, enabled: bool) -> Self {
        self.wal = enabled;
        self
    }

    /// Migrates (unless turned off), checks WAL mode's slot (with [`wal`](Self::wal)) and
    /// registers every event type on `conn`.
    ///
    /// # Errors
    ///
    /// [`Error::IncompatibleSchema`] listing every incompatibility; [`Error::InvalidSchema`];
    /// [`Error::InvalidConfig`] for `auto_register` (a diesel outbox has no connection of its
    /// own to register on later: register every type here) and for WAL mode off PostgreSQL;
    /// [`Error::WalSlot`] in WAL mode without the relay's slot; [`Error::Store`].
    pub fn build<C: OutboxConnection<Backend = B>>(
        self,
        conn: &mut C,
    ) -> Result<DieselOutbox<B>, Error> {
        let writer = Writer::new(B::DIALECT, self.options, self.wal)?;
        // Diesel's store answers at once; a remote registry's HTTP call runs off any async
        // runtime (see `RemoteSchemaStore`), so parking this thread until it answers is safe
        // on a plain thread and inside `tokio::task::spawn_blocking` alike.
        futures_executor::block_on(writer.start(DieselPool::new(conn)))?;
        Ok(DieselOutbox {
            writer,
            backend: PhantomData,
        })
    }
}

impl<B: DieselBackend> DieselOutbox<B> {
    /// Starts building an outbox.
    pub fn builder() -> DieselOutboxBuilder<B> {
        DieselOutboxBuilder {
            options: OutboxOptions::default(),
            wal: false,
            backend: PhantomData,
        }
    }

    /// Validates, encodes and inserts `event` on `conn` (inside your `conn.transaction`), or
    /// in WAL mode emits it as a logical message there. Returns the event's id (`ce_id`).
    ///
    /// # Errors
    ///
    /// [`Error::SchemaViolation`] (naming the field path), [`Error::PayloadTooLarge`] or
    /// [`Error::UnregisteredEvent`] before any SQL runs, so nothing is written;
    /// [`Error::Store`] when the insert fails.
    pub fn publish<C, E>(&self, conn: &mut C, event: &E) -> Result<Uuid>
    where
        C: OutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        self.publish_with_headers(conn, event, &[])
    }

    /// [`publish`](Self::publish) with extra headers (for example a W3C `traceparent`).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn publish_with_headers<C, E>(
        &self,
        conn: &mut C,
        event: &E,
        headers: &[(&str, &str)],
    ) -> Result<Uuid>
    where
        C: OutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        let ids = self.insert(conn, std::slice::from_ref(event), headers)?;
        Ok(ids[0])
    }

    /// Validates and encodes every event, then inserts them in one statement (per 1,000).
    /// Nothing is written if any event is invalid.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), for the first invalid event.
    pub fn publish_all<C, E>(&self, conn: &mut C, events: &[E]) -> Result<Vec<Uuid>>
    where
        C: OutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        self.insert(conn, events, &[])
    }

    fn insert<C, E>(
        &self,
        conn: &mut C,
        events: &[E],
        headers: &[(&str, &str)],
    ) -> Result<Vec<Uuid>>
    where
        C: OutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        let inserts = self.writer.inserts(events, headers)?;
        for (operation, sql, params) in inserts.statements {
            conn.run(&sql, params).map_err(store(operation))?;
        }
        Ok(inserts.ids)
    }

    /// The SQL statements for this outbox's tables.
    pub fn statements(&self) -> &Statements {
        &self.writer.stmts
    }
}
