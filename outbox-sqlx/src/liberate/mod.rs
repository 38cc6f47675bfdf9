//! Query liberation of existing rows (`outbox-relay liberate`): bulk snapshots and
//! incremental loading into the outbox, chunk by chunk, each chunk's events and checkpoint
//! in one transaction. The SQL is `outbox_core::liberate`'s.
//!
//! Every row lands exactly once in the outbox, across crashes: a chunk's events and the
//! checkpoint past them commit together, and the next run starts after the checkpoint. (A
//! row whose ordering columns change during a load can move across the checkpoint: read
//! twice or not at all. Primary keys rarely change; `--by updated_at` columns do, which is
//! the point of incremental loading.) A resumed bulk load is not one point in time: each
//! chunk is its own snapshot.

mod progress;

pub use progress::Progress;

use std::time::{Duration, Instant};

use outbox_core::capture::{CapturePlan, CaptureSpec};
use outbox_core::liberate::{
    LiberateStatements, LiberationPlan, Mode, parse_position, position_text,
};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::sql::{SqlConnection, SqlPool, SqlTransaction};
use outbox_core::table::{Identifier, SqlValue, TableNames};
use outbox_core::{Error, Result, SchemaId};
use sqlx::Pool;

use crate::capture::Capture;
use crate::database::OutboxDatabase;
use crate::pool::SqlxPool;

/// The largest chunk: one transaction, whose ordering values are held in memory (and
/// past which PostgreSQL's `LIMIT` and SQLite's overflow, failing mid-run).
pub const MAX_CHUNK: usize = 1_000_000;

/// How a liberation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiberateOptions {
    /// Rows per chunk (one transaction each), 1 to [`MAX_CHUNK`].
    pub chunk: usize,
    /// At most this many rows per second, when set (at least 1).
    pub rows_per_second: Option<u32>,
    /// Forget the stored checkpoint and start from the first row.
    pub restart: bool,
    /// Read the rows from this `SELECT` instead of the whole table (custom query loading,
    /// see [`LiberationPlan::with_query`]); used by [`Liberate::prepare`].
    pub query: Option<String>,
    /// Incremental by a timestamp: read only rows stamped at least this long ago (see
    /// [`LiberationPlan::with_lag`]); used by [`Liberate::prepare`].
    pub lag: Option<Duration>,
}

impl Default for LiberateOptions {
    fn default() -> Self {
        Self {
            chunk: 1000,
            rows_per_second: None,
            restart: false,
            query: None,
            lag: None,
        }
    }
}

/// A liberation ready to run: its plan, the schema id its events carry, and its SQL.
#[derive(Debug, Clone)]
pub struct PreparedLiberation {
    /// The plan.
    pub plan: LiberationPlan,
    /// The subject the change-event schema is registered under.
    pub subject: String,
    /// The registered schema's id.
    pub schema_id: SchemaId,
    stmts: LiberateStatements,
}

/// Liberation of tables in one database, into the outbox tables named by `names`.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn demo(pool: sqlx::PgPool, registry: outbox_core::registry::Registry<outbox_sqlx::postgres::PgSchemaStore>) -> outbox_core::Result<()> {
/// use outbox_core::liberate::Mode;
/// use outbox_core::table::TableNames;
/// use outbox_sqlx::liberate::{Liberate, LiberateOptions};
///
/// let liberate = Liberate::new(pool, TableNames::default());
/// let options = LiberateOptions { rows_per_second: Some(5000), ..LiberateOptions::default() };
/// let job = liberate.prepare(&registry, "orders", None, Mode::Bulk, &options).await?;
/// let done = liberate.run(&job, &options, |p| eprintln!("{p}")).await?;
/// println!("{} rows", done.rows_done);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Liberate<DB: OutboxDatabase> {
    pool: SqlxPool<DB>,
    names: TableNames,
    capture: Capture<DB>,
}

impl<DB: OutboxDatabase> Clone for Liberate<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            names: self.names.clone(),
            capture: self.capture.clone(),
        }
    }
}

fn refused(table: &str, reason: impl Into<String>) -> Error {
    Error::LiberationRefused {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl<DB: OutboxDatabase> Liberate<DB> {
    /// Liberates through `pool`, into the outbox tables named by `names` (migrated).
    pub fn new(pool: Pool<DB>, names: TableNames) -> Self {
        Self {
            capture: Capture::new(pool.clone(), names.clone()),
            pool: SqlxPool::from(pool),
            names,
        }
    }

    /// Derives the plan of liberating `table` in `mode` and registers its change-event
    /// schema. A table under trigger capture keeps its capture's spec (columns, renames,
    /// key, topic), so both write events of the one schema; otherwise every column, to
    /// `topic` (default: the table's name).
    ///
    /// # Errors
    ///
    /// [`Error::LiberationRefused`] for a table that does not exist, a `topic` other than
    /// the capture's, a bad ordering column (see [`LiberationPlan::new`]), a chunk of 0 or
    /// over [`MAX_CHUNK`], a `rows_per_second` of 0, a
    /// `query` that is not one `SELECT` or lacks a column the events need;
    /// [`Error::CaptureRefused`] for a table that cannot be described by a schema;
    /// [`Error::IncompatibleSchema`], [`Error::InvalidIdentifier`], database errors.
    pub async fn prepare<S: SchemaStore>(
        &self,
        registry: &Registry<S>,
        table: &str,
        topic: Option<&str>,
        mode: Mode,
        options: &LiberateOptions,
    ) -> Result<PreparedLiberation> {
        if options.chunk == 0 || options.chunk > MAX_CHUNK {
            return Err(refused(
                table,
                format!("the chunk size must be from 1 to {MAX_CHUNK}"),
            ));
        }
        if options.rows_per_second == Some(0) {
            return Err(refused(
                table,
                "--rows-per-second must be at least 1 (leave it out for no limit)",
            ));
        }
        let ident = Identifier::new(table)?;
        let captured = self.capture.get(table).await?;
        let lock_rows = captured.is_some();
        let spec = match captured {
            Some(info) if topic.is_some_and(|t| t != info.topic) => {
                return Err(refused(
                    table,
                    format!(
                        "the table is captured to topic {}: liberate to it",
                        info.topic
                    ),
                ));
            }
            Some(info) => info.spec,
            None => CaptureSpec {
                topic: topic.map(str::to_owned),
                ..CaptureSpec::new(table)
            },
        };
        let columns = self.capture.columns(&ident).await?;
        if columns.is_empty() {
            return Err(refused(table, "the table does not exist"));
        }
        let capture = CapturePlan::derive(DB::DIALECT, &spec, &columns)?;
        let mut plan = LiberationPlan::new(DB::DIALECT, capture, &columns, mode)?;
        plan.lock_rows = lock_rows;
        if let Some(query) = &options.query {
            plan = plan.with_query(query)?;
        }
        if let Some(lag) = options.lag {
            plan = plan.with_lag(lag)?;
        }
        let subject = spec.subject();
        let registered = registry.register(&subject, &plan.capture.schema()?).await?;
        let stmts = LiberateStatements::new(
            DB::DIALECT,
            &self.names,
            &plan,
            registered.id,
            options.chunk,
        )?;
        if plan.query.is_some() {
            let mut conn = self.pool.acquire().await?;
            conn.execute("liberate: probe query", &stmts.probe, vec![])
                .await
                .map_err(|e| {
                    refused(
                        table,
                        format!("the query does not give the rows the events need: {e}"),
                    )
                })?;
        }
        Ok(PreparedLiberation {
            plan,
            subject,
            schema_id: registered.id,
            stmts,
        })
    }

    /// Runs `job` from its checkpoint until no row is left past it, calling `on_progress`
    /// after each chunk; returns the final progress. Run it again to pick up what came
    /// since (incremental loading polls this way). Two runs of one liberation at once take
    /// turns chunk by chunk (the checkpoint is locked), or one fails on the first chunk with
    /// [`Error::Conflict`] or a deadlock, rolled back: no row is written twice.
    ///
    /// # Errors
    ///
    /// Database errors (the chunk in flight is rolled back; the checkpoint keeps what
    /// committed), [`Error::Decode`] for a stored checkpoint that does not read,
    /// [`Error::LiberationRefused`] when a bulk load's rows give a key twice (a custom
    /// query that joins): the chunk holding it is rolled back.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it loses nothing and duplicates nothing: an uncommitted chunk rolls back.
    pub async fn run(
        &self,
        job: &PreparedLiberation,
        options: &LiberateOptions,
        mut on_progress: impl FnMut(&Progress) + Send,
    ) -> Result<Progress> {
        let started = Instant::now();
        let stmts = &job.stmts;
        let name = vec![
            SqlValue::Text(job.plan.capture.table.to_string()),
            SqlValue::Text(job.plan.checkpoint_name()),
        ];
        let mut progress = Progress::default();
        let mut conn = self.pool.acquire().await?;
        if options.restart {
            conn.execute(
                "liberate: forget checkpoint",
                &stmts.delete_checkpoint,
                name.clone(),
            )
            .await?;
            progress.queries += 1;
        }
        let count = conn.fetch("liberate: count rows", &stmts.count, vec![]);
        progress.total_estimate =
            u64::try_from(count.await?.first().copied().unwrap_or(0)).unwrap_or(0);
        let checkpoint_rows = conn
            .fetch(
                "liberate: read checkpoint",
                &stmts.select_checkpoint,
                name.clone(),
            )
            .await?;
        progress.queries += 2;
        drop(conn);
        let width = job.plan.order.len();
        let checkpoint = |rows: Vec<(String, i64)>| -> Result<(Option<Vec<String>>, u64)> {
            Ok(match rows.into_iter().next() {
                Some((text, done)) => (
                    Some(parse_position(&text, width)?),
                    u64::try_from(done).unwrap_or(0),
                ),
                None => (None, 0),
            })
        };
        progress.rows_done = checkpoint(checkpoint_rows)?.1;
        loop {
            let mut tx = self.pool.begin_write().await?;
            // Read again, under lock, in the chunk's transaction: another run of the same
            // liberation may have moved it.
            let rows = tx
                .fetch(
                    "liberate: read checkpoint",
                    &stmts.select_checkpoint,
                    name.clone(),
                )
                .await?;
            let (position, done) = checkpoint(rows)?;
            progress.rows_done = done;
            let keys = match &position {
                None => tx.fetch("liberate: read chunk", &stmts.first_keys, vec![]),
                Some(p) => tx.fetch("liberate: read chunk", &stmts.next_keys, texts(p).collect()),
            };
            let keys = keys.await?;
            progress.queries += 2;
            if job.plan.mode == Mode::Bulk {
                // A primary key is unique; a custom query (a join, a UNION) may give one
                // twice, and every such row would be published.
                if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
                    return Err(refused(
                        &job.plan.capture.table.to_string(),
                        format!(
                            "the rows give key {} more than once: a bulk load publishes each \
                             key once (does the query join?)",
                            twice[0]
                        ),
                    ));
                }
            }
            let Some(last) = keys[..keys.len().min(stmts.chunk)].last() else {
                break;
            };
            let last = parse_position(last, width)?;
            let inserted = match &position {
                None => {
                    let params = texts(&last).collect();
                    tx.execute("liberate: insert events", &stmts.insert_first, params)
                }
                Some(p) => {
                    let params = texts(p).chain(texts(&last)).collect();
                    tx.execute("liberate: insert events", &stmts.insert_next, params)
                }
            };
            let inserted = inserted.await?;
            progress.rows_done += inserted;
            let done = i64::try_from(progress.rows_done).unwrap_or(i64::MAX);
            let moved = vec![
                SqlValue::Text(position_text(&last)),
                SqlValue::I64(done),
                name[0].clone(),
                name[1].clone(),
            ];
            if position.is_some() {
                tx.execute("liberate: checkpoint", &stmts.update_checkpoint, moved)
                    .await?;
            } else {
                // Two first chunks at once: the second fails here on the primary key and
                // rolls back.
                let mut record = name.clone();
                record.extend([SqlValue::Text(position_text(&last)), SqlValue::I64(done)]);
                tx.execute("liberate: checkpoint", &stmts.insert_checkpoint, record)
                    .await?;
            }
            tx.commit().await?;
            progress.queries += 2;
            progress.chunks += 1;
            progress.rows_this_run += inserted;
            progress.elapsed = started.elapsed();
            on_progress(&progress);
            if let Some(rate) = options.rows_per_second.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(progress.rows_this_run as f64 / f64::from(rate));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        progress.elapsed = started.elapsed();
        Ok(progress)
    }
}

/// A position's values as parameters (bound as text; the SQL casts them).
fn texts(position: &[String]) -> impl Iterator<Item = SqlValue> + '_ {
    position.iter().cloned().map(SqlValue::Text)
}
