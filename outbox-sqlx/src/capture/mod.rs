//! Change capture of existing tables: introspect, register the change-event schema, install
//! the triggers, keep the record in `<prefix>_captures`; and DDL under capture
//! ([`Capture::migrate`]).

mod guard;
mod migrate;

use guard::{guard, pass_guard};

use outbox_core::capture::{
    CapturePlan, CaptureRow, CaptureSpec, CaptureStatements, SourceColumn, check_mysql_server,
    install_statements, remove_statements, unguard_statements,
};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::sql::{Query, SqlConnection, SqlPool, SqlTransaction, Statement};
use outbox_core::table::{Dialect, Identifier, SqlValue, TableNames};
use outbox_core::{Error, Result, SchemaId};
use sqlx::Pool;

use crate::database::OutboxDatabase;
use crate::pool::SqlxPool;

/// A captured table, as recorded in `<prefix>_captures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The table.
    pub table: String,
    /// The topic its changes go to.
    pub topic: String,
    /// The subject of the change-event schema.
    pub subject: String,
    /// The schema id the triggers write.
    pub schema_id: outbox_core::SchemaId,
    /// What was asked for.
    pub spec: CaptureSpec,
}

/// Captures of tables in one database, next to the outbox tables named by `names`.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn demo(pool: sqlx::PgPool) -> outbox_core::Result<()> {
/// use outbox_core::capture::CaptureSpec;
/// use outbox_core::registry::Registry;
/// use outbox_core::table::TableNames;
/// use outbox_sqlx::capture::Capture;
/// use outbox_sqlx::postgres::PgSchemaStore;
///
/// let names = TableNames::default();
/// let stmts = std::sync::Arc::new(outbox_core::table::Statements::new(outbox_core::table::Dialect::Postgres, &names));
/// let registry = Registry::new(PgSchemaStore::new(pool.clone(), stmts));
/// let capture = Capture::new(pool, names);
/// capture.add(&registry, &CaptureSpec::new("orders")).await?;
/// capture.migrate(&registry, "orders", "ALTER TABLE orders ADD COLUMN note TEXT").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Capture<DB: OutboxDatabase> {
    pool: SqlxPool<DB>,
    names: TableNames,
    stmts: CaptureStatements,
}

// Not derived: a derive would ask `DB: Clone`, which sqlx's database markers are not.
impl<DB: OutboxDatabase> Clone for Capture<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            names: self.names.clone(),
            stmts: self.stmts.clone(),
        }
    }
}

fn not_captured(table: &str) -> Error {
    Error::CaptureRefused {
        table: table.to_owned(),
        reason: "the table is not captured (capture add first)".to_owned(),
    }
}

impl<DB: OutboxDatabase> Capture<DB> {
    /// Captures through `pool`, with the outbox tables named by `names` (migrated).
    pub fn new(pool: Pool<DB>, names: TableNames) -> Self {
        let stmts = CaptureStatements::new(DB::DIALECT, &names);
        Self {
            pool: SqlxPool::from(pool),
            names,
            stmts,
        }
    }

    /// The columns of `table`, in table order (none when it does not exist).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] on a database error.
    pub async fn columns(&self, table: &Identifier) -> Result<Vec<SourceColumn>> {
        let mut conn = self.pool.acquire().await?;
        columns(&mut conn, &self.stmts, &self.names, table).await
    }

    /// The plan `spec` derives from the table as it is now.
    ///
    /// # Errors
    ///
    /// As [`CapturePlan::derive`], and database errors.
    pub async fn plan(&self, spec: &CaptureSpec) -> Result<CapturePlan> {
        let table = Identifier::new(&spec.table)?;
        CapturePlan::derive(DB::DIALECT, spec, &self.columns(&table).await?)
    }

    /// Captures a table: derives its change-event schema, registers it under the topic's
    /// subject (compatibility-checked: re-adding a capture is a schema change like any
    /// other), installs the triggers and records the capture. Adding it again replaces it.
    ///
    /// # Errors
    ///
    /// [`Error::CaptureRefused`] (see [`CapturePlan::derive`]; on MySQL, a server without
    /// `CREATE OR REPLACE TRIGGER`), [`Error::IncompatibleSchema`], [`Error::InvalidIdentifier`], database errors.
    pub async fn add<S: SchemaStore>(
        &self,
        registry: &Registry<S>,
        spec: &CaptureSpec,
    ) -> Result<CaptureInfo> {
        self.check_server(&spec.table).await?;
        let plan = self.plan(spec).await?;
        let subject = spec.subject();
        let registered = registry.register(&subject, &plan.schema()?).await?;
        let info = CaptureInfo {
            table: plan.table.to_string(),
            topic: plan.topic.clone(),
            subject,
            schema_id: registered.id,
            spec: spec.clone(),
        };
        let install = install_statements(DB::DIALECT, &self.names, &plan, registered.id)?;
        if DB::DIALECT == Dialect::MySql {
            // DDL commits on its own: each CREATE OR REPLACE TRIGGER swaps one trigger.
            let mut conn = self.pool.acquire().await?;
            install_and_record(&mut conn, &self.stmts, &install, &info).await?;
        } else {
            let mut tx = self.pool.begin_write().await?;
            install_and_record(&mut tx, &self.stmts, &install, &info).await?;
            if DB::DIALECT == Dialect::Postgres {
                guard(&mut tx, &self.names).await?;
            }
            tx.commit().await?;
        }
        Ok(info)
    }

    /// MySQL family: refuses a server that cannot run captures (MySQL, MariaDB before
    /// 10.10), naming its version; see [`check_mysql_server`].
    async fn check_server(&self, table: &str) -> Result<()> {
        if DB::DIALECT != Dialect::MySql {
            return Ok(());
        }
        let version: Query<String> = Query::new("SELECT CAST(VERSION() AS CHAR)");
        let mut conn = self.pool.acquire().await?;
        let version = conn
            .fetch("capture: server version", &version, vec![])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        check_mysql_server(&version).map_err(|reason| Error::CaptureRefused {
            table: table.to_owned(),
            reason,
        })
    }

    /// Every capture, by table name.
    ///
    /// # Errors
    ///
    /// Database errors, or a stored spec that no longer reads.
    pub async fn list(&self) -> Result<Vec<CaptureInfo>> {
        let mut conn = self.pool.acquire().await?;
        let rows = conn
            .fetch("capture: list", &self.stmts.select_captures, vec![])
            .await?;
        rows.into_iter().map(info_from_row).collect()
    }

    /// The capture of `table`, if there is one.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn get(&self, table: &str) -> Result<Option<CaptureInfo>> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, &self.stmts, table).await
    }

    /// Stops capturing `table`: drops its triggers and forgets it. Returns whether it was
    /// captured. The registered schemas stay.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`], database errors.
    pub async fn remove(&self, table: &str) -> Result<bool> {
        let ident = Identifier::new(table)?;
        let drop = remove_statements(DB::DIALECT, &self.names, &ident)?;
        let forget = vec![SqlValue::Text(table.to_owned())];
        let removed = if DB::DIALECT == Dialect::MySql {
            let mut conn = self.pool.acquire().await?;
            run_all(&mut conn, &drop).await?;
            conn.execute("capture: forget", &self.stmts.delete_capture, forget)
                .await?
        } else {
            let mut tx = self.pool.begin_write().await?;
            run_all(&mut tx, &drop).await?;
            let removed = tx
                .execute("capture: forget", &self.stmts.delete_capture, forget)
                .await?;
            let left = tx
                .fetch("capture: list", &self.stmts.select_captures, vec![])
                .await?;
            if DB::DIALECT == Dialect::Postgres && left.is_empty() {
                run_all(&mut tx, &unguard_statements(&self.names)?).await?;
            }
            tx.commit().await?;
            removed
        };
        Ok(removed > 0)
    }
}

/// A stored capture: its schema id must fit a registry id and its spec must read.
fn info_from_row(row: CaptureRow) -> Result<CaptureInfo> {
    let (table, topic, subject, schema_id, spec) = row;
    let schema_id = u32::try_from(schema_id)
        .map(SchemaId::new)
        .map_err(|_| Error::Decode {
            reason: format!("capture of {table}: schema id {schema_id} out of range"),
        })?;
    let spec = serde_json::from_str(&spec).map_err(|e| Error::Decode {
        reason: format!("capture of {table}: stored spec: {e}"),
    })?;
    Ok(CaptureInfo {
        table,
        topic,
        subject,
        schema_id,
        spec,
    })
}

async fn load<C: SqlConnection>(
    conn: &mut C,
    stmts: &CaptureStatements,
    table: &str,
) -> Result<Option<CaptureInfo>> {
    let rows = conn
        .fetch(
            "capture: read",
            &stmts.select_capture,
            vec![SqlValue::Text(table.to_owned())],
        )
        .await?;
    rows.into_iter().next().map(info_from_row).transpose()
}

async fn columns<C: SqlConnection>(
    conn: &mut C,
    stmts: &CaptureStatements,
    names: &TableNames,
    table: &Identifier,
) -> Result<Vec<SourceColumn>> {
    let params = stmts.columns_params(names, table);
    conn.fetch("capture: introspect table", &stmts.select_columns, params)
        .await
}

/// Runs `statements` in order (DDL of the outbox's own: triggers, functions, the guard).
async fn run_all<C: SqlConnection>(conn: &mut C, statements: &[String]) -> Result<()> {
    for sql in statements {
        conn.execute(
            "capture: install triggers",
            &Statement::new(sql.as_str()),
            vec![],
        )
        .await?;
    }
    Ok(())
}

/// Installs (or replaces) the triggers and records the capture with the schema id they write.
async fn install_and_record<C: SqlConnection>(
    conn: &mut C,
    stmts: &CaptureStatements,
    install: &[String],
    info: &CaptureInfo,
) -> Result<()> {
    run_all(conn, install).await?;
    record(conn, stmts, info).await
}

async fn record<C: SqlConnection>(
    conn: &mut C,
    stmts: &CaptureStatements,
    info: &CaptureInfo,
) -> Result<()> {
    let spec = serde_json::to_string(&info.spec).map_err(|e| Error::Serialize {
        reason: e.to_string(),
    })?;
    let table = SqlValue::Text(info.table.clone());
    conn.execute(
        "capture: record",
        &stmts.delete_capture,
        vec![table.clone()],
    )
    .await?;
    conn.execute(
        "capture: record",
        &stmts.insert_capture,
        vec![
            table,
            SqlValue::Text(info.topic.clone()),
            SqlValue::Text(info.subject.clone()),
            SqlValue::I64(i64::from(info.schema_id.get())),
            SqlValue::Text(spec),
        ],
    )
    .await?;
    Ok(())
}
