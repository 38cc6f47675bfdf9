//! The handle async application code publishes through, on the caller's `diesel-async`
//! connection: the blocking [`DieselOutbox`](crate::DieselOutbox)'s start-up and statements,
//! awaited instead of blocking.

use std::fmt;
use std::marker::PhantomData;

use outbox_core::publish::OutboxOptions;
use outbox_core::table::Statements;
use outbox_core::{Error, Event, Result};
use uuid::Uuid;

use crate::async_connection::AsyncOutboxConnection;
use crate::async_pool::AsyncDieselPool;
use crate::connection::DieselBackend;
use crate::error::store;
use crate::writer::Writer;

/// Publishes events on the caller's `diesel-async` connection, inside its transaction.
///
/// Built once at start-up with [`AsyncDieselOutbox::builder`] (settings: [`AsyncDieselOutboxBuilder`]),
/// which migrates the tables and registers every event type against the same schema tables
/// as `outbox-sqlx` and the blocking [`DieselOutbox`](crate::DieselOutbox). Rows are
/// identical to theirs (same encoder, same insert statement), so one relay drains all three.
/// Share it (`Arc`) across tasks.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(all(feature = "postgres", feature = "async"))]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
/// use outbox_core::avro::AvroSchema;
/// use outbox_core::Event;
/// use outbox_diesel::postgres::AsyncPgOutbox;
///
/// #[derive(serde::Serialize, AvroSchema)]
/// struct OrderPlaced { order_id: String, total_cents: i64 }
/// impl Event for OrderPlaced {
///     const TOPIC: &'static str = "orders";
///     fn key(&self) -> Option<String> { Some(self.order_id.clone()) }
/// }
///
/// let mut conn = AsyncPgConnection::establish("postgres://localhost/app").await?;
/// let outbox = AsyncPgOutbox::builder().register::<OrderPlaced>().build(&mut conn).await?;
/// conn.transaction(async |conn| {
///     diesel::sql_query("insert into orders (id) values ('o-1')").execute(conn).await?;
///     let event = OrderPlaced { order_id: "o-1".into(), total_cents: 990 };
///     outbox.publish(conn, &event).await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })
/// .await?; // the event exists iff this commits
/// # Ok(()) }
/// ```
pub struct AsyncDieselOutbox<B: DieselBackend> {
    writer: Writer,
    backend: PhantomData<fn() -> B>,
}

impl<B: DieselBackend> fmt::Debug for AsyncDieselOutbox<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDieselOutbox")
            .field("options", self.writer.codecs.options())
            .finish_non_exhaustive()
    }
}

/// Configures and builds an [`AsyncDieselOutbox`]: chain the setters, then [`build`](Self::build).
#[derive(Debug)]
pub struct AsyncDieselOutboxBuilder<B> {
    options: OutboxOptions,
    wal: bool,
    backend: PhantomData<fn() -> B>,
}

impl<B: DieselBackend> AsyncDieselOutboxBuilder<B> {
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
    /// As [`DieselOutboxBuilder::build`](crate::DieselOutboxBuilder::build).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: cancelled mid-way, it may leave a transaction of its own open on
    /// `conn`; drop that connection (a pool discards a connection left in a transaction).
    pub async fn build<C: AsyncOutboxConnection<Backend = B>>(
        self,
        conn: &mut C,
    ) -> Result<AsyncDieselOutbox<B>, Error> {
        let writer = Writer::new(B::DIALECT, self.options, self.wal)?;
        let pool = AsyncDieselPool::new(conn);
        let started = writer.start(pool.clone()).await;
        // Roll back what a failure left open before the caller has its connection back.
        let settled = pool.settle().await;
        started.and(settled)?;
        Ok(AsyncDieselOutbox {
            writer,
            backend: PhantomData,
        })
    }
}

impl<B: DieselBackend> AsyncDieselOutbox<B> {
    /// Starts building an outbox.
    pub fn builder() -> AsyncDieselOutboxBuilder<B> {
        AsyncDieselOutboxBuilder {
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
    /// [`Error::UnregisteredEvent`] before any SQL runs, so nothing is written and the
    /// transaction stays usable; [`Error::Store`] when the insert fails.
    ///
    /// # Cancel safety
    ///
    /// Cancelling may leave the insert applied or not; the caller's transaction decides, as
    /// for any statement in it.
    pub async fn publish<C, E>(&self, conn: &mut C, event: &E) -> Result<Uuid>
    where
        C: AsyncOutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        self.publish_with_headers(conn, event, &[]).await
    }

    /// [`publish`](Self::publish) with extra headers (for example a W3C `traceparent`).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_with_headers<C, E>(
        &self,
        conn: &mut C,
        event: &E,
        headers: &[(&str, &str)],
    ) -> Result<Uuid>
    where
        C: AsyncOutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        let ids = self
            .insert(conn, std::slice::from_ref(event), headers)
            .await?;
        Ok(ids[0])
    }

    /// Validates and encodes every event, then inserts them in one statement (per 1,000).
    /// Nothing is written if any event is invalid.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), for the first invalid event.
    pub async fn publish_all<C, E>(&self, conn: &mut C, events: &[E]) -> Result<Vec<Uuid>>
    where
        C: AsyncOutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        self.insert(conn, events, &[]).await
    }

    async fn insert<C, E>(
        &self,
        conn: &mut C,
        events: &[E],
        headers: &[(&str, &str)],
    ) -> Result<Vec<Uuid>>
    where
        C: AsyncOutboxConnection<Backend = B>,
        E: Event + 'static,
    {
        let inserts = self.writer.inserts(events, headers)?;
        for (operation, sql, params) in inserts.statements {
            conn.run(&sql, params).await.map_err(store(operation))?;
        }
        Ok(inserts.ids)
    }

    /// The SQL statements for this outbox's tables.
    pub fn statements(&self) -> &Statements {
        &self.writer.stmts
    }
}
