//! Every SQL statement the outbox runs, per dialect, built once from validated table names.
//!
//! The sqlx and diesel back ends both run these texts, so they behave (and write) the same.
//! Parameters are numbered in the order documented on each field.

mod migrate;
mod relay;
mod schema;

pub use migrate::{MigrationLock, MigrationStatements};
pub use relay::{AckInOneStatements, RelayStatements, StrictOrderStatements};
pub use schema::SchemaStatements;

use super::{Dialect, SqlValue, Table, TableNames};
use crate::wal::WalStatements;

/// Rows per insert statement.
const ROWS_PER_INSERT: usize = 1000;

/// The statements for one dialect and set of table names.
#[derive(Debug, Clone)]
pub struct Statements {
    /// The dialect they are written for.
    pub dialect: Dialect,
    /// The schema registry's statements.
    pub schema: SchemaStatements,
    /// The migration runner's statements.
    pub migrations: MigrationStatements,

    /// The relay's statements: read, acknowledge, failures, lease, status.
    pub relay: RelayStatements,
    /// Wakes listening relays when the transaction commits: (channel). PostgreSQL only
    /// (LISTEN/NOTIFY); `None` for the other dialects.
    pub notify: Option<String>,
    /// The one-row insert, built once: most publishes insert one event.
    insert_one: String,

    names: TableNames,
}

/// One statement of a publish (see [`Statements::publish`]).
#[derive(Debug, Clone)]
pub struct PublishStatement<'a> {
    /// What it does, as its error names it (`"publish"`, `"notify relays"`).
    pub operation: &'static str,
    /// The SQL text.
    pub sql: std::borrow::Cow<'a, str>,
    /// Its parameters, in placeholder order.
    pub params: Vec<SqlValue>,
}

/// Where a writer's publish goes (see [`Statements::publish_to`]).
#[derive(Debug, Clone)]
pub enum PublishTarget {
    /// Insert rows into the events table; with `notify`, wake listening relays (PostgreSQL).
    Table {
        /// Whether to NOTIFY listening relays at commit.
        notify: bool,
    },
    /// WAL mode (PostgreSQL): emit each event as a transactional logical message.
    Wal(WalStatements),
}

impl Statements {
    /// Builds every statement.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        let d = dialect;
        let p = |n: usize| d.placeholder(n);
        Self {
            dialect,
            schema: SchemaStatements::new(dialect, names),
            migrations: MigrationStatements::new(dialect, names),

            relay: RelayStatements::new(dialect, names),
            notify: match d {
                Dialect::Postgres => Some(format!("SELECT CAST(pg_notify({}, '') AS TEXT)", p(1))),
                Dialect::MySql | Dialect::Sqlite => None,
            },
            insert_one: super::insert_events_sql(d, names, 1),
            names: names.clone(),
        }
    }

    /// The inserts that write `rows`: one statement per 1,000 rows (8 parameters a row stays
    /// under every dialect's parameter limit), with its parameters.
    ///
    /// # Errors
    ///
    /// Each item: [`Error::SchemaIdOutOfRange`](crate::Error::SchemaIdOutOfRange) for a chunk
    /// holding a row whose schema id the column cannot store.
    pub fn insert_events<'a>(
        &'a self,
        rows: &'a [crate::NewOutboxRow],
    ) -> impl Iterator<Item = crate::Result<(std::borrow::Cow<'a, str>, Vec<SqlValue>)>> + 'a {
        rows.chunks(ROWS_PER_INSERT).map(move |chunk| {
            let sql = match chunk.len() {
                1 => std::borrow::Cow::Borrowed(self.insert_one.as_str()),
                n => {
                    std::borrow::Cow::Owned(super::insert_events_sql(self.dialect, &self.names, n))
                }
            };
            let mut params = Vec::with_capacity(chunk.len() * 8);
            for row in chunk {
                params.extend(row.insert_params()?);
            }
            Ok((sql, params))
        })
    }

    /// Every statement that publishes `rows` in the caller's transaction, in the order to run
    /// them: the inserts (as [`insert_events`](Self::insert_events)), then, when `notify` is
    /// asked for and the dialect has it, the NOTIFY that wakes listening relays. Both writers
    /// run exactly this list, so what a publish writes is decided in one place.
    ///
    /// # Errors
    ///
    /// Each item: as [`insert_events`](Self::insert_events).
    pub fn publish<'a>(
        &'a self,
        rows: &'a [crate::NewOutboxRow],
        notify: bool,
    ) -> impl Iterator<Item = crate::Result<PublishStatement<'a>>> + 'a {
        let inserts = self.insert_events(rows).map(|s| {
            s.map(|(sql, params)| PublishStatement {
                operation: "publish",
                sql,
                params,
            })
        });
        let wake = self.notify.as_deref().filter(|_| notify).map(|sql| {
            Ok(PublishStatement {
                operation: "notify relays",
                sql: std::borrow::Cow::Borrowed(sql),
                params: vec![SqlValue::Text(self.notify_channel())],
            })
        });
        inserts.chain(wake)
    }

    /// Every statement that publishes `rows` to `target`, in the order to run them: the
    /// inserts and NOTIFY of [`publish`](Self::publish), or WAL mode's logical messages
    /// stamped with the current time. Every writer runs exactly this list, so the choice is
    /// made in one place; all events are encoded before the first statement runs.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish) and [`WalStatements::emit`].
    pub fn publish_to<'a>(
        &'a self,
        target: &'a PublishTarget,
        rows: &'a [crate::NewOutboxRow],
    ) -> crate::Result<Vec<PublishStatement<'a>>> {
        match target {
            PublishTarget::Table { notify } => self.publish(rows, *notify).collect(),
            PublishTarget::Wal(wal) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                wal.emit(rows, now_ms).collect()
            }
        }
    }

    /// The LISTEN/NOTIFY channel relays of these tables listen on (PostgreSQL).
    pub fn notify_channel(&self) -> String {
        self.names.name(Table::Events).to_string()
    }

    /// The table names the statements use.
    pub fn names(&self) -> &TableNames {
        &self.names
    }
}
