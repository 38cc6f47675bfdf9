//! A registry store in memory: for tests, tools and the quickstart.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::store::{RegisteredSchema, SchemaStore, VersionState};
use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// A [`SchemaStore`] in process memory, following the store contract exactly (the
/// conformance suite runs on it).
#[derive(Debug, Default)]
pub struct MemorySchemaStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    subjects: BTreeMap<String, Vec<RegisteredSchema>>,
    /// id -> schema, for ids and for reusing an id across subjects.
    schemas: BTreeMap<SchemaId, Schema>,
    compatibility: BTreeMap<Option<String>, CompatibilityMode>,
    /// Soft-deleted (subject, version) pairs.
    deleted: std::collections::BTreeSet<(String, u32)>,
}

impl State {
    fn is_deleted(&self, r: &RegisteredSchema) -> bool {
        self.deleted.contains(&(r.subject.clone(), r.version))
    }
}

impl MemorySchemaStore {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is a
        // single insert), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SchemaStore for MemorySchemaStore {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        let state = self.state();
        Ok(state
            .subjects
            .get(subject)
            .map(|all| {
                all.iter()
                    .filter(|r| !state.is_deleted(r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn next_version(&self, subject: &str) -> Result<u32> {
        let state = self.state();
        let all = state
            .subjects
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(all.iter().map(|r| r.version).max().unwrap_or(0) + 1)
    }

    async fn version_states(&self, subject: &str) -> Result<Vec<VersionState>> {
        let state = self.state();
        let all = state
            .subjects
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(all
            .iter()
            .map(|r| VersionState {
                version: r.version,
                id: r.id,
                deleted: state.is_deleted(r),
            })
            .collect())
    }

    async fn soft_delete(&self, subject: &str, version: u32) -> Result<()> {
        self.state().deleted.insert((subject.to_owned(), version));
        Ok(())
    }

    async fn hard_delete(&self, subject: &str, version: u32) -> Result<()> {
        let mut state = self.state();
        let key = (subject.to_owned(), version);
        if state.deleted.remove(&key)
            && let Some(all) = state.subjects.get_mut(subject)
        {
            all.retain(|r| r.version != version);
            if all.is_empty() {
                state.subjects.remove(subject);
            }
        }
        Ok(())
    }

    async fn schema_usage(&self, id: SchemaId) -> Result<(u64, u64)> {
        let state = self.state();
        let holders = state
            .subjects
            .values()
            .flatten()
            .filter(|r| r.id == id)
            .count();
        // The memory store keeps no outbox rows.
        Ok((holders as u64, 0))
    }

    async fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        let mut state = self.state();
        let restored = state.subjects.get(subject).and_then(|all| {
            all.iter()
                .find(|r| r.schema == *schema && state.is_deleted(r))
                .cloned()
        });
        if let Some(restored) = restored {
            state
                .deleted
                .remove(&(subject.to_owned(), restored.version));
            return Ok(restored);
        }
        let existing = state
            .subjects
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if existing
            .iter()
            .any(|v| v.version == version || v.schema == *schema)
        {
            return Err(Error::Conflict {
                what: format!("version {version} of subject {subject}"),
            });
        }
        let id = match state.schemas.iter().find(|(_, s)| *s == schema) {
            Some((id, _)) => *id,
            None => SchemaId::new(
                state
                    .schemas
                    .keys()
                    .next_back()
                    .map_or(1, |max| max.get() + 1),
            ),
        };
        state.schemas.insert(id, schema.clone());
        let registered = RegisteredSchema {
            id,
            subject: subject.to_owned(),
            version,
            schema: schema.clone(),
        };
        state
            .subjects
            .entry(subject.to_owned())
            .or_default()
            .push(registered.clone());
        Ok(registered)
    }

    async fn schema_by_id(&self, id: SchemaId) -> Result<Option<Schema>> {
        Ok(self.state().schemas.get(&id).cloned())
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        // A subject whose versions are all soft-deleted is not listed (the store contract).
        let state = self.state();
        Ok(state
            .subjects
            .iter()
            .filter(|(_, all)| all.iter().any(|r| !state.is_deleted(r)))
            .map(|(subject, _)| subject.clone())
            .collect())
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        Ok(self
            .state()
            .compatibility
            .get(&subject.map(str::to_owned))
            .copied())
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let key = subject.map(str::to_owned);
        let mut state = self.state();
        match mode {
            Some(mode) => state.compatibility.insert(key, mode),
            None => state.compatibility.remove(&key),
        };
        Ok(())
    }
}
