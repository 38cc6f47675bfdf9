//! The migration runner's statements, per dialect, typed by what they return.

use super::super::{Dialect, Migration, SqlValue, Table, TableNames};
use crate::sql::{Query, Statement};

/// How a dialect serializes concurrent migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationLock {
    /// Run `lock` (with `key`) inside the migration transaction; it ends with it (PostgreSQL).
    InTransaction {
        /// The lock statement.
        lock: Statement,
        /// Its parameter.
        key: SqlValue,
    },
    /// Take a session lock before and release it after; DDL is not transactional (MySQL).
    Session {
        /// The lock statement.
        lock: Statement,
        /// The unlock statement.
        unlock: Statement,
        /// Their parameter.
        key: SqlValue,
    },
    /// A write transaction is lock enough (SQLite).
    WriteTransaction,
}

/// Which migrations a [`MigrationStatements`] applies; both sets are recorded in
/// `<prefix>_migrations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MigrationSet {
    /// The outbox, schema registry and relay tables (versions 1, 2, ...).
    Outbox,
    /// The inbox consumer's tables (versions 1001, 1002, ...).
    Inbox,
}

/// The statements that create and upgrade the outbox tables (or, built with
/// [`inbox`](Self::inbox), the inbox consumer's), recording applied versions in
/// `<prefix>_migrations`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrationStatements {
    /// Creates the bookkeeping table if missing; run before [`select`](Self::select).
    pub create_table: Statement,
    /// Applied migration versions: () -> version.
    pub select: Query<i64>,
    /// Records a migration: (version i64, description text).
    pub insert: Statement,
    /// How concurrent migrations are serialized.
    pub lock: MigrationLock,
    dialect: Dialect,
    names: TableNames,
    set: MigrationSet,
}

impl MigrationStatements {
    /// The statements for `dialect` on the outbox tables of `names`.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        Self::of_set(dialect, names, MigrationSet::Outbox)
    }

    /// The statements for `dialect` on the inbox consumer's tables of `names`
    /// (`<prefix>_inbox`, `<prefix>_inbox_dead_letters`): versions from
    /// [`INBOX_MIGRATIONS_FROM`](super::super::INBOX_MIGRATIONS_FROM) on, in the same
    /// bookkeeping table and under the same lock as the outbox's, so one database can hold both.
    pub fn inbox(dialect: Dialect, names: &TableNames) -> Self {
        Self::of_set(dialect, names, MigrationSet::Inbox)
    }

    fn of_set(dialect: Dialect, names: &TableNames, set: MigrationSet) -> Self {
        let table = names.qualified(dialect, Table::Migrations);
        let p = |n| dialect.placeholder(n);
        let key = SqlValue::Text(format!("outbox-migrate:{}", names.name(Table::Events)));
        let lock = match dialect {
            Dialect::Postgres => MigrationLock::InTransaction {
                lock: Statement::new(
                    "SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)".to_owned(),
                ),
                key,
            },
            Dialect::MySql => MigrationLock::Session {
                lock: Statement::new("SELECT GET_LOCK(?, 60)".to_owned()),
                unlock: Statement::new("SELECT RELEASE_LOCK(?)".to_owned()),
                key,
            },
            Dialect::Sqlite => MigrationLock::WriteTransaction,
        };
        Self {
            create_table: Statement::new(super::super::ddl::migrations_table(dialect, names)),
            select: Query::new(format!("SELECT version AS value FROM {table}")),
            insert: Statement::new(format!(
                "INSERT INTO {table} (version, description) VALUES ({}, {})",
                p(1),
                p(2)
            )),
            lock,
            dialect,
            names: names.clone(),
            set,
        }
    }

    /// Every statement still to run, in order, given the applied versions: each pending
    /// migration's DDL followed by the insert that records it.
    pub fn pending(&self, applied: &[i64]) -> Vec<(Statement, Vec<SqlValue>)> {
        let migrations = match self.set {
            MigrationSet::Outbox => super::super::ddl::migrations(self.dialect, &self.names),
            MigrationSet::Inbox => super::super::inbox_migrations(self.dialect, &self.names),
        };
        migrations
            .into_iter()
            .filter(|m| !applied.contains(&m.version))
            .flat_map(|m| {
                let record = (
                    self.insert.clone(),
                    vec![
                        SqlValue::I64(m.version),
                        SqlValue::Text(m.description.to_owned()),
                    ],
                );
                m.statements
                    .into_iter()
                    .map(|sql| (Statement::new(sql), Vec::new()))
                    .chain(std::iter::once(record))
            })
            .collect()
    }

    /// A statement recording `migrations` as applied, doing nothing for those already
    /// recorded: what the diesel CLI's SQL files run, so a relay or writer that migrates later
    /// does not apply them again.
    pub fn record(&self, migrations: &[Migration]) -> String {
        let table = self.names.qualified(self.dialect, Table::Migrations);
        let values: Vec<String> = migrations
            .iter()
            .map(|m| format!("({}, '{}')", m.version, m.description.replace('\'', "''")))
            .collect();
        let values = values.join(", ");
        match self.dialect {
            Dialect::MySql => {
                format!("INSERT IGNORE INTO {table} (version, description) VALUES {values}")
            }
            _ => format!(
                "INSERT INTO {table} (version, description) VALUES {values} \
                 ON CONFLICT (version) DO NOTHING"
            ),
        }
    }
}
