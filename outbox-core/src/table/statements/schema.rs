//! The embedded schema registry's statements, per dialect, typed by what they return.

use super::super::{Dialect, Table, TableNames};
use crate::sql::{Query, Statement};

/// The statements of the schema tables (`outbox_schemas`, `outbox_schema_ids`,
/// `outbox_subject_config`). Parameters are listed on each field, in bind order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SchemaStatements {
    /// A subject's live versions, oldest first: (subject) -> (id, version, schema_json).
    pub select_versions: Query<(i32, i32, String)>,
    /// One live version of a subject: (subject, version i32) -> (id, version, schema_json).
    pub select_version: Query<(i32, i32, String)>,
    /// A subject's latest live version: (subject) -> (id, version, schema_json).
    pub select_latest_version: Query<(i32, i32, String)>,
    /// The live version of a subject holding a schema: (subject, fingerprint) -> (id,
    /// version, schema_json).
    pub select_version_by_fingerprint: Query<(i32, i32, String)>,
    /// A subject's live version numbers, oldest first: (subject) -> version.
    pub select_version_numbers: Query<i32>,
    /// The global id of a schema: (fingerprint) -> id.
    pub select_schema_id: Query<i32>,
    /// Allocates the next global id for a new schema: (fingerprint).
    pub insert_schema_id: Statement,
    /// Stores a version: (id i32, subject, version i32, schema_json, fingerprint).
    pub insert_version: Statement,
    /// A schema by global id: (id i32) -> schema_json.
    pub select_schema_by_id: Query<String>,
    /// Every subject with a live version: () -> subject.
    pub select_subjects: Query<String>,
    /// Every version of a subject, soft-deleted ones included, oldest first: (subject) ->
    /// (version, id, deleted 0/1).
    pub select_version_states: Query<(i32, i32, i32)>,
    /// The number after every version a subject ever had (soft-deleted included): (subject)
    /// -> next version.
    pub select_next_version: Query<i64>,
    /// Soft-deletes a version: (subject, version i32).
    pub soft_delete_version: Statement,
    /// Deletes a soft-deleted version for good: (subject, version i32).
    pub hard_delete_version: Statement,
    /// Restores a soft-deleted version holding a schema: (subject, fingerprint).
    pub restore_version: Statement,
    /// The live versions holding a schema id: (id i32) -> (subject, version).
    pub select_id_holders: Query<(String, i32)>,
    /// Versions (soft-deleted included) holding an id: (id i32) -> count.
    pub count_schema_holders: Query<i64>,
    /// Unpublished outbox rows and dead letters carrying a schema id: (id i32, id i32) ->
    /// count.
    pub count_rows_with_schema: Query<i64>,
    /// A compatibility setting: (subject, '' for global) -> compatibility.
    pub select_compatibility: Query<String>,
    /// Sets a compatibility: (subject, compatibility).
    pub upsert_compatibility: Statement,
    /// Deletes a compatibility setting: (subject).
    pub delete_compatibility: Statement,
}

impl SchemaStatements {
    /// The statements for `dialect` on the tables of `names`.
    pub fn new(dialect: Dialect, names: &TableNames) -> Self {
        let d = dialect;
        let p = |n: usize| d.placeholder(n);
        let t = |table| names.qualified(d, table);
        let (events, dead, schemas, ids, config) = (
            t(Table::Events),
            t(Table::DeadLetters),
            t(Table::Schemas),
            t(Table::SchemaIds),
            t(Table::SubjectConfig),
        );
        let bigint = match d {
            Dialect::MySql => "SIGNED",
            _ => "BIGINT",
        };
        let versions = |condition: String, order: &str| {
            Query::new(format!(
                "SELECT id, version, schema_json FROM {schemas} WHERE {condition} AND deleted = 0{order}"
            ))
        };
        let upsert_compatibility = match d {
            Dialect::MySql => format!(
                "INSERT INTO {config} (subject, compatibility) VALUES ({}, {}) \
                 ON DUPLICATE KEY UPDATE compatibility = VALUES(compatibility)",
                p(1),
                p(2)
            ),
            _ => format!(
                "INSERT INTO {config} (subject, compatibility) VALUES ({}, {}) \
                 ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                p(1),
                p(2)
            ),
        };
        Self {
            select_versions: versions(format!("subject = {}", p(1)), " ORDER BY version"),
            select_version: versions(format!("subject = {} AND version = {}", p(1), p(2)), ""),
            select_latest_version: versions(
                format!("subject = {}", p(1)),
                " ORDER BY version DESC LIMIT 1",
            ),
            select_version_by_fingerprint: versions(
                format!("subject = {} AND fingerprint = {}", p(1), p(2)),
                "",
            ),
            select_version_numbers: Query::new(format!(
                "SELECT version AS value FROM {schemas} WHERE subject = {} AND deleted = 0 \
                 ORDER BY version",
                p(1)
            )),
            select_schema_id: Query::new(format!(
                "SELECT id AS value FROM {ids} WHERE fingerprint = {}",
                p(1)
            )),
            insert_schema_id: Statement::new(format!(
                "INSERT INTO {ids} (id, fingerprint) SELECT COALESCE(MAX(id), 0) + 1, {} FROM {ids}",
                p(1)
            )),
            insert_version: Statement::new(format!(
                "INSERT INTO {schemas} (id, subject, version, schema_json, fingerprint) \
                 VALUES ({}, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            )),
            select_schema_by_id: Query::new(format!(
                "SELECT schema_json AS value FROM {schemas} WHERE id = {} ORDER BY subject, version LIMIT 1",
                p(1)
            )),
            select_subjects: Query::new(format!(
                "SELECT DISTINCT subject AS value FROM {schemas} WHERE deleted = 0"
            )),
            select_version_states: Query::new(format!(
                "SELECT version, id, deleted FROM {schemas} WHERE subject = {} ORDER BY version",
                p(1)
            )),
            select_next_version: Query::new(format!(
                "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS {bigint}) AS value FROM {schemas} \
                 WHERE subject = {}",
                p(1)
            )),
            soft_delete_version: Statement::new(format!(
                "UPDATE {schemas} SET deleted = 1 WHERE subject = {} AND version = {} AND deleted = 0",
                p(1),
                p(2)
            )),
            hard_delete_version: Statement::new(format!(
                "DELETE FROM {schemas} WHERE subject = {} AND version = {} AND deleted = 1",
                p(1),
                p(2)
            )),
            restore_version: Statement::new(format!(
                "UPDATE {schemas} SET deleted = 0 WHERE subject = {} AND fingerprint = {} AND deleted = 1",
                p(1),
                p(2)
            )),
            select_id_holders: Query::new(format!(
                "SELECT subject, version FROM {schemas} WHERE id = {} AND deleted = 0 \
                 ORDER BY subject, version",
                p(1)
            )),
            count_schema_holders: Query::new(format!(
                "SELECT COUNT(*) AS value FROM {schemas} WHERE id = {}",
                p(1)
            )),
            count_rows_with_schema: Query::new(format!(
                "SELECT CAST((SELECT COUNT(*) FROM {events} WHERE schema_id = {}) + \
                 (SELECT COUNT(*) FROM {dead} WHERE schema_id = {}) AS {bigint}) AS value",
                p(1),
                p(2)
            )),
            select_compatibility: Query::new(format!(
                "SELECT compatibility AS value FROM {config} WHERE subject = {}",
                p(1)
            )),
            upsert_compatibility: Statement::new(upsert_compatibility),
            delete_compatibility: Statement::new(format!(
                "DELETE FROM {config} WHERE subject = {}",
                p(1)
            )),
        }
    }
}
