//! `outbox-diesel`: publish outbox events inside the caller's diesel transaction, on
//! PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! - [`DieselOutbox`]: built once at start-up on a connection (migrates the tables, registers
//!   the event types against the same schema tables as `outbox-sqlx`), then
//!   `outbox.publish(conn, &event)?` inside `conn.transaction(|conn| ...)`.
//! - [`AsyncDieselOutbox`] (feature `async`): the same on a `diesel-async` connection
//!   (`AsyncPgConnection`, `AsyncMysqlConnection`, pooled by bb8 or deadpool):
//!   `build(&mut conn).await`, then `outbox.publish(conn, &event).await` inside
//!   `conn.transaction(async |conn| { ... })`.
//! - WAL mode (PostgreSQL): `.wal(true)` on either builder emits each event as a transactional
//!   logical message for the relay's replication slot (`source = "wal"`) instead of inserting
//!   a row, with `outbox-sqlx`'s statements and rules: `build` refuses without the slot
//!   `outbox-relay migrate` recorded, and on MySQL or SQLite.
//! - [`migrate`]: the table contract's migrations; the same DDL ships as SQL files for the
//!   diesel CLI under `migrations/<dialect>/`.
//!
//! Rows are byte-identical to `outbox-sqlx`'s (same encoder, same insert statement), so one
//! relay (`outbox-relay`) drains all of them, and a service can move between them.
//!
//! # Feature flags
//!
//! None is on by default; enable the databases you use:
//!
//! - `postgres`: [`postgres::PgOutbox`] on `PgConnection` (links libpq);
//! - `mysql`: [`mysql::MySqlOutbox`] on `MysqlConnection`, MySQL 8 and MariaDB 10.6+ (links
//!   libmysqlclient);
//! - `sqlite`: [`sqlite::SqliteOutbox`] on `SqliteConnection` (bundled SQLite);
//! - `async`: [`AsyncDieselOutbox`] on `diesel-async` connections, for the `postgres`
//!   ([`postgres::AsyncPgOutbox`] on `AsyncPgConnection`) and `mysql`
//!   ([`mysql::AsyncMySqlOutbox`] on `AsyncMysqlConnection`) features turned on beside it.
//! - `inbox`: [`DieselInbox`], the idempotent consumer's backend for `outbox_inbox::Inbox`,
//!   with a [`DieselInboxHandler`] or in sink mode ([`DieselSink`])
//!   (it alone compiles rdkafka/librdkafka).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "async")]
mod async_connection;
#[cfg(feature = "async")]
mod async_outbox;
#[cfg(feature = "async")]
mod async_pool;
#[cfg(all(test, feature = "async"))]
mod async_store_tests;
mod connection;
mod error;
#[cfg(feature = "inbox")]
mod inbox;
mod migrate;
mod outbox;
mod pool;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod test_db;
mod writer;

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use async_connection::AsyncOutboxConnection;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use async_outbox::{AsyncDieselOutbox, AsyncDieselOutboxBuilder};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use async_pool::{AsyncDieselConnection, AsyncDieselPool, AsyncDieselTransaction};
pub use connection::{DieselBackend, OutboxConnection};
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub use inbox::{DieselEffect, DieselHandler, DieselInbox, DieselInboxHandler, DieselSink};
pub use migrate::{migrate, migrate_inbox};
pub use outbox::{DieselOutbox, DieselOutboxBuilder};
pub use pool::{DieselConnection, DieselPool, DieselTransaction, InTransaction, Scope, Session};

/// The embedded schema registry's tables on one diesel connection: `outbox-core`'s one
/// [`SqlSchemaStore`](outbox_core::registry::SqlSchemaStore), which sqlx runs too. Its
/// futures are ready when first polled.
pub type DieselSchemaStore<'c, C> = outbox_core::registry::SqlSchemaStore<DieselPool<'c, C>>;
/// The embedded schema registry's tables on one `diesel-async` connection: the same
/// [`SqlSchemaStore`](outbox_core::registry::SqlSchemaStore).
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub type AsyncDieselSchemaStore<'c, C> =
    outbox_core::registry::SqlSchemaStore<AsyncDieselPool<'c, C>>;

/// PostgreSQL names.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    /// The outbox on PostgreSQL (`PgConnection`).
    pub type PgOutbox = crate::DieselOutbox<diesel::pg::Pg>;
    /// The outbox on an async PostgreSQL connection (`diesel_async::AsyncPgConnection`).
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub type AsyncPgOutbox = crate::AsyncDieselOutbox<diesel::pg::Pg>;
}

/// MySQL and MariaDB names.
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub mod mysql {
    /// The outbox on MySQL/MariaDB (`MysqlConnection`).
    pub type MySqlOutbox = crate::DieselOutbox<diesel::mysql::Mysql>;
    /// The outbox on an async MySQL/MariaDB connection (`diesel_async::AsyncMysqlConnection`).
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub type AsyncMySqlOutbox = crate::AsyncDieselOutbox<diesel::mysql::Mysql>;
}

/// SQLite names.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    /// The outbox on SQLite (`SqliteConnection`).
    pub type SqliteOutbox = crate::DieselOutbox<diesel::sqlite::Sqlite>;
}
