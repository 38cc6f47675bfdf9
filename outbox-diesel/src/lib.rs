//! `outbox-diesel`: publish outbox events inside the caller's diesel transaction.
//!
//! Stub: this crate fills in with its own issue. Its rows will be byte-identical to
//! `outbox-sqlx`'s, since both encode with `outbox-core` and run its insert statement.
