//! The outbox table contract: names, DDL per dialect, and the SQL both writers share.
//!
//! `outbox_events` is the hot table: writers insert, the relay deletes what Kafka acknowledged.
//! Columns a writer does not set (`id`, `headers`, `created_at`, and on PostgreSQL `txid`)
//! have database defaults, so any writer, in any language, can insert a valid row with plain
//! SQL. Relay bookkeeping (attempts, dead letters, leases) lives in tables of its own.

mod ddl;
mod ident;
mod inbox;
mod retry;
mod sink;
mod statements;
mod value;

pub(crate) use ddl::now_default;
pub use ddl::{Migration, migrations};
pub use ident::Identifier;
pub use inbox::{INBOX_MIGRATIONS_FROM, InboxStatements, MAX_INBOX_ID_BYTES, inbox_migrations};
pub use retry::DbFailure;
pub use sink::{ColumnKind, SinkColumn, SinkTable};
pub use statements::{
    AckInOneStatements, MigrationLock, MigrationStatements, PublishStatement, PublishTarget,
    RelayStatements, SchemaStatements, Statements, StrictOrderStatements,
};
pub use value::SqlValue;

use crate::Result;

/// The SQL dialects the outbox supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL 13+ (for `xid8`).
    Postgres,
    /// MySQL 8 and MariaDB 10.5+.
    MySql,
    /// SQLite 3.35+.
    Sqlite,
}

impl Dialect {
    /// `ident` quoted for this dialect. Identifiers are validated, so quoting cannot be escaped.
    pub fn quote(self, ident: &Identifier) -> String {
        match self {
            Self::MySql => format!("`{ident}`"),
            Self::Postgres | Self::Sqlite => format!("\"{ident}\""),
        }
    }

    /// The bind placeholder for the `n`-th parameter (from 1).
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql | Self::Sqlite => "?".to_owned(),
        }
    }
}

/// The tables of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The events waiting for the relay (`outbox_events`).
    Events,
    /// Schema versions per subject (`outbox_schemas`).
    Schemas,
    /// Global schema ids, one per distinct schema (`outbox_schema_ids`).
    SchemaIds,
    /// Compatibility per subject and globally (`outbox_subject_config`).
    SubjectConfig,
    /// Failed delivery attempts per event (`outbox_attempts`).
    Attempts,
    /// Events that failed permanently, with their error (`outbox_dead_letters`).
    DeadLetters,
    /// Leader leases of relays (`outbox_leases`).
    Leases,
    /// Applied migrations (`outbox_migrations`), the outbox's and the inbox's.
    Migrations,
    /// Tables captured with triggers (`outbox_captures`).
    Captures,
    /// PostgreSQL WAL mode: the identity of the relay's logical replication slot
    /// (`outbox_wal_slot`).
    WalSlot,
    /// Query liberation: the checkpoint (last key done, rows done) of each bulk or
    /// incremental load (`outbox_liberations`).
    Liberations,
    /// Events an inbox consumer group has processed (`outbox_inbox`).
    Inbox,
    /// Records an inbox consumer set aside, with their reason (`outbox_inbox_dead_letters`).
    InboxDeadLetters,
}

impl Table {
    /// Every table of the outbox side (the inbox's are in [`Table::INBOX`]).
    pub const ALL: [Self; 11] = [
        Self::Events,
        Self::Schemas,
        Self::SchemaIds,
        Self::SubjectConfig,
        Self::Attempts,
        Self::DeadLetters,
        Self::Leases,
        Self::Migrations,
        Self::Captures,
        Self::WalSlot,
        Self::Liberations,
    ];

    /// The tables of the inbox consumer; they share [`Table::Migrations`] with the outbox.
    pub const INBOX: [Self; 2] = [Self::Inbox, Self::InboxDeadLetters];

    fn suffix(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Schemas => "schemas",
            Self::SchemaIds => "schema_ids",
            Self::SubjectConfig => "subject_config",
            Self::Attempts => "attempts",
            Self::DeadLetters => "dead_letters",
            Self::Leases => "leases",
            Self::Migrations => "migrations",
            Self::Captures => "captures",
            Self::WalSlot => "wal_slot",
            Self::Liberations => "liberations",
            Self::Inbox => "inbox",
            Self::InboxDeadLetters => "inbox_dead_letters",
        }
    }
}

/// The names of the outbox tables: `<prefix>_<table>` (prefix `outbox` by default),
/// optionally in a database schema (PostgreSQL) or database (MySQL).
///
/// # Examples
///
/// ```
/// use outbox_core::table::{Dialect, Table, TableNames};
///
/// let names = TableNames::with_prefix("billing_outbox")?.in_schema("app")?;
/// assert_eq!(names.qualified(Dialect::Postgres, Table::Events), r#""app"."billing_outbox_events""#);
/// assert!(TableNames::with_prefix("x\"; drop table users; --").is_err());
/// # Ok::<(), outbox_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableNames {
    prefix: Identifier,
    schema: Option<Identifier>,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            prefix: Identifier("outbox".to_owned()),
            schema: None,
        }
    }
}

impl TableNames {
    /// Tables named `<prefix>_events`, `<prefix>_schemas`, ...
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`](crate::Error::InvalidIdentifier) when a resulting name is
    /// not a safe identifier.
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        let prefix = Identifier::new(prefix)?;
        for table in Table::ALL.into_iter().chain(Table::INBOX) {
            Identifier::new(&format!("{prefix}_{}", table.suffix()))?;
        }
        Ok(Self {
            prefix,
            schema: None,
        })
    }

    /// Puts the tables in a database schema (PostgreSQL) or database (MySQL). SQLite ignores it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`](crate::Error::InvalidIdentifier) for an unsafe name.
    pub fn in_schema(mut self, schema: &str) -> Result<Self> {
        self.schema = Some(Identifier::new(schema)?);
        Ok(self)
    }

    /// The database schema, if one was set.
    pub fn schema(&self) -> Option<&Identifier> {
        self.schema.as_ref()
    }

    /// The unquoted name of a table.
    pub fn name(&self, table: Table) -> Identifier {
        Identifier(format!("{}_{}", self.prefix, table.suffix()))
    }

    /// The quoted, schema-qualified name of a table, ready for SQL.
    pub fn qualified(&self, dialect: Dialect, table: Table) -> String {
        let name = dialect.quote(&self.name(table));
        match (&self.schema, dialect) {
            (Some(schema), Dialect::Postgres | Dialect::MySql) => {
                format!("{}.{name}", dialect.quote(schema))
            }
            _ => name,
        }
    }
}

/// The columns a writer sets on `outbox_events`, in the order of [`insert_events_sql`]'s
/// parameters.
pub const EVENT_INSERT_COLUMNS: [&str; 8] = [
    "event_id",
    "topic",
    "event_key",
    "event_type",
    "schema_id",
    "content_type",
    "payload",
    "headers",
];

/// One `INSERT` of `rows` events (parameters row by row, in [`EVENT_INSERT_COLUMNS`] order),
/// the statement sqlx and diesel writers both run, so their rows are identical.
///
/// # Panics
///
/// If `rows` is 0.
pub fn insert_events_sql(dialect: Dialect, names: &TableNames, rows: usize) -> String {
    assert!(rows > 0, "an insert needs at least one row");
    let width = EVENT_INSERT_COLUMNS.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        names.qualified(dialect, Table::Events),
        EVENT_INSERT_COLUMNS.join(", ")
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (col, column) in EVENT_INSERT_COLUMNS.iter().enumerate() {
            if col > 0 {
                sql.push_str(", ");
            }
            let placeholder = dialect.placeholder(row * width + col + 1);
            if dialect == Dialect::Postgres && *column == "event_id" {
                // Bound as text by both writers; the column is a native UUID.
                sql.push_str(&format!("CAST({placeholder} AS UUID)"));
            } else {
                sql.push_str(&placeholder);
            }
        }
        sql.push(')');
    }
    sql
}
