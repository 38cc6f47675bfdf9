//! The embedded schema registry's storage, written once over [`SqlPool`]: `outbox_schemas`,
//! `outbox_schema_ids` and `outbox_subject_config` in the application's database, for sqlx and
//! diesel alike.

use std::sync::Arc;

use super::store::{RegisteredSchema, SchemaStore, VersionState};
use super::stored::{stored_number, stored_schema, stored_version};
use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::sql::{FromRow, Query, SqlConnection, SqlPool, SqlTransaction, Statement};
use crate::table::{SchemaStatements, SqlValue, Statements};
use crate::{Error, Result, SchemaId};

/// The subject under which the global compatibility setting is stored.
const GLOBAL: &str = "";

/// A [`SchemaStore`] in the database behind a [`SqlPool`]. Concurrent registrations from
/// several processes are safe: unique keys on (subject, version), (subject, fingerprint) and
/// the global id turn a lost race into [`Error::Conflict`], which the registry retries.
#[derive(Debug)]
pub struct SqlSchemaStore<P> {
    pool: P,
    stmts: Arc<Statements>,
}

impl<P: Clone> Clone for SqlSchemaStore<P> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            stmts: Arc::clone(&self.stmts),
        }
    }
}

impl<P: SqlPool> SqlSchemaStore<P> {
    /// A store over `pool` using the tables of `stmts` (migrated beforehand).
    pub fn new(pool: impl Into<P>, stmts: Arc<Statements>) -> Self {
        Self {
            pool: pool.into(),
            stmts,
        }
    }

    fn sql(&self) -> &SchemaStatements {
        &self.stmts.schema
    }

    /// `query`'s rows, on a connection of its own.
    async fn fetch<R: FromRow>(
        &self,
        operation: &'static str,
        query: &Query<R>,
        params: Vec<SqlValue>,
    ) -> Result<Vec<R>> {
        let mut conn = self.pool.acquire().await?;
        conn.fetch(operation, query, params).await
    }

    /// Runs `statement` on a connection of its own.
    async fn execute(
        &self,
        operation: &'static str,
        statement: &Statement,
        params: Vec<SqlValue>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.execute(operation, statement, params).await.map(drop)
    }

    /// Registrations of `subject` read by `query`.
    async fn registrations(
        &self,
        operation: &'static str,
        query: &Query<(i32, i32, String)>,
        params: Vec<SqlValue>,
        subject: &str,
    ) -> Result<Vec<RegisteredSchema>> {
        let rows = self.fetch(operation, query, params).await?;
        rows.into_iter()
            .map(|(id, version, json)| RegisteredSchema::from_row(id, subject, version, &json))
            .collect()
    }

    async fn change(
        &self,
        operation: &'static str,
        statement: &Statement,
        subject: &str,
        version: u32,
    ) -> Result<()> {
        let params = vec![text(subject), SqlValue::I32(stored_version(version)?)];
        self.execute(operation, statement, params).await
    }

    async fn count(
        &self,
        operation: &'static str,
        query: &Query<i64>,
        params: Vec<SqlValue>,
    ) -> Result<u64> {
        let rows = self.fetch(operation, query, params).await?;
        let count = rows.first().copied().unwrap_or(0);
        u64::try_from(count).map_err(|_| Error::Decode {
            reason: format!("negative count {count} from the schema tables"),
        })
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

impl<P: SqlPool> SchemaStore for SqlSchemaStore<P> {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        let query = &self.sql().select_versions;
        self.registrations("read schema versions", query, vec![text(subject)], subject)
            .await
    }

    async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<Option<RegisteredSchema>> {
        let (query, params) = match version {
            None => (&self.sql().select_latest_version, vec![text(subject)]),
            Some(v) => match i32::try_from(v) {
                Ok(v) => (
                    &self.sql().select_version,
                    vec![text(subject), SqlValue::I32(v)],
                ),
                Err(_) => return Ok(None),
            },
        };
        let found = self
            .registrations("read schema version", query, params, subject)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn find(&self, subject: &str, schema: &Schema) -> Result<Option<RegisteredSchema>> {
        let params = vec![text(subject), text(schema.fingerprint())];
        let query = &self.sql().select_version_by_fingerprint;
        let found = self
            .registrations("look up schema", query, params, subject)
            .await?;
        // The fingerprint column is trusted only as far as the text behind it agrees.
        Ok(found.into_iter().find(|r| r.schema == *schema))
    }

    async fn holders(&self, id: SchemaId) -> Result<Vec<(String, u32)>> {
        let Ok(id) = id.to_column() else {
            return Ok(Vec::new());
        };
        let rows = self
            .fetch(
                "read schema id holders",
                &self.sql().select_id_holders,
                vec![SqlValue::I32(id)],
            )
            .await?;
        rows.into_iter()
            .map(|(subject, version)| Ok((subject, stored_number(version, "version")?)))
            .collect()
    }

    async fn next_version(&self, subject: &str) -> Result<u32> {
        let rows = self
            .fetch(
                "read next version",
                &self.sql().select_next_version,
                vec![text(subject)],
            )
            .await?;
        let next = rows.first().copied().unwrap_or(1);
        u32::try_from(next).map_err(|_| Error::Decode {
            reason: format!("version {next} out of range in the schema tables"),
        })
    }

    async fn version_states(&self, subject: &str) -> Result<Vec<VersionState>> {
        let rows = self
            .fetch(
                "read version states",
                &self.sql().select_version_states,
                vec![text(subject)],
            )
            .await?;
        rows.into_iter()
            .map(|(version, id, deleted)| {
                Ok(VersionState {
                    version: stored_number(version, "version")?,
                    id: SchemaId::new(stored_number(id, "schema id")?),
                    deleted: deleted != 0,
                })
            })
            .collect()
    }

    async fn soft_delete(&self, subject: &str, version: u32) -> Result<()> {
        let statement = &self.sql().soft_delete_version;
        self.change("soft delete", statement, subject, version)
            .await
    }

    async fn hard_delete(&self, subject: &str, version: u32) -> Result<()> {
        let statement = &self.sql().hard_delete_version;
        self.change("permanent delete", statement, subject, version)
            .await
    }

    async fn schema_usage(&self, id: SchemaId) -> Result<(u64, u64)> {
        let id = SqlValue::I32(id.to_column()?);
        let sql = self.sql();
        let holders = self
            .count(
                "count schema holders",
                &sql.count_schema_holders,
                vec![id.clone()],
            )
            .await?;
        let carried = self
            .count(
                "count outbox rows with schema",
                &sql.count_rows_with_schema,
                vec![id.clone(), id],
            )
            .await?;
        Ok((holders, carried))
    }

    async fn version_numbers(&self, subject: &str) -> Result<Vec<u32>> {
        let rows = self
            .fetch(
                "read version numbers",
                &self.sql().select_version_numbers,
                vec![text(subject)],
            )
            .await?;
        rows.into_iter()
            .map(|v| stored_number(v, "version"))
            .collect()
    }

    async fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        let op = "register schema";
        let sql = self.sql();
        let fingerprint = || text(schema.fingerprint());
        let version_i32 = stored_version(version)?;
        let mut tx = self.pool.begin_write().await?;
        // The same schema soft-deleted in this subject comes back as its old version.
        let restored = tx
            .execute(op, &sql.restore_version, vec![text(subject), fingerprint()])
            .await?;
        if restored > 0 {
            tx.commit().await?;
            return self
                .find(subject, schema)
                .await?
                .ok_or_else(|| Error::Conflict {
                    what: format!("restored version of subject {subject}"),
                });
        }
        let mut found = tx
            .fetch(op, &sql.select_schema_id, vec![fingerprint()])
            .await?;
        if found.is_empty() {
            tx.execute(op, &sql.insert_schema_id, vec![fingerprint()])
                .await?;
            found = tx
                .fetch(op, &sql.select_schema_id, vec![fingerprint()])
                .await?;
        }
        // Nothing found after our own insert: the id row went away (another writer's
        // transaction, a trigger). A conflict the registry retries, never id 0.
        let id = found.pop().ok_or_else(|| Error::Conflict {
            what: format!("schema id for subject {subject}"),
        })?;
        let params = vec![
            SqlValue::I32(id),
            text(subject),
            SqlValue::I32(version_i32),
            text(schema.canonical_json()),
            fingerprint(),
        ];
        tx.execute(op, &sql.insert_version, params).await?;
        tx.commit().await?;
        RegisteredSchema::from_row(id, subject, version_i32, schema.canonical_json())
    }

    async fn schema_by_id(&self, id: SchemaId) -> Result<Option<Schema>> {
        let Ok(id) = id.to_column() else {
            return Ok(None);
        };
        let rows = self
            .fetch(
                "read schema by id",
                &self.sql().select_schema_by_id,
                vec![SqlValue::I32(id)],
            )
            .await?;
        rows.first().map(|json| stored_schema(json)).transpose()
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        let mut subjects = self
            .fetch("list subjects", &self.sql().select_subjects, vec![])
            .await?;
        subjects.sort();
        Ok(subjects)
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        let rows = self
            .fetch(
                "read compatibility",
                &self.sql().select_compatibility,
                vec![text(subject.unwrap_or(GLOBAL))],
            )
            .await?;
        rows.first().map(|mode| mode.parse()).transpose()
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let op = "set compatibility";
        let subject = text(subject.unwrap_or(GLOBAL));
        match mode {
            Some(mode) => {
                let params = vec![subject, text(mode.as_str())];
                self.execute(op, &self.sql().upsert_compatibility, params)
                    .await
            }
            None => {
                self.execute(op, &self.sql().delete_compatibility, vec![subject])
                    .await
            }
        }
    }
}
