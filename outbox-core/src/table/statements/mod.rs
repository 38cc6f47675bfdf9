//! Every SQL statement the outbox runs, per dialect, built once from validated table names.
//!
//! The sqlx and diesel back ends both run these texts, so they behave (and write) the same.
//! Parameters are numbered in the order documented on each field.

mod migrate;
mod relay;
mod schema;

pub use migrate::{MigrationLock, MigrationStatements};
pub use relay::{RelayStatements, StrictOrderStatements};
pub use schema::SchemaStatements;

use super::{Dialect, SqlValue, Table, TableNames};

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
    /// PostgreSQL only: wakes listening relays when the transaction commits: (channel).
    pub notify: String,
    /// The one-row insert, built once: most publishes insert one event.
    insert_one: String,

    names: TableNames,
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
                Dialect::Postgres => format!("SELECT CAST(pg_notify({}, '') AS TEXT)", p(1)),
                _ => String::new(),
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

    /// The LISTEN/NOTIFY channel relays of these tables listen on (PostgreSQL).
    pub fn notify_channel(&self) -> String {
        self.names.name(Table::Events).to_string()
    }

    /// The table names the statements use.
    pub fn names(&self) -> &TableNames {
        &self.names
    }
}
