//! Every SQL statement the outbox runs, per dialect, built once from validated table names.
//!
//! The sqlx and diesel back ends both run these texts, so they behave (and write) the same.
//! Parameters are numbered in the order documented on each field.

use super::{Dialect, SqlValue, Table, TableNames};

/// How a dialect serializes concurrent migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationLock {
    /// Run `lock` (with `key`) inside the migration transaction; it ends with it (PostgreSQL).
    InTransaction {
        /// The lock statement.
        lock: String,
        /// Its parameter.
        key: SqlValue,
    },
    /// Take a session lock before and release it after; DDL is not transactional (MySQL).
    Session {
        /// The lock statement.
        lock: String,
        /// The unlock statement.
        unlock: String,
        /// Their parameter.
        key: SqlValue,
    },
    /// A write transaction is lock enough (SQLite).
    WriteTransaction,
}

/// Rows per insert statement.
const ROWS_PER_INSERT: usize = 1000;

/// The statements for one dialect and set of table names.
#[derive(Debug, Clone)]
pub struct Statements {
    /// The dialect they are written for.
    pub dialect: Dialect,
    /// Applied migration versions: () -> (value i64).
    pub select_migrations: String,
    /// Records a migration: (version i64, description text).
    pub insert_migration: String,

    /// A subject's versions, oldest first: (subject) -> (id i32, version i32, schema_json text).
    pub select_versions: String,
    /// One version of a subject: (subject, version i32) -> (id i32, version i32, schema_json).
    pub select_version: String,
    /// A subject's latest version: (subject) -> (id i32, version i32, schema_json).
    pub select_latest_version: String,
    /// The version of a subject holding a schema: (subject, fingerprint) -> (id i32,
    /// version i32, schema_json).
    pub select_version_by_fingerprint: String,
    /// A subject's version numbers, oldest first: (subject) -> (value i32).
    pub select_version_numbers: String,
    /// The global id of a schema: (fingerprint) -> (value i32).
    pub select_schema_id: String,
    /// Allocates the next global id for a new schema: (fingerprint).
    pub insert_schema_id: String,
    /// Stores a version: (id i32, subject, version i32, schema_json, fingerprint).
    pub insert_version: String,
    /// A schema by global id: (id i32) -> (value text).
    pub select_schema_by_id: String,
    /// Every subject with a live version: () -> (value text).
    pub select_subjects: String,
    /// Every version of a subject, soft-deleted ones included, oldest first: (subject) ->
    /// (version i32, id i32, deleted i32).
    pub select_version_states: String,
    /// The number after every version a subject ever had (soft-deleted included): (subject)
    /// -> (value i64).
    pub select_next_version: String,
    /// Soft-deletes a version: (subject, version i32).
    pub soft_delete_version: String,
    /// Deletes a soft-deleted version for good: (subject, version i32).
    pub hard_delete_version: String,
    /// Restores a soft-deleted version holding a schema: (subject, fingerprint).
    pub restore_version: String,
    /// The live versions holding a schema id: (id i32) -> (subject, version i32).
    pub select_id_holders: String,
    /// Rows of the schema table holding an id: (id i32) -> (value i64).
    pub count_schema_holders: String,
    /// Unpublished outbox rows and dead letters carrying a schema id: (id i32, id i32) ->
    /// (value i64).
    pub count_rows_with_schema: String,
    /// A compatibility setting: (subject, '' for global) -> (value text).
    pub select_compatibility: String,
    /// Sets a compatibility: (subject, compatibility).
    pub upsert_compatibility: String,
    /// Deletes a compatibility setting: (subject).
    pub delete_compatibility: String,

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
        let (events, schemas, ids, config) = (
            t(Table::Events),
            t(Table::Schemas),
            t(Table::SchemaIds),
            t(Table::SubjectConfig),
        );
        let (attempts, dead, leases, migrations) = (
            t(Table::Attempts),
            t(Table::DeadLetters),
            t(Table::Leases),
            t(Table::Migrations),
        );
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
        let upsert_compatibility = match d {
            Dialect::MySql => format!(
                "INSERT INTO {config} (subject, compatibility) VALUES ({}, {}) \
                 ON DUPLICATE KEY UPDATE compatibility = VALUES(compatibility)",
                p(1),
                p(2)
            ),
            _ => format!(
                "INSERT INTO {config} (subject, compatibility) VALUES ({}, {}) \
                 ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                p(1),
                p(2)
            ),
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
            select_migrations: format!("SELECT version AS value FROM {migrations}"),
            insert_migration: format!(
                "INSERT INTO {migrations} (version, description) VALUES ({}, {})",
                p(1),
                p(2)
            ),
            select_versions: format!(
                "SELECT id, version, schema_json FROM {schemas} WHERE subject = {} AND deleted = 0 \
                 ORDER BY version",
                p(1)
            ),
            select_version: format!(
                "SELECT id, version, schema_json FROM {schemas} WHERE subject = {} AND version = {} \
                 AND deleted = 0",
                p(1),
                p(2)
            ),
            select_latest_version: format!(
                "SELECT id, version, schema_json FROM {schemas} WHERE subject = {} AND deleted = 0 \
                 ORDER BY version DESC LIMIT 1",
                p(1)
            ),
            select_version_by_fingerprint: format!(
                "SELECT id, version, schema_json FROM {schemas} WHERE subject = {} AND fingerprint = {} \
                 AND deleted = 0",
                p(1),
                p(2)
            ),
            select_version_numbers: format!(
                "SELECT version AS value FROM {schemas} WHERE subject = {} AND deleted = 0 \
                 ORDER BY version",
                p(1)
            ),
            select_schema_id: format!("SELECT id AS value FROM {ids} WHERE fingerprint = {}", p(1)),
            insert_schema_id: format!(
                "INSERT INTO {ids} (id, fingerprint) SELECT COALESCE(MAX(id), 0) + 1, {} FROM {ids}",
                p(1)
            ),
            insert_version: format!(
                "INSERT INTO {schemas} (id, subject, version, schema_json, fingerprint) \
                 VALUES ({}, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            ),
            select_schema_by_id: format!(
                "SELECT schema_json AS value FROM {schemas} WHERE id = {} ORDER BY subject, version LIMIT 1",
                p(1)
            ),
            select_subjects: format!(
                "SELECT DISTINCT subject AS value FROM {schemas} WHERE deleted = 0"
            ),
            select_version_states: format!(
                "SELECT version, id, deleted FROM {schemas} WHERE subject = {} ORDER BY version",
                p(1)
            ),
            select_next_version: format!(
                "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS {bigint}) AS value FROM {schemas} \
                 WHERE subject = {}",
                p(1)
            ),
            soft_delete_version: format!(
                "UPDATE {schemas} SET deleted = 1 WHERE subject = {} AND version = {} AND deleted = 0",
                p(1),
                p(2)
            ),
            hard_delete_version: format!(
                "DELETE FROM {schemas} WHERE subject = {} AND version = {} AND deleted = 1",
                p(1),
                p(2)
            ),
            restore_version: format!(
                "UPDATE {schemas} SET deleted = 0 WHERE subject = {} AND fingerprint = {} AND deleted = 1",
                p(1),
                p(2)
            ),
            select_id_holders: format!(
                "SELECT subject, version FROM {schemas} WHERE id = {} AND deleted = 0 \
                 ORDER BY subject, version",
                p(1)
            ),
            count_schema_holders: format!(
                "SELECT COUNT(*) AS value FROM {schemas} WHERE id = {}",
                p(1)
            ),
            count_rows_with_schema: format!(
                "SELECT CAST((SELECT COUNT(*) FROM {events} WHERE schema_id = {}) + \
                 (SELECT COUNT(*) FROM {dead} WHERE schema_id = {}) AS {bigint}) AS value",
                p(1),
                p(2)
            ),
            select_compatibility: format!(
                "SELECT compatibility AS value FROM {config} WHERE subject = {}",
                p(1)
            ),
            upsert_compatibility,
            delete_compatibility: format!("DELETE FROM {config} WHERE subject = {}", p(1)),

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

    /// How concurrent migrations of these tables are serialized.
    pub fn migration_lock(&self) -> MigrationLock {
        let key = SqlValue::Text(format!("outbox-migrate:{}", self.names.name(Table::Events)));
        match self.dialect {
            Dialect::Postgres => MigrationLock::InTransaction {
                lock: "SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)".to_owned(),
                key,
            },
            Dialect::MySql => MigrationLock::Session {
                lock: "SELECT GET_LOCK(?, 60)".to_owned(),
                unlock: "SELECT RELEASE_LOCK(?)".to_owned(),
                key,
            },
            Dialect::Sqlite => MigrationLock::WriteTransaction,
        }
    }

    /// The statement that creates the migrations bookkeeping table; run it before reading
    /// [`select_migrations`](Self::select_migrations).
    pub fn create_migrations_table(&self) -> String {
        super::ddl::migrations_table(self.dialect, &self.names)
    }

    /// A statement recording `migrations` as applied, doing nothing for those already
    /// recorded: what the diesel CLI's SQL files run, so a relay or writer that migrates later
    /// does not apply them again.
    pub fn record_migrations(&self, migrations: &[super::Migration]) -> String {
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

    /// Every statement still to run, in order, given the applied versions: each pending
    /// migration's DDL followed by the insert that records it.
    pub fn pending_migrations(&self, applied: &[i64]) -> Vec<(String, Vec<SqlValue>)> {
        super::ddl::migrations(self.dialect, &self.names)
            .into_iter()
            .filter(|m| !applied.contains(&m.version))
            .flat_map(|m| {
                let record = (
                    self.insert_migration.clone(),
                    vec![
                        SqlValue::I64(m.version),
                        SqlValue::Text(m.description.to_owned()),
                    ],
                );
                m.statements
                    .into_iter()
                    .map(|sql| (sql, Vec::new()))
                    .chain(std::iter::once(record))
            })
            .collect()
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
