//! The triggers that write one outbox row per changed row, per dialect.
//!
//! A trigger cannot encode Avro (SQLite has no procedural language at all), so it writes the
//! change event as JSON ([`CAPTURE_CONTENT_TYPE`](super::CAPTURE_CONTENT_TYPE)) with the
//! registered schema id; values are written in the form the relay turns into Avro without
//! guessing: decimals as text, bytes as hex, dates as days and timestamps as microseconds
//! since the epoch. `event_id` is a UUIDv7 built in SQL on every database.

use super::CAPTURE_CONTENT_TYPE;
use super::column::ColumnKind;
use super::plan::{CapturePlan, CapturedField};
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
/// its trigger atomically, so the table is never without one; MySQL 8 lacks it.
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

/// A JSON object of `fields` read from the row variable `row` (`NEW`, `OLD`, `r`).
pub(crate) fn row_json(dialect: Dialect, fields: &[CapturedField], row: &str) -> String {
    // Field names are Avro names (letters, digits, '_'): safe in a literal and a JSON path.
    let values: Vec<(&str, String)> = fields
        .iter()
        .map(|f| {
            let column = format!("{row}.{}", dialect.quote(&f.column));
            (f.field.as_str(), value(dialect, f.kind, &column))
        })
        .collect();
    let pairs = |chunk: &[(&str, String)], path: &str| {
        chunk
            .iter()
            .map(|(field, value)| format!("'{path}{field}', {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match dialect {
        Dialect::MySql => format!("JSON_OBJECT({})", pairs(&values, "")),
        // A function takes at most 100 arguments (FUNC_MAX_ARGS), and a PL/pgSQL body is
        // only checked when it first runs: a wide table would break the application's
        // writes. Wide rows are built as jsonb pieces merged with `||`.
        Dialect::Postgres if values.len() <= PAIRS_PER_CALL => {
            format!("json_build_object({})", pairs(&values, ""))
        }
        Dialect::Postgres => {
            let pieces: Vec<String> = values
                .chunks(PAIRS_PER_CALL)
                .map(|chunk| format!("jsonb_build_object({})", pairs(chunk, "")))
                .collect();
            format!("({})::json", pieces.join(" || "))
        }
        // SQLite's limit on function arguments (SQLITE_MAX_FUNCTION_ARG) is 127 in many
        // builds: the first pairs make the object, `json_insert` adds the rest (a NULL value
        // stays a JSON null, unlike with `json_patch`).
        Dialect::Sqlite => {
            let mut chunks = values.chunks(PAIRS_PER_CALL);
            let first = chunks.next().map(|c| pairs(c, "")).unwrap_or_default();
            let mut json = format!("json_object({first})");
            for chunk in chunks {
                json = format!("json_insert({json}, {})", pairs(chunk, "$."));
            }
            json
        }
    }
}

/// The most field pairs one JSON-building call takes: two arguments each, within
/// PostgreSQL's 100 and SQLite's default 127.
const PAIRS_PER_CALL: usize = 50;

/// The JSON form of a column value `x` the relay reads back exactly.
fn value(dialect: Dialect, kind: ColumnKind, x: &str) -> String {
    let typed = typed_value(dialect, kind, x);
    if dialect == Dialect::Sqlite && kind != ColumnKind::Bytes {
        // SQLite stores a BLOB in a column of any declared type, and json_object raises on a
        // BLOB, which would fail the application's write: the relay refuses this object
        // instead, with the field named.
        format!(
            "CASE WHEN typeof({x}) = 'blob' THEN json_object('blob', hex({x})) ELSE {typed} END"
        )
    } else {
        typed
    }
}

/// [`value`] of a value of the column's own type.
fn typed_value(dialect: Dialect, kind: ColumnKind, x: &str) -> String {
    use ColumnKind as K;
    match (dialect, kind) {
        (Dialect::Postgres, K::Decimal { .. } | K::Json) => format!("{x}::text"),
        (Dialect::Postgres, K::Bytes) => format!("encode({x}, 'hex')"),
        // A value Avro cannot hold (infinity; a timestamp past 294247, whose microseconds
        // overflow a bigint and would fail the application's write) is written as its text,
        // which the relay refuses with the field named: dead-lettered, never made NULL.
        (Dialect::Postgres, K::Date) => format!(
            "CASE WHEN isfinite({x}) THEN to_json({x} - DATE '1970-01-01') ELSE to_json({x}::text) END"
        ),
        (Dialect::Postgres, K::Timestamp | K::LocalTimestamp) => format!(
            "CASE WHEN isfinite({x}) AND extract(epoch FROM {x}) < 9223372036854 \
             THEN to_json(floor(extract(epoch FROM {x}) * 1000000)::bigint) ELSE to_json({x}::text) END"
        ),
        (Dialect::Postgres, K::Time) => format!("floor(extract(epoch FROM {x}) * 1000000)::bigint"),
        // MariaDB's JSON is a LONGTEXT (so it is mapped as a string) that JSON_OBJECT would
        // embed as an object: CAST makes it the string the schema says.
        (Dialect::MySql, K::Decimal { .. } | K::Json | K::String) => format!("CAST({x} AS CHAR)"),
        (Dialect::MySql, K::Bytes) => format!("HEX({x})"),
        (Dialect::MySql, K::Date) => or_text(dialect, x, &format!("DATEDIFF({x}, '1970-01-01')")),
        (Dialect::MySql, K::LocalTimestamp) => or_text(
            dialect,
            x,
            &format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {x})"),
        ),
        // A zero TIMESTAMP ('0000-00-00 00:00:00'): MariaDB's UNIX_TIMESTAMP gives NULL for
        // NEW.ts in a trigger but 0 for the column in a SELECT; NULLIF makes both NULL (as
        // for a zero DATETIME), dead-lettered, never published as 1970-01-01 (which a
        // TIMESTAMP cannot hold: its least value is one second later).
        (Dialect::MySql, K::Timestamp) => or_text(
            dialect,
            x,
            &format!("CAST(NULLIF(UNIX_TIMESTAMP({x}), 0) * 1000000 AS SIGNED)"),
        ),
        (Dialect::Sqlite, K::Decimal { .. }) => format!("CAST({x} AS TEXT)"),
        // SQLite writes an infinite REAL into JSON as `Inf` (not JSON at all): spelled as the
        // relay reads infinities instead, so one value never spoils the whole image.
        (Dialect::Sqlite, K::Double | K::Float) => format!(
            "CASE WHEN {x} = 9e999 THEN 'Infinity' WHEN {x} = -9e999 THEN '-Infinity' ELSE {x} END"
        ),
        (Dialect::Sqlite, K::Bytes) => format!("CASE WHEN {x} IS NULL THEN NULL ELSE hex({x}) END"),
        (Dialect::Sqlite, K::Date) => or_text(
            dialect,
            x,
            &format!("CAST(julianday({x}) - 2440587.5 AS INTEGER)"),
        ),
        (Dialect::Sqlite, K::Timestamp | K::LocalTimestamp) => or_text(
            dialect,
            x,
            &format!("CAST(round(unixepoch({x}, 'subsec') * 1000000) AS INTEGER)"),
        ),
        _ => x.to_owned(),
    }
}

/// `expr` (a date or time as a number), or the text of `x` when `x` is set but `expr` could
/// not read it (MariaDB's zero dates, SQLite's text that is no date): the relay refuses the
/// text with the field named, where a NULL would have passed for a nullable column and
/// published a value the row does not hold. MySQL types an `IF` by both branches, so the
/// number and the text are made JSON first.
fn or_text(dialect: Dialect, x: &str, expr: &str) -> String {
    match dialect {
        Dialect::MySql => format!(
            "JSON_EXTRACT(IF({x} IS NOT NULL AND ({expr}) IS NULL, JSON_QUOTE(CAST({x} AS CHAR)), \
             CAST(({expr}) AS CHAR)), '$')"
        ),
        Dialect::Postgres | Dialect::Sqlite => {
            format!(
                "CASE WHEN {x} IS NOT NULL AND ({expr}) IS NULL THEN CAST({x} AS TEXT) ELSE {expr} END"
            )
        }
    }
}

/// MySQL/MariaDB: the change event, unless its values are so large that `JSON_OBJECT` would
/// pass `max_allowed_packet` (its result is capped there, and the error would fail the
/// application's write): then a row the relay dead-letters, saying why in `before` and
/// `after`. An eighth of the packet leaves room for JSON escapes and is past Kafka's 1 MiB.
fn mysql_payload(fields: &[CapturedField], op: &str, payload: &str) -> String {
    let rows: &[&str] = match op {
        "c" => &["NEW"],
        "u" => &["OLD", "NEW"],
        _ => &["OLD"],
    };
    let size: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            fields.iter().map(move |f| {
                format!(
                    "COALESCE(LENGTH({r}.{}), 0)",
                    Dialect::MySql.quote(&f.column)
                )
            })
        })
        .collect();
    let too_large = "'the row is too large to capture: its values pass max_allowed_packet / 8'";
    let refused = payload_sql(Dialect::MySql, &format!("'{op}'"), too_large, too_large);
    format!(
        "IF({} < @@max_allowed_packet DIV 8, {payload}, {refused})",
        balanced_sum(&size)
    )
}

/// `terms` added in a balanced tree: a chain of a thousand `+` overruns MariaDB's thread
/// stack when the trigger runs.
fn balanced_sum(terms: &[String]) -> String {
    if terms.len() <= 16 {
        return format!("({})", terms.join(" + "));
    }
    let (left, right) = terms.split_at(terms.len() / 2);
    format!("({} + {})", balanced_sum(left), balanced_sum(right))
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
