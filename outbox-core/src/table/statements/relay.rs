//! The relay's statements per dialect: read, acknowledge, failures and dead letters, the
//! lease, status. Parameters are numbered in the order documented on each field.

use super::super::{Dialect, Table, TableNames};

/// The relay's statements for one dialect and set of table names.
///
/// Record columns, as [`read_after`](Self::read_after) returns them: `id` i64, `event_id` as
/// text, `topic`, `event_key` nullable bytes, `event_type`, `schema_id` nullable i32,
/// `content_type`, `payload` bytes, `headers` text, `created_at` in ms since the epoch
/// (i64, NULL when not a finite point in time).
#[derive(Debug, Clone)]
pub struct RelayStatements {
    /// The next rows after an id, in id order: (after i64, limit i64) -> record columns.
    pub read_after: String,
    /// PostgreSQL's strict order; `None` elsewhere (commit order is id order there).
    pub strict_order: Option<StrictOrderStatements>,
    /// PostgreSQL's acknowledgement in one statement; `None` elsewhere (see [`ack`](Self::ack)).
    pub ack_in_one: Option<AckInOneStatements>,
    /// Counts a failed attempt: (event_id, error).
    pub upsert_attempt: String,
    /// Attempts so far: (event_id) -> (attempts i32).
    pub select_attempts: String,
    /// Copies a row to the dead letters: (attempts i32, error, id i64).
    pub insert_dead_letter: String,
    /// Dead letters, oldest first: (limit i64) -> record columns, attempts i32, error.
    pub select_dead_letters: String,
    /// Puts a dead letter back in the outbox with its original id: (id i64).
    pub requeue_dead_letter: String,
    /// Deletes a dead letter: (id i64).
    pub delete_dead_letter: String,
    /// Keys with dead letters and their smallest id: () -> (topic, event_key nullable bytes,
    /// id i64).
    pub select_blocked_keys: String,
    /// Backlog and lag, each from a bounded read: () -> (rows counted up to
    /// [`BACKLOG_EXACT_UP_TO`](crate::relay::BACKLOG_EXACT_UP_TO) + 1, i64; age in ms of the
    /// row at the head of the outbox (the smallest id), i64 nullable; `MIN(id)` and `MAX(id)`,
    /// i64 nullable, for the range, subtracted by the caller: ids may span all 64 bits, which
    /// SQL arithmetic would overflow).
    pub select_backlog: String,
    /// Dead letter count: () -> (count i64).
    pub count_dead_letters: String,
    /// A lease, locked: (name) -> (holder, fencing_token i64, live 0/1 i64).
    pub select_lease: String,
    /// A new lease: (name, holder, ttl ms i64).
    pub insert_lease: String,
    /// Extends a lease: (ttl ms i64, name).
    pub renew_lease: String,
    /// Hands a lease over: (holder, ttl ms i64, name).
    pub take_lease: String,
    /// Ends a lease: (name, holder).
    pub release_lease: String,
    /// The live holder of a lease: (name) -> (holder).
    pub select_leader: String,
    dialect: Dialect,
    events: String,
    attempts: String,
}

/// PostgreSQL's strict-order statements: read only up to a settled horizon, found without
/// any wall-clock wait (see `outbox-sqlx`'s relay store).
#[derive(Debug, Clone)]
pub struct StrictOrderStatements {
    /// The next rows after an id, up to a horizon: (after i64, horizon i64, limit i64) ->
    /// record columns.
    pub read_up_to: String,
    /// The last id drawn from the events sequence: () -> (i64, nullable).
    pub select_last_id: String,
    /// An xid for this statement, greater than every xid assigned before it: () -> (i64).
    pub select_new_xid: String,
    /// The oldest transaction still running (the snapshot's xmin): () -> (i64).
    pub select_xmin: String,
}

/// PostgreSQL's acknowledgement as one statement in a transaction of its own: one round trip
/// instead of five (begin, fence, two deletes, commit), and the ids as one array instead of a
/// placeholder each. The attempts are deleted by the event ids the delete returns, so the
/// events' index is probed once per row, not twice.
#[derive(Debug, Clone)]
pub struct AckInOneStatements {
    /// Deletes the rows and their attempts if the lease still has the fence's holder and
    /// token, locking the lease row against a take-over until it commits: (ids as an array
    /// literal `{1,2}` text, lease name, holder, fencing token i64) -> (fence held 0/1 i64,
    /// rows deleted i64). Nothing is deleted when the fence does not hold.
    pub fenced: String,
    /// Deletes the rows and their attempts: (ids as an array literal `{1,2}` text) -> (1 i64,
    /// rows deleted i64).
    pub unfenced: String,
}

impl AckInOneStatements {
    /// The array literal the statements take for `ids`: `{1,2,3}`.
    pub fn id_array(ids: &[i64]) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(2 + ids.len() * 12);
        text.push('{');
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{id}");
        }
        text.push('}');
        text
    }
}

impl RelayStatements {
    /// Builds every relay statement.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        let d = dialect;
        let p = |n: usize| d.placeholder(n);
        let t = |table| names.qualified(d, table);
        let (events, attempts, dead, leases) = (
            t(Table::Events),
            t(Table::Attempts),
            t(Table::DeadLetters),
            t(Table::Leases),
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
        // PostgreSQL, text that is not a date on SQLite): one such row must not fail a read.
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
            Dialect::Postgres => "clock_timestamp()",
            Dialect::MySql => "CURRENT_TIMESTAMP(6)",
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
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
        let strict_order = (d == Dialect::Postgres).then(|| StrictOrderStatements {
            read_up_to: format!(
                "SELECT {record_columns} FROM {events} WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
            ),
            select_last_id: format!(
                "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence('{}', 'id') AS regclass))",
                events.replace('\'', "''")
            ),
            select_new_xid: "SELECT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)".to_owned(),
            select_xmin:
                "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
                    .to_owned(),
        });
        let ack_in_one = (d == Dialect::Postgres).then(|| {
            let delete = |held: &str| {
                format!(
                    "gone AS (DELETE FROM {events} WHERE id = ANY(CAST($1 AS BIGINT[])){held} \
                     RETURNING event_id), \
                     tries AS (DELETE FROM {attempts} WHERE event_id IN (SELECT event_id FROM gone))"
                )
            };
            AckInOneStatements {
                fenced: format!(
                    "WITH fence AS (SELECT 1 AS held FROM {leases} WHERE name = $2 AND holder = $3 \
                     AND fencing_token = $4 FOR SHARE), {} \
                     SELECT (SELECT COUNT(*) FROM fence), (SELECT COUNT(*) FROM gone)",
                    delete(" AND EXISTS (SELECT 1 FROM fence)")
                ),
                unfenced: format!(
                    "WITH {} SELECT CAST(1 AS BIGINT), (SELECT COUNT(*) FROM gone)",
                    delete("")
                ),
            }
        });
        Self {
            read_after: format!(
                "SELECT {record_columns} FROM {events} WHERE id > {} ORDER BY id LIMIT {}",
                p(1),
                p(2)
            ),
            strict_order,
            ack_in_one,
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
            // The count stops past the cap and the age reads one row by the primary key, so
            // the relay's periodic status read stays cheap on a table of millions of rows
            // (a full COUNT(*) and MIN(created_at) scan it all).
            select_backlog: format!(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 AS one FROM {events} LIMIT {cap}) AS capped), \
                 (SELECT {oldest_ms} FROM (SELECT created_at FROM {events}{readable} ORDER BY id LIMIT 1) AS head), \
                 (SELECT MIN(id) FROM {events}), (SELECT MAX(id) FROM {events})",
                cap = crate::relay::BACKLOG_EXACT_UP_TO + 1,
                // The head row with a time the age can be read from (as `oldest_ms` skips).
                readable = match d {
                    Dialect::Postgres => " WHERE isfinite(created_at)",
                    Dialect::MySql => "",
                    Dialect::Sqlite => " WHERE julianday(created_at) IS NOT NULL",
                },
            ),
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
            dialect,
            events,
            attempts,
        }
    }

    /// The two statements that acknowledge `n` rows: delete their attempts, then the rows.
    /// Each takes the same `n` ids as parameters. PostgreSQL has
    /// [`ack_in_one`](Self::ack_in_one) instead.
    pub fn ack(&self, n: usize) -> [String; 2] {
        let list = (1..=n)
            .map(|i| self.dialect.placeholder(i))
            .collect::<Vec<_>>()
            .join(", ");
        let (events, attempts) = (&self.events, &self.attempts);
        [
            format!(
                "DELETE FROM {attempts} WHERE event_id IN (SELECT event_id FROM {events} WHERE id IN ({list}))"
            ),
            format!("DELETE FROM {events} WHERE id IN ({list})"),
        ]
    }
}
