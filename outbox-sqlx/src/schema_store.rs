//! The embedded schema registry's storage: `outbox_schemas`, `outbox_schema_ids` and
//! `outbox_subject_config` in the application's database.

use std::sync::Arc;

use outbox_core::compat::CompatibilityMode;
use outbox_core::registry::{
    RegisteredSchema, SchemaStore, VersionState, stored_schema, stored_version,
};
use outbox_core::table::Statements;
use outbox_core::{Error, Result, Schema};
use sqlx::Pool;

use crate::database::{Column, Decoded, OutboxDatabase, Value, begin_write};
use crate::error::store;

/// The subject under which the global compatibility setting is stored.
const GLOBAL: &str = "";

/// A [`SchemaStore`] in the database. Concurrent registrations from several processes are
/// safe: unique keys on (subject, version), (subject, fingerprint) and the global id turn a
/// lost race into [`Error::Conflict`], which the registry retries.
#[derive(Debug)]
pub struct SqlxSchemaStore<DB: OutboxDatabase> {
    pool: Pool<DB>,
    stmts: Arc<Statements>,
}

impl<DB: OutboxDatabase> Clone for SqlxSchemaStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            stmts: Arc::clone(&self.stmts),
        }
    }
}

impl<DB: OutboxDatabase> SqlxSchemaStore<DB> {
    /// A store over `pool` using the tables of `stmts` (migrated beforehand).
    pub fn new(pool: Pool<DB>, stmts: Arc<Statements>) -> Self {
        Self { pool, stmts }
    }

    async fn query(
        &self,
        operation: &'static str,
        sql: &str,
        params: Vec<Value>,
        columns: &[Column],
    ) -> Result<Vec<Vec<Value>>> {
        let mut conn = self.pool.acquire().await.map_err(store(operation))?;
        DB::rows(&mut *conn, sql, params, columns)
            .await
            .map_err(store(operation))
    }
}

impl<DB: OutboxDatabase> SqlxSchemaStore<DB> {
    /// Registrations from `(id, version, schema_json)` rows.
    async fn registrations(
        &self,
        operation: &'static str,
        sql: &str,
        params: Vec<Value>,
        subject: &str,
    ) -> Result<Vec<RegisteredSchema>> {
        let rows = self
            .query(
                operation,
                sql,
                params,
                &[Column::I32, Column::I32, Column::Text],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let mut row = row.into_iter();
                match (row.next(), row.next(), row.next()) {
                    (Some(id), Some(version), Some(json)) => {
                        RegisteredSchema::from_row(id.i32(), subject, version.i32(), &json.text())
                    }
                    _ => unreachable!("three columns were asked for"),
                }
            })
            .collect()
    }
}

impl<DB: OutboxDatabase> SqlxSchemaStore<DB> {
    async fn change(
        &self,
        sql: &str,
        operation: &'static str,
        subject: &str,
        version: u32,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(store(operation))?;
        DB::run(
            &mut *conn,
            sql,
            vec![
                Value::Text(subject.to_owned()),
                Value::I32(stored_version(version)?),
            ],
        )
        .await
        .map_err(store(operation))?;
        Ok(())
    }
}

impl<DB: OutboxDatabase> SchemaStore for SqlxSchemaStore<DB> {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        self.registrations(
            "read schema versions",
            &self.stmts.select_versions,
            vec![Value::Text(subject.to_owned())],
            subject,
        )
        .await
    }

    async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<Option<RegisteredSchema>> {
        let subject_param = Value::Text(subject.to_owned());
        let (sql, params) = match version {
            None => (&self.stmts.select_latest_version, vec![subject_param]),
            Some(v) => match i32::try_from(v) {
                Ok(v) => (
                    &self.stmts.select_version,
                    vec![subject_param, Value::I32(v)],
                ),
                Err(_) => return Ok(None),
            },
        };
        let found = self
            .registrations("read schema version", sql, params, subject)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn find(&self, subject: &str, schema: &Schema) -> Result<Option<RegisteredSchema>> {
        let found = self
            .registrations(
                "look up schema",
                &self.stmts.select_version_by_fingerprint,
                vec![
                    Value::Text(subject.to_owned()),
                    Value::Text(schema.fingerprint().to_owned()),
                ],
                subject,
            )
            .await?;
        // The fingerprint column is trusted only as far as the text behind it agrees.
        Ok(found.into_iter().find(|r| r.schema == *schema))
    }

    async fn holders(&self, id: u32) -> Result<Vec<(String, u32)>> {
        let Ok(id) = i32::try_from(id) else {
            return Ok(Vec::new());
        };
        let rows = self
            .query(
                "read schema id holders",
                &self.stmts.select_id_holders,
                vec![Value::I32(id)],
                &[Column::Text, Column::I32],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let mut row = row.into_iter();
                let subject = row.next().map(Value::text).unwrap_or_default();
                let version = row.next().map_or(0, Value::i32);
                let version = u32::try_from(version).map_err(|_| Error::Decode {
                    reason: format!("negative version {version} in the schema tables"),
                })?;
                Ok((subject, version))
            })
            .collect()
    }

    async fn next_version(&self, subject: &str) -> Result<u32> {
        let rows = self
            .query(
                "read next version",
                &self.stmts.select_next_version,
                vec![Value::Text(subject.to_owned())],
                &[Column::I64],
            )
            .await?;
        let next = rows
            .into_iter()
            .next()
            .and_then(|mut r| r.pop())
            .map_or(1, Value::i64);
        u32::try_from(next).map_err(|_| Error::Decode {
            reason: format!("version {next} out of range in the schema tables"),
        })
    }

    async fn version_states(&self, subject: &str) -> Result<Vec<VersionState>> {
        let rows = self
            .query(
                "read version states",
                &self.stmts.select_version_states,
                vec![Value::Text(subject.to_owned())],
                &[Column::I32, Column::I32, Column::I32],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let mut row = row.into_iter().map(Value::i32);
                let (version, id, deleted) = (
                    row.next().unwrap_or_default(),
                    row.next().unwrap_or_default(),
                    row.next().unwrap_or_default(),
                );
                let number = |v: i32| {
                    u32::try_from(v).map_err(|_| Error::Decode {
                        reason: format!("negative number {v} in the schema tables"),
                    })
                };
                Ok(VersionState {
                    version: number(version)?,
                    id: number(id)?,
                    deleted: deleted != 0,
                })
            })
            .collect()
    }

    async fn soft_delete(&self, subject: &str, version: u32) -> Result<()> {
        self.change(
            &self.stmts.soft_delete_version,
            "soft delete",
            subject,
            version,
        )
        .await
    }

    async fn hard_delete(&self, subject: &str, version: u32) -> Result<()> {
        self.change(
            &self.stmts.hard_delete_version,
            "permanent delete",
            subject,
            version,
        )
        .await
    }

    async fn schema_usage(&self, id: u32) -> Result<(u64, u64)> {
        let id = Value::I32(stored_version(id)?);
        let count = |rows: Vec<Vec<Value>>| {
            rows.into_iter()
                .next()
                .and_then(|mut r| r.pop())
                .map_or(0, |v| u64::try_from(v.i64()).unwrap_or(0))
        };
        let holders = self
            .query(
                "count schema holders",
                &self.stmts.count_schema_holders,
                vec![id.clone()],
                &[Column::I64],
            )
            .await?;
        let carried = self
            .query(
                "count outbox rows with schema",
                &self.stmts.count_rows_with_schema,
                vec![id.clone(), id],
                &[Column::I64],
            )
            .await?;
        Ok((count(holders), count(carried)))
    }

    async fn version_numbers(&self, subject: &str) -> Result<Vec<u32>> {
        let rows = self
            .query(
                "read version numbers",
                &self.stmts.select_version_numbers,
                vec![Value::Text(subject.to_owned())],
                &[Column::I32],
            )
            .await?;
        rows.into_iter()
            .filter_map(|mut row| row.pop())
            .map(|v| {
                let v = v.i32();
                u32::try_from(v).map_err(|_| Error::Decode {
                    reason: format!("negative version {v} in the schema tables"),
                })
            })
            .collect()
    }

    async fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        let op = "register schema";
        let fingerprint = schema.fingerprint().to_owned();
        let mut tx = begin_write(&self.pool).await.map_err(store(op))?;
        // The same schema soft-deleted in this subject comes back as its old version.
        let restored = DB::run(
            &mut *tx,
            &self.stmts.restore_version,
            vec![
                Value::Text(subject.to_owned()),
                Value::Text(fingerprint.clone()),
            ],
        )
        .await
        .map_err(store(op))?;
        if restored > 0 {
            tx.commit().await.map_err(store(op))?;
            return self
                .find(subject, schema)
                .await?
                .ok_or_else(|| Error::Conflict {
                    what: format!("restored version of subject {subject}"),
                });
        }
        let select_id = &self.stmts.select_schema_id;
        let by_fingerprint = || vec![Value::Text(fingerprint.clone())];
        let mut found = DB::rows(&mut *tx, select_id, by_fingerprint(), &[Column::I32])
            .await
            .map_err(store(op))?;
        if found.is_empty() {
            DB::run(&mut *tx, &self.stmts.insert_schema_id, by_fingerprint())
                .await
                .map_err(store(op))?;
            found = DB::rows(&mut *tx, select_id, by_fingerprint(), &[Column::I32])
                .await
                .map_err(store(op))?;
        }
        let id = found
            .pop()
            .and_then(|mut row| row.pop())
            .map(Value::i32)
            .ok_or_else(|| Error::Conflict {
                what: format!("schema id for subject {subject}"),
            })?;
        let version_i32 = stored_version(version)?;
        DB::run(
            &mut *tx,
            &self.stmts.insert_version,
            vec![
                Value::I32(id),
                Value::Text(subject.to_owned()),
                Value::I32(version_i32),
                Value::Text(schema.canonical_json().to_owned()),
                Value::Text(fingerprint),
            ],
        )
        .await
        .map_err(store(op))?;
        tx.commit().await.map_err(store(op))?;
        RegisteredSchema::from_row(id, subject, version_i32, schema.canonical_json())
    }

    async fn schema_by_id(&self, id: u32) -> Result<Option<Schema>> {
        let Ok(id) = i32::try_from(id) else {
            return Ok(None);
        };
        let rows = self
            .query(
                "read schema by id",
                &self.stmts.select_schema_by_id,
                vec![Value::I32(id)],
                &[Column::Text],
            )
            .await?;
        rows.into_iter()
            .next()
            .and_then(|mut row| row.pop())
            .map(|json| stored_schema(&json.text()))
            .transpose()
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "list subjects",
                &self.stmts.select_subjects,
                vec![],
                &[Column::Text],
            )
            .await?;
        let mut subjects: Vec<String> = rows
            .into_iter()
            .filter_map(|mut r| r.pop())
            .map(Value::text)
            .collect();
        subjects.sort();
        Ok(subjects)
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        let rows = self
            .query(
                "read compatibility",
                &self.stmts.select_compatibility,
                vec![Value::Text(subject.unwrap_or(GLOBAL).to_owned())],
                &[Column::Text],
            )
            .await?;
        rows.into_iter()
            .next()
            .and_then(|mut row| row.pop())
            .map(|mode| mode.text().parse())
            .transpose()
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let op = "set compatibility";
        let subject = Value::Text(subject.unwrap_or(GLOBAL).to_owned());
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        match mode {
            Some(mode) => {
                DB::run(
                    &mut *conn,
                    &self.stmts.upsert_compatibility,
                    vec![subject, Value::Text(mode.as_str().to_owned())],
                )
                .await
            }
            None => DB::run(&mut *conn, &self.stmts.delete_compatibility, vec![subject]).await,
        }
        .map_err(store(op))?;
        Ok(())
    }
}
