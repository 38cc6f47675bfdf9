//! `outbox-relay`: drains the transactional outbox to Kafka, and the operator's command line.
//!
//! - [`Relay`]: the drain loop over any store with the relay capabilities of
//!   [`outbox_core::relay`] (usable in-process, as the quickstart does; built with
//!   [`Relay::builder`]): leader lease, batch read, produce without waiting per record,
//!   acknowledgements, delete, dead letters, graceful shutdown.
//! - [`cli`]: the command line; [`commands`]: each command in its own file, and
//!   [`commands::execute`], which the binary calls.
//! - [`config`]: TOML file, environment and flags, read once into [`settings::Settings`]
//!   (validated table names, the statements, parsed addresses).
//! - [`producer`]: the idempotent, `acks=all` producer; [`record`]: CloudEvents Kafka
//!   binding; [`metrics`] and [`http`]: Prometheus `/metrics`, `/healthz`, `/readyz`.
//! - [`schema_check`]: `outbox-relay schema check`, for a user's CI; [`schema_lint`]:
//!   `outbox-relay schema lint`, the design rules of [`outbox_core::lint`].
//! - [`database`]: the binary's connection to PostgreSQL, MySQL/MariaDB or SQLite by URL
//!   (TLS settings in the URL); [`preflight`]: the start-up check that the broker accepts the
//!   TLS and SASL settings.
//! - `outbox-relay capture add|list|remove|migrate` ([`commands`]): change capture of existing
//!   tables with triggers; captured rows are encoded by [`record::CaptureEncoder`].
//! - [`secrets`]: secrets and librdkafka properties from the environment or files;
//!   [`redact`]: no secret in `Debug`, logs or errors; [`logging`]: text or JSON logs.
//!
//! # Guarantees
//!
//! A row is deleted only after Kafka acknowledged its record (idempotent producer,
//! `acks=all`); transient broker errors are retried by the producer without a deadline, so
//! they delay records but never fail or reorder them; records of one key are produced in
//! outbox order; a permanently failing record is retried up to `max_attempts` times, with
//! backoff, then moved to the dead-letter table, and with the `block` policy later events of
//! its key are parked behind it. A row that cannot become a record (a malformed column, a
//! topic Kafka refuses, a record above `message.max.bytes`) is dead-lettered at once with the
//! reason, and every other row flows. A fatal producer error rebuilds the producer. Only the
//! lease holder produces, and its deletes and dead letters are fenced by the lease
//! generation.
//!
//! # Feature flags
//!
//! The databases [`with_database!`] and the commands speak, each linking its sqlx driver; all
//! three are on by default (the binary needs them), and a library user may take only one
//! (`default-features = false, features = ["sqlite"]`):
//!
//! - `postgres`: PostgreSQL 13+, with LISTEN/NOTIFY wake-ups;
//! - `mysql`: MySQL 8 and MariaDB 10.6+;
//! - `sqlite`: SQLite (bundled).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod database;
pub mod http;
pub mod kafka_log;
pub mod kafka_tls;
pub mod logging;
pub mod metrics;
pub mod preflight;
pub mod producer;
pub mod record;
pub mod redact;
pub mod registry_api;
mod relay;
pub mod schema_check;
pub mod schema_lint;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod token_endpoint;
mod validate;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod wal;

pub use relay::{LATENCY_TARGET, Relay, RelayBuilder, RunSummary, Step, is_permanent};
