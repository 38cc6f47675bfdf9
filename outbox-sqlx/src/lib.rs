//! `outbox-sqlx`: publish outbox events inside the caller's sqlx transaction.
//!
//! Stub: this crate fills in with its own issue (publish on PostgreSQL, MySQL/MariaDB and
//! SQLite, migrations, the schema store and the relay's store). Everything it will share with
//! the other writer already lives in `outbox-core`.
