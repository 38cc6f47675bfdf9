//! Core of `outbox`, a transactional outbox for Rust services: every domain event reaches Kafka
//! exactly when, and only when, the business transaction that emitted it commits.
//!
//! This crate has no database, Kafka or async runtime dependency. It holds what the writers
//! (`outbox-sqlx`, `outbox-diesel`) and the relay (`outbox-relay`) share:
//!
//! - [`Event`]: what application code publishes (serde + `apache_avro`'s `AvroSchema`, a topic,
//!   a key). `apache_avro` is re-exported as [`avro`] so derives use the same version.
//! - [`Schema`]: Avro schemas parsed with Apache Avro Java's rules, with a canonical form and
//!   fingerprint.
//! - [`compat`]: reader/writer compatibility with the exact verdicts of Avro Java's
//!   `SchemaCompatibility` (what Confluent Schema Registry runs), and Confluent's seven modes.
//! - [`registry`]: the registry engine (idempotent registration, global ids, versions,
//!   per-subject and global modes) over a [`registry::SchemaStore`], with an in-memory store and
//!   a conformance suite for other stores.
//! - [`lint`]: design rules for event schemas (docs, narrow types, one definition per stream,
//!   size), with stable rule ids, severities and JSON-pointer locations.
//! - [`encode`]: write-time validation naming the failing field path, the size limit, and the
//!   Confluent wire format (`0x00`, 4-byte schema id, Avro binary), with a decoder.
//! - [`table`]: the outbox table contract as DDL per dialect and the shared statements.
//! - [`sql`]: the connection contract the writers implement, and the one migration runner.
//! - [`relay`]: the relay's store contract (claim, ack, dead-letter, lease), in memory and as a
//!   conformance suite.
//! - [`publish`]: what the writers share: options ([`publish::OutboxOptions`]) and their
//!   builder setters, event types, codecs.
//! - [`wal`]: WAL mode (PostgreSQL): the envelope of a logical message, the slot's names, and
//!   [`wal::WalStatements`], the slot check and emit statement every writer runs.
//! - [`NewOutboxRow`]: the row a writer inserts.
//! - [`Error`]: one error type; [`Error::kind`] tells retryable from permanent.
//!
//! # Feature flags
//!
//! None is on by default.
//!
//! - `codegen`: [`codegen`], Rust types (deriving `AvroSchema`) from `.avsc` files, for
//!   `build.rs`.
//! - `opentelemetry`: every event carries the current OpenTelemetry trace context as a W3C
//!   `traceparent` header, so consumers continue the producer's trace.
//! - `registry-tls`: `https://` remote registries ([`registry::RemoteSchemaStore`]), with the
//!   Mozilla roots or the CAs of [`registry::RemoteRegistryConfig::ca_pem`] (rustls).
//! - `tokio`: the remote registry client's blocking HTTP calls run on the current tokio
//!   runtime's blocking pool instead of the calling thread, so awaiting them never stalls the
//!   runtime (`outbox-sqlx` turns it on). Adds `tokio` (`rt` only in use).
//!
//! # Examples
//!
//! ```
//! use outbox_core::avro::AvroSchema;
//! use outbox_core::encode::EventCodec;
//! use outbox_core::{Event, NewOutboxRow};
//!
//! #[derive(serde::Serialize, AvroSchema)]
//! #[avro(namespace = "com.acme.orders")]
//! struct OrderPlaced { order_id: String, total_cents: i64 }
//!
//! impl Event for OrderPlaced {
//!     const TOPIC: &'static str = "orders";
//!     fn key(&self) -> Option<String> { Some(self.order_id.clone()) }
//! }
//!
//! // A writer registers the schema once (id 1 here), then encodes each event into a row.
//! let codec = EventCodec::new("orders-value", 1, OrderPlaced::schema()?);
//! let row = NewOutboxRow::from_event(&codec, &OrderPlaced { order_id: "o-1".into(), total_cents: 990 })?;
//! assert_eq!(row.topic, "orders");
//! assert_eq!(row.event_key.as_deref(), Some(&b"o-1"[..]));
//! # Ok::<(), outbox_core::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

// Rustdoc resolves the doc links of `outbox_builder_setters!`'s setters here, where the macro
// is defined, and the writers' crates expand it: `outbox_core::` paths resolve in both.
#[allow(unused_extern_crates)]
extern crate self as outbox_core;

pub mod capture;
#[cfg(feature = "codegen")]
#[cfg_attr(docsrs, doc(cfg(feature = "codegen")))]
pub mod codegen;
pub mod compat;
pub mod encode;
mod error;
mod event;
pub mod liberate;
pub mod lint;
mod poison;
pub mod publish;
pub mod registry;
pub mod relay;
mod row;
pub mod schema;
mod schema_id;
pub mod sql;
pub mod table;
pub mod trace;
pub mod wal;

pub use apache_avro as avro;
pub use error::{DeleteRefusal, Error, ErrorKind, Result};
pub use event::Event;
pub use poison::PoisonPolicy;
pub use row::{NewOutboxRow, headers_from_json, headers_to_json};
pub use schema::Schema;
pub use schema_id::SchemaId;
