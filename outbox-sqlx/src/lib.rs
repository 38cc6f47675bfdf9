//! `outbox-sqlx`: publish outbox events inside the caller's sqlx transaction, on PostgreSQL,
//! MySQL/MariaDB and SQLite.
//!
//! - [`Outbox`]: built once at start-up (migrates the tables, registers the event types and
//!   checks their compatibility), then `publish(&mut *tx, &event)` inside your transaction.
//!   With [`OutboxBuilder::wal`] (PostgreSQL), events are emitted as transactional logical
//!   messages for the relay's replication slot instead of inserted.
//! - [`migrate`]: the table contract's migrations, safe to run from several processes.
//! - [`SqlxSchemaStore`]: the embedded schema registry's tables.
//! - [`SqlxRelayStore`]: what the relay claims, acknowledges and dead-letters through.
//! - [`capture`] and [`liberate`]: trigger capture of existing tables, and liberation of
//!   their rows by query (bulk snapshots, incremental loading).
//!
//! # Feature flags
//!
//! None is on by default; enable the databases you use:
//!
//! - `postgres`: [`postgres::PgOutbox`] and friends (PostgreSQL 13+);
//! - `mysql`: [`mysql::MySqlOutbox`] and friends (MySQL 8, MariaDB 10.6+);
//! - `sqlite`: [`sqlite::SqliteOutbox`] and friends (bundled SQLite);
//! - `opentelemetry`: published events carry the current OpenTelemetry trace context as a
//!   W3C `traceparent` header (`outbox-core`'s feature).
//! - `inbox`: `SqlxInbox`, the idempotent consumer's backend for `outbox_inbox::Inbox`
//!   (exactly-once effects in this database); it alone compiles rdkafka/librdkafka.
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! # use outbox_core::avro::AvroSchema;
//! # #[derive(serde::Serialize, AvroSchema)] struct OrderPlaced { order_id: String }
//! # impl outbox_core::Event for OrderPlaced { const TOPIC: &'static str = "orders"; }
//! use outbox_sqlx::postgres::PgOutbox;
//!
//! let outbox = PgOutbox::builder(pool.clone()).register::<OrderPlaced>().build().await?;
//! let mut tx = pool.begin().await?;
//! outbox.publish(&mut *tx, &OrderPlaced { order_id: "o-1".into() }).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod capture;
mod cells;
mod database;
mod error;
#[cfg(feature = "inbox")]
mod inbox;
pub mod liberate;
mod migrate;
mod outbox;
mod pool;
mod relay_store;
mod wal;

#[doc(hidden)]
pub use database::{Column, Value};
pub use database::{HasDialect, OutboxDatabase};
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub use inbox::{Effect, Handler, InboxHandler, Sink, SqlxInbox};
pub use migrate::{migrate, migrate_inbox};
pub use outbox::{Outbox, OutboxBuilder, WriterStore};
pub use pool::{ConnectionHolder, SqlxConnection, SqlxPool, SqlxTransaction};
pub use relay_store::SqlxRelayStore;

/// The embedded schema registry's tables on a sqlx pool: `outbox-core`'s one
/// [`SqlSchemaStore`](outbox_core::registry::SqlSchemaStore), which diesel runs too.
pub type SqlxSchemaStore<DB> = outbox_core::registry::SqlSchemaStore<SqlxPool<DB>>;

/// PostgreSQL names.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    /// The outbox on PostgreSQL.
    pub type PgOutbox = crate::Outbox<sqlx::Postgres>;
    /// The relay store on PostgreSQL.
    pub type PgRelayStore = crate::SqlxRelayStore<sqlx::Postgres>;
    /// The schema store on PostgreSQL.
    pub type PgSchemaStore = crate::SqlxSchemaStore<sqlx::Postgres>;
    pub use crate::wal::{
        WalRetryTarget, WalSlotIdentity, WalSlotStatus, check_wal_slot, create_wal_slot,
        dead_letter_wal_event, drop_wal_slot, first_wal_dead_letter, remove_wal_dead_letter,
        retry_wal_dead_letter, wal_retry_target, wal_slot_status,
    };
}

/// MySQL and MariaDB names.
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub mod mysql {
    /// The outbox on MySQL/MariaDB.
    pub type MySqlOutbox = crate::Outbox<sqlx::MySql>;
    /// The relay store on MySQL/MariaDB.
    pub type MySqlRelayStore = crate::SqlxRelayStore<sqlx::MySql>;
    /// The schema store on MySQL/MariaDB.
    pub type MySqlSchemaStore = crate::SqlxSchemaStore<sqlx::MySql>;
}

/// SQLite names.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    /// The outbox on SQLite.
    pub type SqliteOutbox = crate::Outbox<sqlx::Sqlite>;
    /// The relay store on SQLite.
    pub type SqliteRelayStore = crate::SqlxRelayStore<sqlx::Sqlite>;
    /// The schema store on SQLite.
    pub type SqliteSchemaStore = crate::SqlxSchemaStore<sqlx::Sqlite>;
}
