//! `outbox-inbox`: the consumer side of the outbox, an idempotent Kafka consumer whose effects
//! happen exactly once.
//!
//! The relay publishes at least once (DESIGN §5.6: a duplicate after a crash or a lost
//! acknowledgement, each record carrying its `ce_id`). The [`Inbox`] runner turns that into
//! exactly-once effects: for each record it decodes the value with a schema registry to the
//! consumer's own reader schema, then, in one database transaction, records
//! `(consumer_group, ce_id)` in `<prefix>_inbox` (a duplicate is skipped), runs the effect and
//! commits; only then is the Kafka offset committed. A crash anywhere replays at most the
//! records whose offsets were not committed, and the inbox skips the ones already applied.
//!
//! This crate holds the runner, written once; the databases implement [`InboxBackend`]:
//! `outbox-sqlx` and `outbox-diesel` under their `inbox` feature, with handler and sink modes.
//! The sink mode's decisions (upsert or delete, and why a record cannot be sunk) are
//! [`SinkMapping`], written once for both, as is their bookkeeping ([`store`]: recording an
//! id, dead letters, retention, over `outbox-core`'s connection contract).
//!
//! # Retention
//!
//! Inbox rows older than [`InboxSettings::retention`] are deleted. A duplicate arriving after
//! its id was deleted would be applied again, so the window must exceed the longest time
//! between two publications of one event by the relay: the relay republishes only rows it has
//! not deleted, i.e. after a crash or a lost acknowledgement, at the latest when a relay
//! restarts (or takes the lease over) and re-reads them; and a consumer re-reads a record only
//! if its offset was not committed. The window must therefore cover the longest relay outage
//! plus the consumer's longest lag (a consumer stopped for a week re-reading from its last
//! commit). The default, 7 days, matches Kafka's default topic retention: a record older than
//! that may no longer exist to be read twice.
//!
//! # Feature flags
//!
//! None: the crate is only compiled by the `inbox` features of `outbox-sqlx` and
//! `outbox-diesel`, so an application that does not consume does not build librdkafka.

mod backend;
mod error;
mod metrics;
mod runner;
mod settings;
mod sink;
pub mod store;

pub use backend::{Applied, ApplyError, BoxError, DeadLetter, InboxBackend, InboxEvent};
pub use error::{Error, Reason, Result};
pub use metrics::InboxMetrics;
pub use rdkafka::ClientConfig;
pub use runner::Inbox;
pub use settings::InboxSettings;
pub use sink::SinkMapping;
