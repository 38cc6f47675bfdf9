//! Every SQL statement the outbox runs, per dialect, built once from validated table names.
//!
//! The sqlx and diesel back ends both run these texts, so they behave (and write) the same.
//! Parameters are numbered in the order documented on each field.

mod migrate;
mod schema;

pub use migrate::{MigrationLock, MigrationStatements};
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

    /// The next rows after an id, in id order: (after i64, limit i64) -> record columns
    /// (`id`, `event_id` as text, `topic`, `event_key`, `event_type`, `schema_id`,
    /// `content_type`, `payload`, `headers`, `created_at` in ms or NULL when not finite).
    pub claim: String,
    /// The next rows after an id, up to a horizon: (after i64, horizon i64, limit i64) ->
    /// record columns.
    pub claim_up_to: String,
    /// PostgreSQL only: the last id drawn from the events sequence: () -> (i64, nullable).
    pub select_last_id: String,
    /// PostgreSQL only: an xid for this statement, greater than every xid assigned before it:
    /// () -> (i64).
    pub select_new_xid: String,
    /// PostgreSQL only: the oldest transaction still running (the snapshot's xmin): () -> (i64).
    pub select_xmin: String,
    /// Counts a failed attempt: (event_id, error).
    pub upsert_attempt: String,
    /// Attempts so far: (event_id) -> (i32).
    pub select_attempts: String,
    /// Copies a row to the dead letters: (id i64, attempts i32, error).
    pub insert_dead_letter: String,
    /// Deletes one row: (id i64).
    pub delete_event: String,
    /// Deletes one event's attempts: (event_id).
    pub delete_attempts: String,
    /// Dead letters, oldest first: (limit i64) -> record columns, attempts i32, error.
    pub select_dead_letters: String,
    /// Puts a dead letter back in the outbox with its original id: (id i64).
    pub requeue_dead_letter: String,
    /// Deletes a dead letter: (id i64).
    pub delete_dead_letter: String,
    /// Keys with dead letters and their smallest id: () -> (topic, event_key nullable bytes,
    /// id i64).
    pub select_blocked_keys: String,
    /// Backlog and lag: () -> (count i64, age of the oldest row in ms i64 nullable).
    pub select_backlog: String,
    /// Dead letter count: () -> (i64).
    pub count_dead_letters: String,
    /// A lease, locked: (name) -> (holder, fencing_token i64, live 0/1 i64).
    pub select_lease: String,
    /// A new lease: (name, holder, ttl ms i64).
    pub insert_lease: String,
    /// Extends a lease: (ttl ms i64, name).
    pub renew_lease: String,
    /// Hands an expired lease over: (holder, ttl ms i64, name).
    pub take_lease: String,
    /// Ends a lease: (name, holder).
    pub release_lease: String,
    /// The live holder of a lease: (name) -> (holder).
    pub select_leader: String,
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
        let t = |table| names.qualified(d, table);
        let events = t(Table::Events);
        let (attempts, dead, leases) =
            (t(Table::Attempts), t(Table::DeadLetters), t(Table::Leases));
        let uuid_param = |n: usize| match d {
            Dialect::Postgres => format!("CAST({} AS UUID)", p(n)),
            _ => p(n),
        };
        let uuid_text = match d {
            Dialect::Postgres => "CAST(event_id AS TEXT)",
            _ => "event_id",
        };
        // NULL, not an error, for a value that is no point in time ('infinity' on
        // PostgreSQL, text that is not a date on SQLite): one such row must not fail a claim.
        let created_ms = match d {
            Dialect::Postgres => {
                "CASE WHEN isfinite(created_at) THEN CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT) END"
            }
            Dialect::MySql => "CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED)",
            Dialect::Sqlite => "CAST((julianday(created_at) - 2440587.5) * 86400000 AS INTEGER)",
        };
        let record_columns = format!(
            "id, {uuid_text}, topic, event_key, event_type, schema_id, content_type, payload, \
             headers, {created_ms}"
        );
        let now = match d {
            Dialect::Postgres => "clock_timestamp()".to_owned(),
            Dialect::MySql => "CURRENT_TIMESTAMP(6)".to_owned(),
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".to_owned(),
        };
        let now_plus_ms = |n: usize| match d {
            Dialect::Postgres => format!("clock_timestamp() + {} * INTERVAL '1 millisecond'", p(n)),
            Dialect::MySql => format!(
                "TIMESTAMPADD(MICROSECOND, {} * 1000, CURRENT_TIMESTAMP(6))",
                p(n)
            ),
            Dialect::Sqlite => format!(
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({} / 1000.0) || ' seconds')",
                p(n)
            ),
        };
        let bigint = match d {
            Dialect::MySql => "SIGNED",
            _ => "BIGINT",
        };
        let for_update = match d {
            Dialect::Sqlite => "",
            _ => " FOR UPDATE",
        };
        let oldest_ms = match d {
            // Infinite (PostgreSQL) and unparseable (SQLite) values are left out of the lag.
            Dialect::Postgres => {
                "CAST(EXTRACT(EPOCH FROM clock_timestamp() - MIN(CASE WHEN isfinite(created_at) \
                 THEN created_at END)) * 1000 AS BIGINT)"
            }
            Dialect::MySql => {
                "CAST(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), CURRENT_TIMESTAMP(6)) / 1000 AS SIGNED)"
            }
            Dialect::Sqlite => {
                "CAST((julianday('now') - MIN(julianday(created_at))) * 86400000 AS INTEGER)"
            }
        };
        let upsert_attempt = match d {
            Dialect::MySql => format!(
                "INSERT INTO {attempts} (event_id, attempts, last_error) VALUES ({}, 1, {}) \
                 ON DUPLICATE KEY UPDATE attempts = attempts + 1, last_error = VALUES(last_error), \
                 updated_at = {now}",
                p(1),
                p(2)
            ),
            _ => format!(
                "INSERT INTO {attempts} (event_id, attempts, last_error) VALUES ({}, 1, {}) \
                 ON CONFLICT (event_id) DO UPDATE SET attempts = {attempts}.attempts + 1, \
                 last_error = excluded.last_error, updated_at = {now}",
                uuid_param(1),
                p(2)
            ),
        };
        // PostgreSQL's identity column takes an explicit id only when told to.
        let overriding = match d {
            Dialect::Postgres => " OVERRIDING SYSTEM VALUE",
            _ => "",
        };
        let event_columns = "event_id, topic, event_key, event_type, schema_id, content_type, payload, headers, created_at";
        let select_last_id = match d {
            Dialect::Postgres => format!(
                "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence('{}', 'id') AS regclass))",
                events.replace('\'', "''")
            ),
            _ => String::new(),
        };
        Self {
            dialect,
            schema: SchemaStatements::new(dialect, names),
            migrations: MigrationStatements::new(dialect, names),

            claim: format!(
                "SELECT {record_columns} FROM {events} WHERE id > {} ORDER BY id LIMIT {}",
                p(1),
                p(2)
            ),
            claim_up_to: format!(
                "SELECT {record_columns} FROM {events} WHERE id > {} AND id <= {} ORDER BY id LIMIT {}",
                p(1),
                p(2),
                p(3)
            ),
            select_last_id,
            select_new_xid: "SELECT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)".to_owned(),
            select_xmin:
                "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
                    .to_owned(),
            upsert_attempt,
            select_attempts: format!(
                "SELECT attempts FROM {attempts} WHERE event_id = {}",
                uuid_param(1)
            ),
            insert_dead_letter: format!(
                "INSERT INTO {dead} (id, {event_columns}, attempts, error) \
                 SELECT id, {event_columns}, {}, {} FROM {events} WHERE id = {}",
                p(1),
                p(2),
                p(3)
            ),
            delete_event: format!("DELETE FROM {events} WHERE id = {}", p(1)),
            delete_attempts: format!("DELETE FROM {attempts} WHERE event_id = {}", uuid_param(1)),
            select_dead_letters: format!(
                "SELECT {record_columns}, attempts, error FROM {dead} ORDER BY id LIMIT {}",
                p(1)
            ),
            requeue_dead_letter: format!(
                "INSERT INTO {events} (id, {event_columns}){overriding} SELECT id, {event_columns} \
                 FROM {dead} WHERE id = {}",
                p(1)
            ),
            delete_dead_letter: format!("DELETE FROM {dead} WHERE id = {}", p(1)),
            select_blocked_keys: format!(
                "SELECT topic, event_key, MIN(id) FROM {dead} GROUP BY topic, event_key"
            ),
            select_backlog: format!("SELECT COUNT(*), {oldest_ms} FROM {events}"),
            count_dead_letters: format!("SELECT COUNT(*) FROM {dead}"),
            select_lease: format!(
                "SELECT holder, fencing_token, CAST(CASE WHEN expires_at > {now} THEN 1 ELSE 0 END AS {bigint}) \
                 FROM {leases} WHERE name = {}{for_update}",
                p(1)
            ),
            insert_lease: format!(
                "INSERT INTO {leases} (name, holder, fencing_token, expires_at) VALUES ({}, {}, 1, {})",
                p(1),
                p(2),
                now_plus_ms(3)
            ),
            renew_lease: format!(
                "UPDATE {leases} SET expires_at = {} WHERE name = {}",
                now_plus_ms(1),
                p(2)
            ),
            take_lease: format!(
                "UPDATE {leases} SET holder = {}, fencing_token = fencing_token + 1, expires_at = {} \
                 WHERE name = {}",
                p(1),
                now_plus_ms(2),
                p(3)
            ),
            release_lease: format!(
                "UPDATE {leases} SET expires_at = {now} WHERE name = {} AND holder = {}",
                p(1),
                p(2)
            ),
            select_leader: format!(
                "SELECT holder FROM {leases} WHERE name = {} AND expires_at > {now}",
                p(1)
            ),
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

    /// The two statements that acknowledge `n` rows: delete their attempts, then the rows.
    /// Each takes the same `n` ids as parameters.
    pub fn ack(&self, n: usize) -> [String; 2] {
        let list = |offset: usize| {
            (1..=n)
                .map(|i| self.dialect.placeholder(offset + i))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let events = self.names.qualified(self.dialect, Table::Events);
        let attempts = self.names.qualified(self.dialect, Table::Attempts);
        [
            format!(
                "DELETE FROM {attempts} WHERE event_id IN (SELECT event_id FROM {events} WHERE id IN ({}))",
                list(0)
            ),
            format!("DELETE FROM {events} WHERE id IN ({})", list(0)),
        ]
    }
}
