//! `outbox-relay`: drains the transactional outbox to Kafka, and the operator's command line.
//!
//! Today this crate carries the schema tooling a user's CI runs before a deploy
//! ([`schema_check`]); the relay itself lands with its own issue.

pub mod schema_check;
