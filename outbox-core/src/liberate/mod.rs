//! Liberation of a table's existing rows by query (DESIGN §8; Bellemare, *Building
//! Event-Driven Microservices*, ch. 4), as I/O-free data: which columns order the rows, and
//! the SQL that reads a chunk, writes its change events into the outbox and records the
//! checkpoint (`<prefix>_liberations`).
//!
//! The events are the ones trigger capture writes ([`crate::capture`]): the same derived
//! schema, the same JSON row image and key, under the same content type, with `op = r`
//! (bulk snapshot read) or `u` (incremental). The image is built by the database in the
//! `INSERT ... SELECT` itself, with the capture's own expressions, so a liberated row and a
//! captured row of the same values are byte for byte the same JSON.
//!
//! Rows are read in chunks ordered by the ordering columns (keyset pagination, never
//! `OFFSET`): a chunk is the rows after the checkpoint up to and including the chunk's last
//! ordering value, so rows sharing that value are never split across chunks.

mod statements;

pub use statements::LiberateStatements;

use crate::capture::{CapturePlan, ColumnKind, SourceColumn, column_kind};
use crate::table::{Dialect, Identifier};
use crate::{Error, Result};

/// How rows are chosen and ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every row, by primary key (`op = r`).
    Bulk,
    /// The rows past the stored position, by these columns (`updated_at`, `id`, or
    /// `updated_at,id`), each poll (`op = u`).
    Incremental {
        /// The ordering columns, most significant first.
        by: Vec<String>,
    },
}

impl Mode {
    /// The name the checkpoint is stored under: `bulk`, `incremental(updated_at,id)`.
    pub fn name(&self) -> String {
        match self {
            Self::Bulk => "bulk".to_owned(),
            Self::Incremental { by } => format!("incremental({})", by.join(",")),
        }
    }

    /// The change operation the events carry.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Bulk => "r",
            Self::Incremental { .. } => "u",
        }
    }
}

/// A column rows are ordered (and paged) by, with what a bound position value is cast to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderColumn {
    /// The column.
    pub column: Identifier,
    /// Its kind.
    pub kind: ColumnKind,
    /// The declared type (PostgreSQL casts the text of a position to it).
    pub data_type: String,
}

/// What a liberation reads: the capture plan (schema, image, key) and the ordering columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiberationPlan {
    /// The capture plan whose schema and row image the events use.
    pub capture: CapturePlan,
    /// Bulk or incremental.
    pub mode: Mode,
    /// The ordering columns, most significant first.
    pub order: Vec<OrderColumn>,
    /// Read each chunk's rows with a shared row lock (PostgreSQL `FOR SHARE`, MySQL
    /// `LOCK IN SHARE MODE`; SQLite's one writer needs none): set when trigger capture is
    /// live on the table, so no snapshot event for a key lands in the outbox after a newer
    /// change of that key (see the README's "Liberating existing rows").
    pub lock_rows: bool,
    /// A custom query the rows come from instead of the whole table (`--query`), checked
    /// by [`with_query`](Self::with_query).
    pub query: Option<String>,
    /// Incremental by a timestamp: only rows stamped at least this long ago are read (see
    /// [`with_lag`](Self::with_lag)).
    pub lag: Option<std::time::Duration>,
}

fn refused(table: &str, reason: impl Into<String>) -> Error {
    Error::LiberationRefused {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl LiberationPlan {
    /// The plan for `mode` over the table whose `columns` were introspected and whose
    /// capture plan is `capture`.
    ///
    /// # Errors
    ///
    /// [`Error::LiberationRefused`] for an empty or unknown `--by` column, a nullable
    /// ordering column (its NULL rows would never be read), or an ordering column whose
    /// values do not round-trip through text in order (bytes, JSON, floating point).
    pub fn new(
        dialect: Dialect,
        capture: CapturePlan,
        columns: &[SourceColumn],
        mode: Mode,
    ) -> Result<Self> {
        let table = capture.table.to_string();
        let names: Vec<String> = match &mode {
            Mode::Bulk => capture.key.iter().map(|f| f.column.to_string()).collect(),
            Mode::Incremental { by } if by.is_empty() => {
                return Err(refused(&table, "--by names no column"));
            }
            Mode::Incremental { by } => by.clone(),
        };
        let mut order = Vec::with_capacity(names.len());
        for name in &names {
            let source = columns
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| refused(&table, format!("column {name:?} does not exist")))?;
            if source.nullable {
                return Err(refused(
                    &table,
                    format!(
                        "column {name:?} is nullable: rows where it is NULL would never be read"
                    ),
                ));
            }
            let kind = column_kind(dialect, &source.data_type)
                .map_err(|reason| refused(&table, format!("column {name}: {reason}")))?;
            if matches!(
                kind,
                ColumnKind::Bytes | ColumnKind::Json | ColumnKind::Float | ColumnKind::Double
            ) {
                return Err(refused(
                    &table,
                    format!(
                        "column {name:?} ({}) cannot order a liberation",
                        source.data_type
                    ),
                ));
            }
            let type_ok = source
                .data_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _(),.\"".contains(c));
            if !type_ok {
                return Err(refused(
                    &table,
                    format!("column {name:?}: unexpected type {:?}", source.data_type),
                ));
            }
            order.push(OrderColumn {
                column: Identifier::new(name)?,
                kind,
                data_type: source.data_type.clone(),
            });
        }
        if let Some(dup) = order
            .iter()
            .enumerate()
            .find(|(i, c)| order[..*i].iter().any(|o| o.column == c.column))
        {
            return Err(refused(
                &table,
                format!("column {} is named twice", dup.1.column),
            ));
        }
        Ok(Self {
            capture,
            mode,
            order,
            lock_rows: false,
            query: None,
            lag: None,
        })
    }

    /// Reads only rows whose first `--by` column (a timestamp) is at least `lag` older than
    /// the database's clock: a transaction that stamps a row and commits within `lag` is
    /// still read; one that takes longer is missed, as without it. Events come `lag` later.
    /// On SQLite the column must hold UTC text as `datetime()` writes it
    /// (`YYYY-MM-DD HH:MM:SS`).
    ///
    /// # Errors
    ///
    /// [`Error::LiberationRefused`] for a bulk plan, a first ordering column that is not
    /// a timestamp, or a lag longer than [`MAX_LAG`].
    pub fn with_lag(mut self, lag: std::time::Duration) -> Result<Self> {
        let table = self.capture.table.to_string();
        if lag > MAX_LAG {
            // Past it the cutoff leaves the databases' ranges: PostgreSQL fails every poll
            // ("timestamp out of range"), MariaDB and SQLite compare with NULL.
            return Err(refused(
                &table,
                format!("--lag of {}s is longer than 100 years", lag.as_secs()),
            ));
        }
        let first = self.order.first().map(|c| c.kind);
        if !matches!(self.mode, Mode::Incremental { .. })
            || !matches!(
                first,
                Some(ColumnKind::Timestamp | ColumnKind::LocalTimestamp)
            )
        {
            return Err(refused(
                &table,
                "--lag needs incremental loading whose first --by column is a timestamp",
            ));
        }
        self.lag = Some(lag);
        Ok(self)
    }

    /// The name its checkpoint is stored under: the mode's, and for a custom query the
    /// first 8 bytes of its SHA-256 (`bulk query 1a2b...`), so another query starts afresh.
    pub fn checkpoint_name(&self) -> String {
        use sha2::Digest as _;
        match &self.query {
            None => self.mode.name(),
            Some(q) => {
                let digest = sha2::Sha256::digest(q.as_bytes());
                format!("{} query {}", self.mode.name(), hex::encode(&digest[..8]))
            }
        }
    }

    /// Reads the rows from `query` (custom query loading) instead of the whole table: one
    /// `SELECT` whose rows have the table's captured, key and ordering columns (a filter,
    /// a join that keeps them). It runs as a subquery, `FROM (<query>) AS r`; the back end
    /// probes it before the first chunk.
    ///
    /// # Errors
    ///
    /// [`Error::LiberationRefused`] for an empty query, one longer than
    /// [`MAX_QUERY_BYTES`], one that does not start with `SELECT`, or one holding a `;`
    /// (one statement only; a trailing `;` is dropped).
    pub fn with_query(mut self, query: &str) -> Result<Self> {
        let table = self.capture.table.to_string();
        let q = query.trim().trim_end_matches(';').trim_end();
        if q.is_empty() {
            return Err(refused(&table, "the query is empty"));
        }
        if q.len() > MAX_QUERY_BYTES {
            return Err(refused(
                &table,
                format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        let first = q
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default();
        if !first.eq_ignore_ascii_case("select") {
            return Err(refused(
                &table,
                format!("the query must be one SELECT, not {first:?}"),
            ));
        }
        if q.contains(';') {
            return Err(refused(
                &table,
                "the query holds a ';': one SELECT statement only",
            ));
        }
        self.query = Some(q.to_owned());
        Ok(self)
    }
}

/// The longest `--lag` accepted: 100 years (of 365 days).
pub const MAX_LAG: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// The longest `--query` accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// A checkpoint's position (the last ordering values done, as text) as stored.
pub fn position_text(position: &[String]) -> String {
    serde_json::Value::from(position.to_vec()).to_string()
}

/// A stored position read back.
///
/// # Errors
///
/// [`Error::Decode`] when it is not a JSON array of `width` strings.
pub fn parse_position(text: &str, width: usize) -> Result<Vec<String>> {
    let bad = |why: &str| Error::Decode {
        reason: format!("liberation checkpoint {text:?}: {why}"),
    };
    let values: Vec<Option<String>> =
        serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    if values.len() != width {
        return Err(bad(&format!("expected {width} values")));
    }
    values
        .into_iter()
        .map(|v| v.ok_or_else(|| bad("a value is null")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureSpec;

    fn col(name: &str, data_type: &str, nullable: bool, pk: Option<u32>) -> SourceColumn {
        SourceColumn {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
            nullable,
            comment: None,
            primary_key: pk,
        }
    }

    fn plan(mode: Mode) -> Result<LiberationPlan> {
        let columns = [
            col("id", "bigint", false, Some(1)),
            col("updated_at", "timestamp with time zone", false, None),
            col("note", "text", true, None),
            col("blob", "bytea", false, None),
        ];
        let capture = CapturePlan::derive(Dialect::Postgres, &CaptureSpec::new("t"), &columns)?;
        LiberationPlan::new(Dialect::Postgres, capture, &columns, mode)
    }

    fn by(cols: &[&str]) -> Mode {
        Mode::Incremental {
            by: cols.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn ordering_columns_are_checked() {
        let bulk = plan(Mode::Bulk).expect("bulk");
        assert_eq!(bulk.order[0].column.as_str(), "id");
        let inc = plan(by(&["updated_at", "id"])).expect("by updated_at,id");
        assert_eq!(inc.order.len(), 2);
        for (mode, needle) in [
            (by(&["nope"]), "does not exist"),
            (by(&["note"]), "nullable"),
            (by(&["blob"]), "cannot order"),
            (by(&[]), "no column"),
            (by(&["id", "id"]), "twice"),
        ] {
            let err = plan(mode).expect_err("refused");
            assert!(
                matches!(&err, Error::LiberationRefused { reason, .. } if reason.contains(needle)),
                "{err}"
            );
        }
    }

    #[test]
    fn only_one_select_is_a_query() {
        let ok = plan(Mode::Bulk)
            .and_then(|p| p.with_query(" SELECT * FROM t WHERE id > 5; "))
            .expect("a select");
        assert_eq!(ok.query.as_deref(), Some("SELECT * FROM t WHERE id > 5"));
        for (q, needle) in [
            ("DELETE FROM t", "one SELECT"),
            (
                "with d as (delete from t returning *) select * from d",
                "one SELECT",
            ),
            ("SELECT 1; DROP TABLE t", "';'"),
            ("  ;", "empty"),
        ] {
            let err = plan(Mode::Bulk)
                .and_then(|p| p.with_query(q))
                .expect_err("refused");
            assert!(
                matches!(&err, Error::LiberationRefused { reason, .. } if reason.contains(needle)),
                "{q}: {err}"
            );
        }
        let long = format!("SELECT {}", "1".repeat(MAX_QUERY_BYTES));
        assert!(plan(Mode::Bulk).and_then(|p| p.with_query(&long)).is_err());
    }

    #[test]
    fn positions_round_trip_and_bad_ones_are_errors() {
        let p = vec!["2026-01-01 00:00:00+00".to_owned(), "7".to_owned()];
        assert_eq!(parse_position(&position_text(&p), 2).expect("reads"), p);
        assert!(parse_position("[1]", 1).is_err());
        assert!(parse_position("[\"a\"]", 2).is_err());
        assert!(parse_position("not json", 1).is_err());
    }
}
