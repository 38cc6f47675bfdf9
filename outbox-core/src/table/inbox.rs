//! The inbox's tables and statements: what a consumer group has processed (`<prefix>_inbox`,
//! DESIGN §8) and what it set aside (`<prefix>_inbox_dead_letters`).
//!
//! The inbox has its own migrations, recorded in the same `<prefix>_migrations` table as the
//! outbox's, with versions from [`INBOX_MIGRATIONS_FROM`] on: a consumer's database rarely holds
//! an outbox, and when it does the two sets do not collide.

use super::ddl::{now_default, timestamp_type};
use super::{Dialect, Identifier, Migration, Table, TableNames};
use crate::sql::{Query, Statement};

/// The first inbox migration version; versions below it belong to the outbox.
pub const INBOX_MIGRATIONS_FROM: i64 = 1001;

/// The longest `ce_id` (and consumer group name) the inbox stores, in bytes.
pub const MAX_INBOX_ID_BYTES: usize = 255;

/// Rows one retention statement deletes at most, so a purge never holds a long lock.
const PURGE_BATCH: usize = 5000;

/// Every inbox migration for `dialect`, oldest first.
pub fn inbox_migrations(dialect: Dialect, names: &TableNames) -> Vec<Migration> {
    vec![Migration {
        version: INBOX_MIGRATIONS_FROM,
        description: "create the inbox and inbox dead-letter tables",
        statements: initial(dialect, names),
    }]
}

fn initial(dialect: Dialect, names: &TableNames) -> Vec<String> {
    let ts = timestamp_type(dialect);
    let now = now_default(dialect);
    // Ids compare byte for byte: MySQL's default collation would fold case.
    let (id, text, bytes, serial, engine) = match dialect {
        Dialect::Postgres => (
            "TEXT",
            "TEXT",
            "BYTEA",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "",
        ),
        Dialect::MySql => (
            "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "LONGTEXT",
            "LONGBLOB",
            "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            " ENGINE=InnoDB",
        ),
        Dialect::Sqlite => (
            "TEXT",
            "TEXT",
            "BLOB",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "",
        ),
    };
    let inbox = names.qualified(dialect, Table::Inbox);
    let dead = names.qualified(dialect, Table::InboxDeadLetters);
    let age_index = Identifier(format!("{}_age", names.name(Table::Inbox)));
    let age_index = dialect.quote(&age_index);
    let inline_index = match dialect {
        Dialect::MySql => format!(",\n  INDEX {age_index} (consumer_group, processed_at)"),
        Dialect::Postgres | Dialect::Sqlite => String::new(),
    };
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {inbox} (\n  consumer_group {id} NOT NULL,\n  ce_id {id} NOT NULL,\n  \
             processed_at {ts} NOT NULL DEFAULT {now},\n  PRIMARY KEY (consumer_group, ce_id){inline_index}\n){engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {dead} (\n  id {serial},\n  consumer_group {id} NOT NULL,\n  \
             topic {id} NOT NULL,\n  partition_no INTEGER NOT NULL,\n  record_offset BIGINT NOT NULL,\n  \
             ce_id {id} NULL,\n  record_key {bytes} NULL,\n  record_value {bytes} NULL,\n  \
             headers {text} NOT NULL,\n  reason {text} NOT NULL,\n  \
             dead_lettered_at {ts} NOT NULL DEFAULT {now},\n  \
             UNIQUE (consumer_group, topic, partition_no, record_offset)\n){engine}"
        ),
    ];
    if dialect != Dialect::MySql {
        statements.push(format!(
            "CREATE INDEX IF NOT EXISTS {age_index} ON {inbox} (consumer_group, processed_at)"
        ));
    }
    statements
}

/// The statements an inbox consumer runs, per dialect, built once from validated names.
#[derive(Debug, Clone)]
pub struct InboxStatements {
    /// The dialect they are written for.
    pub dialect: Dialect,
    /// Records an event as processed unless it was: (consumer_group, ce_id); 1 row affected
    /// when new, 0 for a duplicate. A concurrent insert of the same id waits for the other
    /// transaction, so two consumers never both see it as new.
    pub insert_processed: Statement,
    /// Sets a record aside unless it already was (same group and position): (consumer_group,
    /// topic, partition_no i32, record_offset i64, ce_id text, '' for none, record_key opt
    /// bytes, record_value opt bytes, headers text, reason text).
    pub insert_dead_letter: Statement,
    /// Deletes up to a batch of a group's rows older than some seconds: (consumer_group,
    /// seconds i64); repeat while it deletes a full batch ([`Self::purge_batch`]).
    pub purge: Statement,
    /// The keys a group dead-lettered: (consumer_group) -> (topic text, record_key bytes).
    pub select_dead_letter_keys: Query<(String, Vec<u8>)>,
}

impl InboxStatements {
    /// The inbox statements for `dialect` and `names`.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        let p = |n| dialect.placeholder(n);
        let inbox = names.qualified(dialect, Table::Inbox);
        let dead = names.qualified(dialect, Table::InboxDeadLetters);
        let (insert, ignore_suffix) = match dialect {
            Dialect::MySql => ("INSERT IGNORE INTO", ""),
            Dialect::Postgres | Dialect::Sqlite => ("INSERT INTO", " ON CONFLICT DO NOTHING"),
        };
        let cutoff = match dialect {
            Dialect::Postgres => format!(
                "now() - make_interval(secs => CAST({} AS DOUBLE PRECISION))",
                p(2)
            ),
            Dialect::MySql => "NOW(6) - INTERVAL ? SECOND".to_owned(),
            Dialect::Sqlite => {
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ? || ' seconds')".to_owned()
            }
        };
        let purge = match dialect {
            Dialect::MySql => format!(
                "DELETE FROM {inbox} WHERE consumer_group = ? AND processed_at < {cutoff} LIMIT {PURGE_BATCH}"
            ),
            Dialect::Postgres | Dialect::Sqlite => format!(
                "DELETE FROM {inbox} WHERE (consumer_group, ce_id) IN (SELECT consumer_group, ce_id FROM {inbox} \
                 WHERE consumer_group = {} AND processed_at < {cutoff} LIMIT {PURGE_BATCH})",
                p(1)
            ),
        };
        Self {
            dialect,
            insert_processed: Statement::new(format!(
                "{insert} {inbox} (consumer_group, ce_id) VALUES ({}, {}){ignore_suffix}",
                p(1),
                p(2)
            )),
            insert_dead_letter: Statement::new(format!(
                "{insert} {dead} (consumer_group, topic, partition_no, record_offset, ce_id, record_key, \
                 record_value, headers, reason) VALUES ({}, {}, {}, {}, NULLIF({}, ''), {}, {}, {}, {}){ignore_suffix}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9)
            )),
            purge: Statement::new(purge),
            select_dead_letter_keys: Query::new(format!(
                "SELECT DISTINCT topic, record_key FROM {dead} WHERE consumer_group = {} AND record_key IS NOT NULL",
                p(1)
            )),
        }
    }

    /// Rows one [`purge`](Self::purge) deletes at most.
    pub fn purge_batch(&self) -> usize {
        PURGE_BATCH
    }
}
