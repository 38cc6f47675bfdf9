//! The triggers that write one outbox row per changed row, per dialect.
//!
//! A trigger cannot encode Avro (SQLite has no procedural language at all), so it writes the
//! change event as JSON ([`CAPTURE_CONTENT_TYPE`](super::CAPTURE_CONTENT_TYPE)) with the
//! registered schema id; values are written in the form the relay turns into Avro without
//! guessing: decimals as text, bytes as hex, dates as days and timestamps as microseconds
//! since the epoch. `event_id` is a UUIDv7 built in SQL on every database.

use super::CAPTURE_CONTENT_TYPE;
use super::plan::CapturePlan;
use super::row_image::{mysql_payload, row_json};
use crate::Result;
use crate::table::{Dialect, Identifier, Table, TableNames};

/// The change operations a trigger fires on.
const OPS: [(&str, &str, &str); 3] = [
    ("ins", "INSERT", "c"),
    ("upd", "UPDATE", "u"),
    ("del", "DELETE", "d"),
];

/// The name of a capture's trigger (PostgreSQL: also its function) for `table`; on MySQL and
/// SQLite `suffix` tells the three apart.
///
/// A name too long for an identifier keeps its start and ends with a hash of the whole, so a
/// table whose name has the greatest length the database allows is captured too, and two
/// long names never share a trigger.
fn trigger_name(names: &TableNames, table: &Identifier, suffix: &str) -> Result<Identifier> {
    let prefix = names.name(Table::Events);
    let prefix = prefix.as_str().trim_end_matches("_events");
    let full = format!("{prefix}_capture_{table}");
    if full.len() + suffix.len() <= MAX_NAME {
        return Identifier::new(&format!("{full}{suffix}"));
    }
    // FNV-1a: stable across builds and versions, as `capture remove` must find the name again.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hash = format!("{:08x}", hash & 0xffff_ffff);
    let keep = MAX_NAME.saturating_sub(suffix.len() + 1 + hash.len());
    // ASCII (an identifier), so any byte index is a character boundary.
    Identifier::new(&format!("{}_{hash}{suffix}", &full[..keep.min(full.len())]))
}

/// The longest trigger or function name: PostgreSQL's identifier limit (MySQL's is 64).
const MAX_NAME: usize = 63;

/// The statements that install (or replace) the triggers of `plan`, writing rows with
/// `schema_id`; run in order, in one transaction where the dialect allows (PostgreSQL,
/// SQLite). On MySQL/MariaDB each `CREATE OR REPLACE TRIGGER` (MariaDB 10.1.4+) replaces
/// its trigger atomically, so the table is never without one; MySQL lacks it, and
/// [`check_mysql_server`](super::check_mysql_server) refuses it first.
///
/// # Errors
///
/// [`crate::Error::InvalidIdentifier`] when a trigger name would be too long;
/// [`crate::Error::SchemaIdOutOfRange`] for an id the `schema_id` column cannot hold.
pub fn install_statements(
    dialect: Dialect,
    names: &TableNames,
    plan: &CapturePlan,
    schema_id: crate::SchemaId,
) -> Result<Vec<String>> {
    let schema_id = schema_id.to_column()?;
    let q = |i: &Identifier| qualified(dialect, names, i);
    let table = q(&plan.table);
    let events = names.qualified(dialect, Table::Events);
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let (topic, event_type) = (literal(&plan.topic), literal(&plan.event_type()));
    let ct = literal(CAPTURE_CONTENT_TYPE);
    let columns = "event_id, topic, event_key, event_type, schema_id, content_type, payload";
    Ok(match dialect {
        Dialect::Postgres => {
            let name = q(&trigger_name(names, &plan.table, "")?);
            let row = |r| row_json(dialect, &plan.fields, r);
            vec![
                format!(
                    "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $outbox$\n\
                     DECLARE r record; o text; b json; a json;\n\
                     BEGIN\n\
                     IF TG_OP = 'DELETE' THEN r := OLD; o := 'd'; ELSE r := NEW; \
                     o := CASE TG_OP WHEN 'INSERT' THEN 'c' ELSE 'u' END; END IF;\n\
                     IF TG_OP <> 'INSERT' THEN b := {before}; END IF;\n\
                     IF TG_OP <> 'DELETE' THEN a := {after}; END IF;\n\
                     INSERT INTO {events} ({columns}) VALUES ({uuid}, {topic}, \
                     {key}, {event_type}, {schema_id}, {ct}, {payload});\n\
                     RETURN NULL;\n\
                     END $outbox$",
                    before = row("OLD"),
                    after = row("NEW"),
                    uuid = uuid_v7(dialect, "h"),
                    key = key_sql(dialect, plan, "r"),
                    payload = payload_sql(dialect, "o", "b", "a"),
                ),
                format!("DROP TRIGGER IF EXISTS {name} ON {table}"),
                format!(
                    "CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {name}()"
                ),
            ]
        }
        Dialect::MySql | Dialect::Sqlite => {
            let mut out = Vec::new();
            for (suffix, event, op) in OPS {
                let name = q(&trigger_name(names, &plan.table, &format!("_{suffix}"))?);
                let row = |r| row_json(dialect, &plan.fields, r);
                let (b, a, r) = match op {
                    "c" => ("NULL".to_owned(), row("NEW"), "NEW"),
                    "u" => (row("OLD"), row("NEW"), "NEW"),
                    _ => (row("OLD"), "NULL".to_owned(), "OLD"),
                };
                let key = key_sql(dialect, plan, r);
                let (uuid, from) = (uuid_v7(dialect, "h"), uuid_source(dialect));
                let op_sql = format!("'{op}'");
                let payload = payload_sql(dialect, &op_sql, &b, &a);
                let payload = match dialect {
                    Dialect::MySql => mysql_payload(&plan.fields, op, &payload),
                    _ => payload,
                };
                let insert = format!(
                    "INSERT INTO {events} ({columns}) SELECT {uuid}, {topic}, {key}, {event_type}, \
                     {schema_id}, {ct}, {payload} FROM {from}"
                );
                if dialect == Dialect::Sqlite {
                    out.push(format!("DROP TRIGGER IF EXISTS {name}"));
                    out.push(format!(
                        "CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW BEGIN {insert}; END"
                    ));
                } else {
                    out.push(format!(
                        "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {insert}"
                    ));
                }
            }
            out
        }
    })
}

/// The statements that remove a capture's triggers (and PostgreSQL's function).
///
/// # Errors
///
/// [`crate::Error::InvalidIdentifier`] when a trigger name would be too long.
pub fn remove_statements(
    dialect: Dialect,
    names: &TableNames,
    table: &Identifier,
) -> Result<Vec<String>> {
    let q = |i: &Identifier| qualified(dialect, names, i);
    Ok(match dialect {
        Dialect::Postgres => {
            let name = q(&trigger_name(names, table, "")?);
            vec![
                format!("DROP TRIGGER IF EXISTS {name} ON {}", q(table)),
                format!("DROP FUNCTION IF EXISTS {name}()"),
            ]
        }
        Dialect::MySql | Dialect::Sqlite => OPS
            .iter()
            .map(|(suffix, _, _)| {
                let name = q(&trigger_name(names, table, &format!("_{suffix}"))?);
                Ok(format!("DROP TRIGGER IF EXISTS {name}"))
            })
            .collect::<Result<_>>()?,
    })
}

/// `name` quoted, in the outbox's schema (PostgreSQL) or database (MySQL) when one is set.
pub(crate) fn qualified(dialect: Dialect, names: &TableNames, name: &Identifier) -> String {
    match (names.schema(), dialect) {
        (Some(schema), Dialect::Postgres | Dialect::MySql) => {
            format!("{}.{}", dialect.quote(schema), dialect.quote(name))
        }
        _ => dialect.quote(name),
    }
}

/// Microseconds since the epoch, now.
fn now_micros(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
        Dialect::MySql => "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
        Dialect::Sqlite => "CAST(unixepoch('now', 'subsec') * 1000000 AS INTEGER)",
    }
}

/// The event key of a change: the JSON object of the key fields of the row variable `row`,
/// as the bytes the `event_key` column holds.
pub(crate) fn key_sql(dialect: Dialect, plan: &CapturePlan, row: &str) -> String {
    let key = row_json(dialect, &plan.key, row);
    match dialect {
        Dialect::Postgres => format!("convert_to(({key})::text, 'UTF8')"),
        Dialect::Sqlite => format!("CAST({key} AS BLOB)"),
        Dialect::MySql => key,
    }
}

/// The payload of a change event `{op, before, after, ts}` (the SQL expressions `op`,
/// `before`, `after`), as the bytes the `payload` column holds.
pub(crate) fn payload_sql(dialect: Dialect, op: &str, before: &str, after: &str) -> String {
    let ts = now_micros(dialect);
    match dialect {
        Dialect::Postgres => format!(
            "convert_to(json_build_object('op', {op}, 'before', {before}, 'after', {after}, 'ts', {ts})::text, 'UTF8')"
        ),
        Dialect::Sqlite => format!(
            "CAST(json_object('op', {op}, 'before', {before}, 'after', {after}, 'ts', {ts}) AS BLOB)"
        ),
        Dialect::MySql => {
            format!("JSON_OBJECT('op', {op}, 'before', {before}, 'after', {after}, 'ts', {ts})")
        }
    }
}

/// A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, variant 10, random bits.
/// PostgreSQL overlays the time on a `gen_random_uuid()` and flips its version bits;
/// MySQL/MariaDB (`RANDOM_BYTES`, MariaDB 10.10+ and MySQL 8) and SQLite (`randomblob`)
/// assemble the text from a hex string `h` (a column [`uuid_source`] provides, or
/// [`hex_source`] itself, evaluated afresh in each place: the clock is the statement's, and
/// each place's random digits are as random as one draw's).
pub(crate) fn uuid_v7(dialect: Dialect, h: &str) -> String {
    match dialect {
        Dialect::Postgres => "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING \
             substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) \
             FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
            .to_owned(),
        Dialect::MySql => format!(
            "LOWER(CONCAT(SUBSTR({h}, 1, 8), '-', SUBSTR({h}, 9, 4), '-7', SUBSTR({h}, 14, 3), '-', \
             CONV((CONV(SUBSTR({h}, 17, 1), 16, 10) & 3) | 8, 10, 16), SUBSTR({h}, 18, 3), '-', SUBSTR({h}, 21, 12)))"
        ),
        Dialect::Sqlite => format!(
            "lower(substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-7' || substr({h}, 14, 3) || '-' || \
             substr('89ab', 1 + (unicode(substr({h}, 17, 1)) % 4), 1) || substr({h}, 18, 3) || '-' || substr({h}, 21, 12))"
        ),
    }
}

/// 12 hex digits of Unix milliseconds, then 20 random ones (MySQL/MariaDB and SQLite).
pub(crate) fn hex_source(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "1",
        Dialect::MySql => {
            "CONCAT(LPAD(HEX(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000)), 12, '0'), HEX(RANDOM_BYTES(10)))"
        }
        Dialect::Sqlite => {
            "printf('%012X', CAST(unixepoch('now', 'subsec') * 1000 AS INTEGER)) || hex(randomblob(10))"
        }
    }
}

/// The one-row source of `h` for a trigger's insert.
fn uuid_source(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => "(SELECT 1) AS u".to_owned(),
        Dialect::MySql | Dialect::Sqlite => format!("(SELECT {} AS h) AS u", hex_source(dialect)),
    }
}
