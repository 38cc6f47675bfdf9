//! How a trigger writes a row as JSON: each value in the form the relay turns into Avro
//! without guessing, and never a value that would fail the application's write.

use super::column::ColumnKind;
use super::plan::CapturedField;
use super::trigger::payload_sql;
use crate::table::Dialect;

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
pub(super) fn mysql_payload(fields: &[CapturedField], op: &str, payload: &str) -> String {
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
