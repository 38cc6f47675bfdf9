//! Change capture of existing tables: introspect, register the change-event schema, install
//! the triggers, keep the record in `<prefix>_captures`; and DDL under capture
//! ([`Capture::migrate`]).

mod guard;
mod migrate;

use guard::{guard, pass_guard};

use outbox_core::capture::{
    CapturePlan, CaptureSpec, CaptureStatements, SourceColumn, install_statements,
    remove_statements, unguard_statements,
};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::table::{Dialect, Identifier, TableNames};
use outbox_core::{Error, Result};
use sqlx::Pool;

use crate::database::{Column, Decoded, OutboxDatabase, Value, begin_write};
use crate::error::store;

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
    pub schema_id: u32,
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
#[derive(Debug, Clone)]
pub struct Capture<DB: OutboxDatabase> {
    pool: Pool<DB>,
    names: TableNames,
    stmts: CaptureStatements,
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
        Self { pool, names, stmts }
    }

    /// The columns of `table`, in table order (none when it does not exist).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] on a database error.
    pub async fn columns(&self, table: &Identifier) -> Result<Vec<SourceColumn>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(store("capture: connect"))?;
        columns::<DB>(&mut conn, &self.stmts, &self.names, table).await
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
    /// [`Error::CaptureRefused`] (see [`CapturePlan::derive`]),
    /// [`Error::IncompatibleSchema`], [`Error::InvalidIdentifier`], database errors.
    pub async fn add<S: SchemaStore>(
        &self,
        registry: &Registry<S>,
        spec: &CaptureSpec,
    ) -> Result<CaptureInfo> {
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
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(store("capture: connect"))?;
            install_and_record::<DB>(&mut conn, &self.stmts, &install, &info).await?;
        } else {
            let mut tx = begin_write(&self.pool)
                .await
                .map_err(store("capture: begin"))?;
            install_and_record::<DB>(&mut tx, &self.stmts, &install, &info).await?;
            if DB::DIALECT == Dialect::Postgres {
                guard::<DB>(&mut tx, &self.names).await?;
            }
            tx.commit().await.map_err(store("capture: commit"))?;
        }
        Ok(info)
    }

    /// Every capture, by table name.
    ///
    /// # Errors
    ///
    /// Database errors, or a stored spec that no longer reads.
    pub async fn list(&self) -> Result<Vec<CaptureInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(store("capture: connect"))?;
        let rows = DB::rows(
            &mut conn,
            &self.stmts.select_captures,
            vec![],
            &CAPTURE_COLUMNS,
        )
        .await
        .map_err(store("capture: list"))?;
        rows.into_iter().map(info_from_row).collect()
    }

    /// The capture of `table`, if there is one.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn get(&self, table: &str) -> Result<Option<CaptureInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(store("capture: connect"))?;
        load::<DB>(&mut conn, &self.stmts, table).await
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
        let forget = |conn| async move {
            DB::run(
                conn,
                &self.stmts.delete_capture,
                vec![Value::Text(table.to_owned())],
            )
            .await
            .map_err(store("capture: forget"))
        };
        let removed = if DB::DIALECT == Dialect::MySql {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(store("capture: connect"))?;
            run_all::<DB>(&mut conn, &drop).await?;
            forget(&mut *conn).await?
        } else {
            let mut tx = begin_write(&self.pool)
                .await
                .map_err(store("capture: begin"))?;
            run_all::<DB>(&mut tx, &drop).await?;
            let removed = forget(&mut *tx).await?;
            let left = DB::rows(
                &mut tx,
                &self.stmts.select_captures,
                vec![],
                &CAPTURE_COLUMNS,
            )
            .await
            .map_err(store("capture: list"))?;
            if DB::DIALECT == Dialect::Postgres && left.is_empty() {
                run_all::<DB>(&mut tx, &unguard_statements(&self.names)?).await?;
            }
            tx.commit().await.map_err(store("capture: commit"))?;
            removed
        };
        Ok(removed > 0)
    }
}

const CAPTURE_COLUMNS: [Column; 5] = [
    Column::Text,
    Column::Text,
    Column::Text,
    Column::I64,
    Column::Text,
];

fn info_from_row(row: Vec<Value>) -> Result<CaptureInfo> {
    let mut cells = row.into_iter();
    let mut next = || {
        cells.next().ok_or_else(|| Error::Decode {
            reason: "capture row: missing column".to_owned(),
        })
    };
    let (table, topic, subject) = (next()?.text(), next()?.text(), next()?.text());
    let schema_id = u32::try_from(next()?.i64()).map_err(|_| Error::Decode {
        reason: format!("capture of {table}: schema id out of range"),
    })?;
    let spec = serde_json::from_str(&next()?.text()).map_err(|e| Error::Decode {
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

async fn load<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    stmts: &CaptureStatements,
    table: &str,
) -> Result<Option<CaptureInfo>> {
    let rows = DB::rows(
        conn,
        &stmts.select_capture,
        vec![Value::Text(table.to_owned())],
        &CAPTURE_COLUMNS,
    )
    .await
    .map_err(store("capture: read"))?;
    rows.into_iter().next().map(info_from_row).transpose()
}

async fn columns<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    stmts: &CaptureStatements,
    names: &TableNames,
    table: &Identifier,
) -> Result<Vec<SourceColumn>> {
    let param = Value::Text(stmts.columns_param(names, table));
    let rows = DB::rows(
        conn,
        &stmts.select_columns,
        vec![param],
        &[
            Column::Text,
            Column::Text,
            Column::I64,
            Column::Text,
            Column::I64,
        ],
    )
    .await
    .map_err(store("capture: introspect table"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            let mut next = || cells.next().unwrap_or(Value::I64(0));
            let (name, data_type) = (next().text(), next().text());
            let nullable = next().i64() != 0;
            let comment = Some(next().text()).filter(|c| !c.is_empty());
            let pk = u32::try_from(next().i64()).ok().filter(|p| *p > 0);
            SourceColumn {
                name,
                data_type,
                nullable,
                comment,
                primary_key: pk,
            }
        })
        .collect())
}

async fn run_all<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    statements: &[String],
) -> Result<()> {
    for sql in statements {
        DB::run(conn, sql, vec![])
            .await
            .map_err(store("capture: install triggers"))?;
    }
    Ok(())
}

/// Installs (or replaces) the triggers and records the capture with the schema id they write.
async fn install_and_record<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    stmts: &CaptureStatements,
    install: &[String],
    info: &CaptureInfo,
) -> Result<()> {
    run_all::<DB>(conn, install).await?;
    record::<DB>(conn, stmts, info).await
}

async fn record<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    stmts: &CaptureStatements,
    info: &CaptureInfo,
) -> Result<()> {
    let spec = serde_json::to_string(&info.spec).map_err(|e| Error::Serialize {
        reason: e.to_string(),
    })?;
    DB::run(
        conn,
        &stmts.delete_capture,
        vec![Value::Text(info.table.clone())],
    )
    .await
    .map_err(store("capture: record"))?;
    DB::run(
        conn,
        &stmts.insert_capture,
        vec![
            Value::Text(info.table.clone()),
            Value::Text(info.topic.clone()),
            Value::Text(info.subject.clone()),
            Value::I64(i64::from(info.schema_id)),
            Value::Text(spec),
        ],
    )
    .await
    .map_err(store("capture: record"))?;
    Ok(())
}
