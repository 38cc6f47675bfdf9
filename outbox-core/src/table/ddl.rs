//! DDL for each dialect, as ordered migrations. The one source of truth for the sqlx and the
//! diesel writers; a migration, once released, is never edited, only followed by another.

use super::{Dialect, Table, TableNames};

/// One step of the schema, applied once, in `version` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Position in the sequence, from 1.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// The statements, run in order in one transaction where the dialect allows.
    pub statements: Vec<String>,
}

/// The statement that creates the migrations bookkeeping table, if missing.
pub(crate) fn migrations_table(dialect: Dialect, names: &TableNames) -> String {
    let table = names.qualified(dialect, Table::Migrations);
    let ts = timestamp_type(dialect);
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, description VARCHAR(255) NOT NULL, \
         applied_at {ts} NOT NULL DEFAULT {now})",
        now = now_default(dialect)
    )
}

/// Every migration for `dialect`, oldest first. The first statement of the list creates the
/// bookkeeping table (`<prefix>_migrations`) the runner records versions in.
pub fn migrations(dialect: Dialect, names: &TableNames) -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            description: "create the outbox, schema registry and relay tables",
            statements: initial(dialect, names),
        },
        Migration {
            version: 2,
            description: "soft delete of schema versions",
            statements: soft_delete(dialect, names),
        },
        Migration {
            version: 3,
            description: "record of the tables captured with triggers",
            statements: captures(dialect, names),
        },
        Migration {
            version: 4,
            description: "identity of the WAL mode replication slot",
            statements: wal_slot(dialect, names),
        },
        Migration {
            version: 5,
            description: "checkpoints of query liberation",
            statements: liberations(dialect, names),
        },
    ]
}

/// Version 2: a schema version can be soft-deleted (hidden from reads and checks, its id
/// still resolvable) before it is deleted for good, as in Confluent's registry.
fn soft_delete(dialect: Dialect, names: &TableNames) -> Vec<String> {
    vec![format!(
        "ALTER TABLE {} ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",
        names.qualified(dialect, Table::Schemas)
    )]
}

/// Version 3: what `capture add` installed, so `capture list`, `remove` and `migrate` know
/// the topic, the subject, the schema id the triggers write and the operator's spec.
fn captures(dialect: Dialect, names: &TableNames) -> Vec<String> {
    let (short, text, engine) = match dialect {
        Dialect::MySql => ("VARCHAR(255)", "LONGTEXT", " ENGINE=InnoDB"),
        Dialect::Postgres | Dialect::Sqlite => ("TEXT", "TEXT", ""),
    };
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  table_name {short} NOT NULL PRIMARY KEY,\n  \
         topic {short} NOT NULL,\n  subject {short} NOT NULL,\n  schema_id BIGINT NOT NULL,\n  \
         spec {text} NOT NULL,\n  created_at {ts} NOT NULL DEFAULT {now}\n){engine}",
        names.qualified(dialect, Table::Captures),
        ts = timestamp_type(dialect),
        now = now_default(dialect),
    )]
}

/// Version 4: the identity of the relay's logical replication slot (WAL mode, PostgreSQL only),
/// recorded when the slot is created so a slot that disappears is noticed instead of silently
/// re-created (messages emitted while no slot exists are lost for good).
fn wal_slot(dialect: Dialect, names: &TableNames) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  slot_name TEXT NOT NULL PRIMARY KEY,\n  \
             publication TEXT NOT NULL,\n  message_prefix TEXT NOT NULL,\n  created_lsn PG_LSN NOT NULL,\n  \
             system_identifier TEXT NOT NULL,\n  database_oid BIGINT NOT NULL,\n  \
             created_at TIMESTAMPTZ NOT NULL DEFAULT now()\n)",
            names.qualified(dialect, Table::WalSlot)
        )],
        Dialect::MySql | Dialect::Sqlite => Vec::new(),
    }
}

/// Version 5: where each query liberation (`liberate bulk` or `incremental`) of a table got
/// to, written in the transaction of the rows it inserted, so a run resumes after a crash
/// without writing a row twice.
fn liberations(dialect: Dialect, names: &TableNames) -> Vec<String> {
    let (short, text, engine) = match dialect {
        Dialect::MySql => ("VARCHAR(255)", "LONGTEXT", " ENGINE=InnoDB"),
        Dialect::Postgres | Dialect::Sqlite => ("TEXT", "TEXT", ""),
    };
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  table_name {short} NOT NULL,\n  \
         mode VARCHAR(255) NOT NULL,\n  last_key {text} NOT NULL,\n  rows_done BIGINT NOT NULL,\n  \
         updated_at {ts} NOT NULL DEFAULT {now},\n  PRIMARY KEY (table_name, mode)\n){engine}",
        names.qualified(dialect, Table::Liberations),
        ts = timestamp_type(dialect),
        now = now_default(dialect),
    )]
}

pub(super) fn timestamp_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "TIMESTAMPTZ",
        Dialect::MySql => "TIMESTAMP(6)",
        Dialect::Sqlite => "TEXT",
    }
}

pub(crate) fn now_default(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "now()",
        Dialect::MySql => "CURRENT_TIMESTAMP(6)",
        Dialect::Sqlite => "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    }
}

fn initial(dialect: Dialect, names: &TableNames) -> Vec<String> {
    let t = |table| names.qualified(dialect, table);
    let ts = timestamp_type(dialect);
    let now = now_default(dialect);
    // Column types per dialect: (id, uuid, short text, long text, bytes, empty-json default).
    let (id, uuid, short, text, bytes, headers_default, engine) = match dialect {
        Dialect::Postgres => (
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "UUID",
            "TEXT",
            "TEXT",
            "BYTEA",
            "'[]'",
            "",
        ),
        Dialect::MySql => (
            "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            "CHAR(36)",
            "VARCHAR(255)",
            "LONGTEXT",
            "LONGBLOB",
            "('[]')",
            " ENGINE=InnoDB",
        ),
        Dialect::Sqlite => (
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "TEXT",
            "TEXT",
            "TEXT",
            "BLOB",
            "'[]'",
            "",
        ),
    };
    let txid = match dialect {
        // The ordering watermark. It is the first column on purpose: PostgreSQL evaluates
        // defaults in column order, so a transaction has its xid before `id` draws from the
        // sequence, which the relay's strict-order horizon relies on.
        Dialect::Postgres => "txid XID8 NOT NULL DEFAULT pg_current_xact_id(),\n  ",
        _ => "",
    };
    let events = t(Table::Events);
    vec![
        migrations_table(dialect, names),
        format!(
            "CREATE TABLE IF NOT EXISTS {events} (\n  {txid}id {id},\n  event_id {uuid} NOT NULL UNIQUE,\n  \
             topic {short} NOT NULL,\n  event_key {bytes} NULL,\n  event_type {short} NOT NULL,\n  \
             schema_id INTEGER NULL,\n  content_type {short} NOT NULL,\n  payload {bytes} NOT NULL,\n  \
             headers {text} NOT NULL DEFAULT {headers_default},\n  created_at {ts} NOT NULL DEFAULT {now}\n){engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  id INTEGER NOT NULL PRIMARY KEY,\n  \
             fingerprint CHAR(64) NOT NULL UNIQUE,\n  created_at {ts} NOT NULL DEFAULT {now}\n){engine}",
            t(Table::SchemaIds)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  id INTEGER NOT NULL,\n  subject {short} NOT NULL,\n  \
             version INTEGER NOT NULL,\n  schema_json {text} NOT NULL,\n  fingerprint CHAR(64) NOT NULL,\n  \
             created_at {ts} NOT NULL DEFAULT {now},\n  PRIMARY KEY (subject, version),\n  \
             UNIQUE (subject, fingerprint)\n){engine}",
            t(Table::Schemas)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  subject {short} NOT NULL PRIMARY KEY,\n  \
             compatibility VARCHAR(32) NOT NULL\n){engine}",
            t(Table::SubjectConfig)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  event_id {uuid} NOT NULL PRIMARY KEY,\n  \
             attempts INTEGER NOT NULL,\n  last_error {text} NOT NULL,\n  updated_at {ts} NOT NULL DEFAULT {now}\n){engine}",
            t(Table::Attempts)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  id BIGINT NOT NULL PRIMARY KEY,\n  event_id {uuid} NOT NULL UNIQUE,\n  \
             topic {short} NOT NULL,\n  event_key {bytes} NULL,\n  event_type {short} NOT NULL,\n  \
             schema_id INTEGER NULL,\n  content_type {short} NOT NULL,\n  payload {bytes} NOT NULL,\n  \
             headers {text} NOT NULL,\n  created_at {ts} NOT NULL,\n  attempts INTEGER NOT NULL,\n  \
             error {text} NOT NULL,\n  dead_lettered_at {ts} NOT NULL DEFAULT {now}\n){engine}",
            t(Table::DeadLetters)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  name {short} NOT NULL PRIMARY KEY,\n  holder {short} NOT NULL,\n  \
             fencing_token BIGINT NOT NULL,\n  expires_at {ts} NOT NULL\n){engine}",
            t(Table::Leases)
        ),
    ]
}
