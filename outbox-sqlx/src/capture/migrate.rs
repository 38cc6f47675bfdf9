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
    CapturePlan, CaptureStatements, MAX_DDL_BYTES, SourceColumn, install_statements,
    remove_statements,
};
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::table::{Dialect, Identifier};
use outbox_core::{Error, Result};

use super::{
    Capture, CaptureInfo, columns, install_and_record, load, not_captured, pass_guard, run_all,
};
use crate::database::{Column, Decoded, OutboxDatabase, begin_write};
use crate::error::store;

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
    ///   [`MAX_DDL_BYTES`], a DDL after which the table cannot be captured (a column of an
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
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(store("capture: connect"))?;
        let mut info = load::<DB>(&mut conn, &self.stmts, table)
            .await?
            .ok_or_else(|| not_captured(table))?;
        drop(conn);
        let uninstall = remove_statements(DB::DIALECT, &self.names, &ident)?;
        let future = match DB::DIALECT {
            Dialect::MySql => self.columns_on_scratch(&ident, ddl).await?,
            Dialect::Postgres | Dialect::Sqlite => {
                let mut tx = begin_write(&self.pool)
                    .await
                    .map_err(store("capture: begin"))?;
                // Without the triggers, as when it is applied: SQLite refuses to drop a
                // column a trigger reads.
                pass_guard::<DB>(&mut tx).await?;
                pass_guard::<DB>(&mut tx).await?;
                run_all::<DB>(&mut tx, &uninstall).await?;
                DB::run(&mut tx, ddl, vec![])
                    .await
                    .map_err(store("capture migrate: apply the DDL"))?;
                let cols = columns::<DB>(&mut tx, &self.stmts, &self.names, &ident).await?;
                tx.rollback().await.map_err(store("capture: rollback"))?;
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
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(store("capture: connect"))?;
            DB::run(&mut conn, ddl, vec![])
                .await
                .map_err(store("capture migrate: apply the DDL"))?;
            install_and_record::<DB>(&mut conn, &self.stmts, &install, &info).await?;
        } else {
            let mut tx = begin_write(&self.pool)
                .await
                .map_err(store("capture: begin"))?;
            pass_guard::<DB>(&mut tx).await?;
            run_all::<DB>(&mut tx, &uninstall).await?;
            DB::run(&mut tx, ddl, vec![])
                .await
                .map_err(store("capture migrate: apply the DDL"))?;
            let now = columns::<DB>(&mut tx, &self.stmts, &self.names, &ident).await?;
            let again =
                CapturePlan::derive_after_change(DB::DIALECT, &info.spec, &now)?.schema()?;
            if again.fingerprint() != schema.fingerprint() {
                return Err(refused(
                    table,
                    "the table changed while the DDL was checked; retry",
                ));
            }
            install_and_record::<DB>(&mut tx, &self.stmts, &install, &info).await?;
            tx.commit().await.map_err(store("capture: commit"))?;
        }
        Ok(info)
    }

    /// MySQL: the columns `table` has after `ddl`, found on a copy in a scratch database.
    async fn columns_on_scratch(&self, table: &Identifier, ddl: &str) -> Result<Vec<SourceColumn>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(store("capture: connect"))?;
        let current = DB::rows(&mut conn, "SELECT DATABASE()", vec![], &[Column::Text])
            .await
            .map_err(store("capture migrate: current database"))?
            .into_iter()
            .flatten()
            .next()
            .map(Decoded::text)
            .ok_or_else(|| refused(table.as_str(), "no default database"))?;
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
            setup = DB::run(&mut conn, &sql, vec![]).await;
            if setup.is_err() {
                break;
            }
        }
        let scratch_names = self.names.clone().in_schema(scratch.as_str())?;
        let stmts = CaptureStatements::new(Dialect::MySql, &scratch_names);
        let cols = match setup {
            Err(e) => Err(store("capture migrate: scratch copy")(e)),
            // A text of its own: MySQL binds a prepared statement's tables when it is
            // prepared, and sqlx caches it per connection.
            Ok(_) => match DB::run(
                &mut conn,
                &format!("{ddl}\n/* outbox: scratch copy */"),
                vec![],
            )
            .await
            {
                Ok(_) => columns::<DB>(&mut conn, &stmts, &scratch_names, table).await,
                Err(e) => Err(store(
                    "capture migrate: the DDL fails on a copy of the table",
                )(e)),
            },
        };
        let back = DB::run(
            &mut conn,
            &format!("USE {}", q(&Identifier::new(&current)?)),
            vec![],
        )
        .await;
        let dropped = DB::run(
            &mut conn,
            &format!("DROP DATABASE IF EXISTS {}", q(&scratch)),
            vec![],
        )
        .await;
        // Its statement cache points into the scratch database: it never goes back to the pool.
        drop(conn.detach());
        back.and(dropped)
            .map_err(store("capture migrate: drop the scratch copy"))?;
        cols
    }
}
