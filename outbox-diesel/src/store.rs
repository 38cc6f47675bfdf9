//! The embedded schema registry on a diesel connection: the same tables and statements as
//! `outbox-sqlx`, so a service can move between the two (or run both) without
//! re-registering.

use std::sync::{Mutex, PoisonError};

use outbox_core::compat::CompatibilityMode;
use outbox_core::registry::{RegisteredSchema, SchemaStore, stored_schema, stored_version};
use outbox_core::table::{SqlValue, Statements};
use outbox_core::{Error, Result, Schema};

use crate::connection::OutboxConnection;
use crate::error::{InTransaction, store};

/// The subject under which the global compatibility setting is stored (as `outbox-sqlx`).
const GLOBAL: &str = "";

/// A [`SchemaStore`] on one diesel connection. Its futures complete without waiting, so the
/// async registry engine runs on it through [`outbox_core::publish::complete_now`].
pub(crate) struct DieselSchemaStore<'c, C> {
    conn: Mutex<&'c mut C>,
    stmts: &'c Statements,
}

impl<'c, C: OutboxConnection> DieselSchemaStore<'c, C> {
    pub(crate) fn new(conn: &'c mut C, stmts: &'c Statements) -> Self {
        Self {
            conn: Mutex::new(conn),
            stmts,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut C) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    }
}

impl<C: OutboxConnection> SchemaStore for DieselSchemaStore<'_, C> {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        let rows = self.with(|c| {
            c.load_versions(
                &self.stmts.select_versions,
                vec![SqlValue::Text(subject.to_owned())],
            )
            .map_err(store("read schema versions"))
        })?;
        rows.into_iter()
            .map(|(id, version, json)| RegisteredSchema::from_row(id, subject, version, &json))
            .collect()
    }

    async fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        let fingerprint = || SqlValue::Text(schema.fingerprint().to_owned());
        let version_i32 = stored_version(version)?;
        let op = "register schema";
        let id = self.with(|c| {
            c.transaction::<_, InTransaction, _>(|c| {
                let select = &self.stmts.select_schema_id;
                let mut found = c.load_i32(select, vec![fingerprint()]).map_err(store(op))?;
                if found.is_empty() {
                    c.run(&self.stmts.insert_schema_id, vec![fingerprint()])
                        .map_err(store(op))?;
                    found = c.load_i32(select, vec![fingerprint()]).map_err(store(op))?;
                }
                // Nothing found after our own insert: the id row went away (another writer's
                // transaction, a trigger). A conflict the registry retries, never id 0.
                let Some(id) = found.pop() else {
                    return Err(InTransaction(Error::Conflict {
                        what: format!("schema id for subject {subject}"),
                    }));
                };
                c.run(
                    &self.stmts.insert_version,
                    vec![
                        SqlValue::I32(id),
                        SqlValue::Text(subject.to_owned()),
                        SqlValue::I32(version_i32),
                        SqlValue::Text(schema.canonical_json().to_owned()),
                        fingerprint(),
                    ],
                )
                .map_err(store(op))?;
                Ok(id)
            })
            .map_err(|InTransaction(e)| e)
        })?;
        RegisteredSchema::from_row(id, subject, version_i32, schema.canonical_json())
    }

    async fn schema_by_id(&self, id: u32) -> Result<Option<Schema>> {
        let Ok(id) = i32::try_from(id) else {
            return Ok(None);
        };
        let rows = self.with(|c| {
            c.load_text(&self.stmts.select_schema_by_id, vec![SqlValue::I32(id)])
                .map_err(store("read schema by id"))
        })?;
        rows.first().map(|json| stored_schema(json)).transpose()
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        let mut subjects = self.with(|c| {
            c.load_text(&self.stmts.select_subjects, vec![])
                .map_err(store("list subjects"))
        })?;
        subjects.sort();
        Ok(subjects)
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        let rows = self.with(|c| {
            c.load_text(
                &self.stmts.select_compatibility,
                vec![SqlValue::Text(subject.unwrap_or(GLOBAL).to_owned())],
            )
            .map_err(store("read compatibility"))
        })?;
        rows.first().map(|mode| mode.parse()).transpose()
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let subject = SqlValue::Text(subject.unwrap_or(GLOBAL).to_owned());
        self.with(|c| {
            match mode {
                Some(mode) => c.run(
                    &self.stmts.upsert_compatibility,
                    vec![subject, SqlValue::Text(mode.as_str().to_owned())],
                ),
                None => c.run(&self.stmts.delete_compatibility, vec![subject]),
            }
            .map(drop)
            .map_err(store("set compatibility"))
        })
    }
}

#[cfg(test)]
mod tests {
    use outbox_core::registry::conformance;
    use outbox_core::table::{Statements, TableNames};

    use super::DieselSchemaStore;
    use crate::connection::OutboxConnection;
    use crate::migrate::migrate;

    /// The registry conformance suite on a diesel connection, as every other schema store
    /// runs it (diesel's store used to run none of it).
    fn conformance_on<C: OutboxConnection>(conn: &mut C, name: &str) {
        let prefix = format!("c{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let names = TableNames::with_prefix(&prefix).expect("prefix");
        let stmts = Statements::new(<C::Backend as crate::DieselBackend>::DIALECT, &names);
        migrate(conn, &stmts).expect("migrates");
        let store = DieselSchemaStore::new(conn, &stmts);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(conformance::run_all(&store, name));
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn registry_conformance_on_sqlite() {
        use diesel::Connection as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db").display().to_string();
        let mut conn = diesel::SqliteConnection::establish(&path).expect("sqlite");
        conformance_on(&mut conn, "diesel-sqlite");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn registry_conformance_on_postgres() {
        let Some(mut conn) = crate::test_db::establish::<diesel::PgConnection>(
            "OUTBOX_TEST_PG_URL",
            crate::test_db::PG_URL,
        ) else {
            return;
        };
        conformance_on(&mut conn, "diesel-postgres");
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn registry_conformance_on_mariadb() {
        let Some(mut conn) = crate::test_db::establish::<diesel::MysqlConnection>(
            "OUTBOX_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        ) else {
            return;
        };
        conformance_on(&mut conn, "diesel-mariadb");
    }
}
