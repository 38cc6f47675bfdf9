//! DDL under capture: derive the schema the table will have, check it, and only then apply
//! the DDL and replace the triggers.
//!
//! - PostgreSQL and SQLite run DDL in transactions: the DDL is applied in one, the table
//!   introspected and the transaction rolled back; once the schema is registered, the DDL,
//!   the new triggers and the record are applied in one more transaction, which checks that
//!   the table still derives the registered schema.
//! - MySQL/MariaDB commit DDL implicitly: the DDL runs first against a scratch copy
//!   (`CREATE TABLE <scratch db>.<table> LIKE <table>`, then the DDL with the scratch database
//!   as the default one, so the DDL must name the table unqualified); then for real,
//!   followed by `CREATE OR REPLACE TRIGGER` (MariaDB) for each trigger. Between the two a
//!   write still fires the old trigger, which writes the old schema's rows.

use outbox_core::capture::{
    CapturePlan, CaptureStatements, MAX_DDL_BYTES, SourceColumn, check_migrate_ddl,
    install_statements, remove_statements,
};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::sql::{Query, SqlConnection, SqlPool, SqlTransaction, Statement};
use outbox_core::table::{Dialect, Identifier};
use outbox_core::{Error, Result};

use super::{
    Capture, CaptureInfo, columns, install_and_record, load, not_captured, pass_guard, run_all,
};
use crate::database::OutboxDatabase;

fn refused(table: &str, reason: impl Into<String>) -> Error {
    Error::CaptureRefused {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

impl<DB: OutboxDatabase> Capture<DB> {
    /// Applies `ddl` to the captured `table` if the schema the table will have is compatible
    /// with the registered one: registers it, applies the DDL and replaces the triggers. A
    /// breaking change is refused with every incompatibility and nothing changed.
    ///
    /// # Errors
    ///
    /// - [`Error::IncompatibleSchema`] listing the incompatibilities (nothing changed);
    /// - [`Error::CaptureRefused`] for a table that is not captured, an empty DDL or one over
    ///   [`MAX_DDL_BYTES`], a DDL that is not one `ALTER TABLE` of `table`
    ///   ([`check_migrate_ddl`]), a DDL after which the table cannot be captured (a column of an
    ///   unmapped type, the key dropped), or (MySQL) one naming the database;
    /// - [`Error::Store`] when the DDL itself fails (nothing changed).
    pub async fn migrate<S: SchemaStore>(
        &self,
        registry: &Registry<S>,
        table: &str,
        ddl: &str,
    ) -> Result<CaptureInfo> {
        let ident = Identifier::new(table)?;
        if ddl.trim().is_empty() {
            return Err(refused(table, "the DDL is empty"));
        }
        if ddl.len() > MAX_DDL_BYTES {
            return Err(refused(
                table,
                format!("the DDL is {} bytes, more than {MAX_DDL_BYTES}", ddl.len()),
            ));
        }
        check_migrate_ddl(DB::DIALECT, &self.names, &ident, ddl).map_err(|r| refused(table, r))?;
        self.check_server(table).await?;
        let mut conn = self.pool.acquire().await?;
        let mut info = load(&mut conn, &self.stmts, table)
            .await?
            .ok_or_else(|| not_captured(table))?;
        drop(conn);
        let uninstall = remove_statements(DB::DIALECT, &self.names, &ident)?;
        let apply = Statement::new(ddl);
        let future = match DB::DIALECT {
            Dialect::MySql => self.columns_on_scratch(&ident, ddl).await?,
            Dialect::Postgres | Dialect::Sqlite => {
                let mut tx = self.pool.begin_write().await?;
                // Without the triggers, as when it is applied: SQLite refuses to drop a
                // column a trigger reads.
                pass_guard(&mut tx).await?;
                run_all(&mut tx, &uninstall).await?;
                tx.execute("capture migrate: apply the DDL", &apply, vec![])
                    .await?;
                let cols = columns(&mut tx, &self.stmts, &self.names, &ident).await?;
                // Dropped uncommitted: rolled back.
                drop(tx);
                cols
            }
        };
        let plan = CapturePlan::derive_after_change(DB::DIALECT, &info.spec, &future)?;
        let schema = plan.schema()?;
        let report = registry.check(&info.subject, &schema).await?;
        if !report.is_compatible() {
            return Err(Error::IncompatibleSchema {
                subject: info.subject,
                mode: report.mode,
                problems: report.problems,
            });
        }
        let registered = registry.register(&info.subject, &schema).await?;
        let install = install_statements(DB::DIALECT, &self.names, &plan, registered.id)?;
        info.schema_id = registered.id;
        if DB::DIALECT == Dialect::MySql {
            let mut conn = self.pool.acquire().await?;
            conn.execute("capture migrate: apply the DDL", &apply, vec![])
                .await?;
            install_and_record(&mut conn, &self.stmts, &install, &info).await?;
        } else {
            let mut tx = self.pool.begin_write().await?;
            pass_guard(&mut tx).await?;
            run_all(&mut tx, &uninstall).await?;
            tx.execute("capture migrate: apply the DDL", &apply, vec![])
                .await?;
            let now = columns(&mut tx, &self.stmts, &self.names, &ident).await?;
            let again =
                CapturePlan::derive_after_change(DB::DIALECT, &info.spec, &now)?.schema()?;
            if again.fingerprint() != schema.fingerprint() {
                return Err(refused(
                    table,
                    "the table changed while the DDL was checked; retry",
                ));
            }
            install_and_record(&mut tx, &self.stmts, &install, &info).await?;
            tx.commit().await?;
        }
        Ok(info)
    }

    /// MySQL: the columns `table` has after `ddl`, found on a copy in a scratch database.
    async fn columns_on_scratch(&self, table: &Identifier, ddl: &str) -> Result<Vec<SourceColumn>> {
        let mut conn = self.pool.acquire().await?;
        let current: Query<String> = Query::new("SELECT COALESCE(DATABASE(), '')");
        let current = conn
            .fetch("capture migrate: current database", &current, vec![])
            .await?
            .into_iter()
            .next()
            .filter(|db| !db.is_empty())
            .ok_or_else(|| refused(table.as_str(), "no default database"))?;
        // Checked before the scratch database exists, so going back cannot fail on it.
        let home = Identifier::new(&current)?;
        let database = match self.names.schema() {
            Some(schema) => schema.to_string(),
            None => current.clone(),
        };
        let lower = ddl.to_ascii_lowercase();
        let db = database.to_ascii_lowercase();
        if lower.contains(&format!("{db}.")) || lower.contains(&format!("`{db}`.")) {
            return Err(refused(
                table.as_str(),
                "name the table unqualified in the DDL (it is tried on a scratch copy first)",
            ));
        }
        // A database of its own per call, so concurrent checks never share a copy.
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let scratch = Identifier::new(&format!("outbox_scratch_{}", &unique[20..]))?;
        let q = |i: &Identifier| Dialect::MySql.quote(i);
        let source = Identifier::new(&database)?;
        let copy = format!("{}.{}", q(&scratch), q(table));
        let mut setup = Ok(0);
        for sql in [
            format!("CREATE DATABASE {}", q(&scratch)),
            format!("CREATE TABLE {copy} LIKE {}.{}", q(&source), q(table)),
            format!("USE {}", q(&scratch)),
        ] {
            setup = conn
                .execute(
                    "capture migrate: scratch copy",
                    &Statement::new(sql),
                    vec![],
                )
                .await;
            if setup.is_err() {
                break;
            }
        }
        let scratch_names = self.names.clone().in_schema(scratch.as_str())?;
        let stmts = CaptureStatements::new(Dialect::MySql, &scratch_names);
        // A text of its own: MySQL binds a prepared statement's tables when it is prepared,
        // and sqlx caches it per connection.
        let on_copy = Statement::new(format!("{ddl}\n/* outbox: scratch copy */"));
        let cols = match setup {
            Err(e) => Err(e),
            Ok(_) => match conn
                .execute(
                    "capture migrate: the DDL fails on a copy of the table",
                    &on_copy,
                    vec![],
                )
                .await
            {
                Ok(_) => columns(&mut conn, &stmts, &scratch_names, table).await,
                Err(e) => Err(e),
            },
        };
        let back = Statement::new(format!("USE {}", q(&home)));
        let back = conn
            .execute("capture migrate: drop the scratch copy", &back, vec![])
            .await;
        let scrap = Statement::new(format!("DROP DATABASE IF EXISTS {}", q(&scratch)));
        let dropped = conn
            .execute("capture migrate: drop the scratch copy", &scrap, vec![])
            .await;
        // Its statement cache points into the scratch database: it never goes back to the pool.
        conn.discard();
        back.and(dropped)?;
        cols
    }
}
