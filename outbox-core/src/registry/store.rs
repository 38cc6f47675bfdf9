//! The storage a registry keeps its schemas in.

use std::future::Future;

use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::{Result, SchemaId};

use super::stored::{stored_number, stored_schema};

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Global id: the same schema has the same id in every subject (Confluent's rule).
    pub id: SchemaId,
    /// The subject.
    pub subject: String,
    /// Version within the subject, from 1.
    pub version: u32,
    /// The schema.
    pub schema: Schema,
}

impl RegisteredSchema {
    /// Builds a registration from a stored row (`id`, `version` as the tables hold them, the
    /// schema's canonical JSON), checking what it reads.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) for negative numbers or an invalid schema.
    pub fn from_row(id: i32, subject: &str, version: i32, schema_json: &str) -> Result<Self> {
        Ok(Self {
            id: SchemaId::new(stored_number(id, "schema id")?),
            subject: subject.to_owned(),
            version: stored_number(version, "version")?,
            schema: stored_schema(schema_json)?,
        })
    }
}

/// A version of a subject as the delete rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionState {
    /// The version number.
    pub version: u32,
    /// Its schema's global id.
    pub id: SchemaId,
    /// Whether it is soft-deleted.
    pub deleted: bool,
}

/// Where a registry keeps subjects, versions, ids and compatibility settings.
///
/// # Contract
///
/// - `versions` returns a subject's versions oldest first (empty for an unknown subject).
/// - `insert_version` stores `schema` as `version` of `subject` atomically. It reuses the id of
///   an identical schema (same [`Schema::fingerprint`]) stored under any subject, else assigns a
///   new id greater than every id so far. When `version` or the fingerprint is already taken in
///   the subject (a concurrent registration won), it fails with
///   [`Error::Conflict`](crate::Error::Conflict) and stores nothing; the registry then re-reads
///   and retries.
/// - Compatibility settings: `None` as subject is the global setting; setting `None` as mode
///   deletes the setting.
/// - Soft delete (optional; the defaults refuse with
///   [`Error::Unsupported`](crate::Error::Unsupported)): a soft-deleted version is left out
///   of `versions`, `version`, `find`, `version_numbers` and `subjects`, but its id still
///   resolves through `schema_by_id`, and its number is never given again (`next_version`).
///   `insert_version` of a schema soft-deleted in the subject restores that version.
pub trait SchemaStore: Send + Sync {
    /// The versions of `subject`, oldest first.
    fn versions(&self, subject: &str)
    -> impl Future<Output = Result<Vec<RegisteredSchema>>> + Send;

    /// One version of `subject` (`None`: the latest), if it exists. Stores that can read one
    /// row override this default, which reads every version.
    fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> impl Future<Output = Result<Option<RegisteredSchema>>> + Send {
        async move {
            let versions = self.versions(subject).await?;
            Ok(match version {
                None => versions.last().cloned(),
                Some(v) => versions.into_iter().find(|r| r.version == v),
            })
        }
    }

    /// The version of `subject` holding `schema`, if any. Stores that can look up by
    /// fingerprint override this default, which reads every version.
    fn find(
        &self,
        subject: &str,
        schema: &Schema,
    ) -> impl Future<Output = Result<Option<RegisteredSchema>>> + Send {
        async move {
            let versions = self.versions(subject).await?;
            Ok(versions.into_iter().find(|v| v.schema == *schema))
        }
    }

    /// The live (subject, version) pairs holding schema `id`, sorted. The default reads every
    /// version of every subject.
    fn holders(&self, id: SchemaId) -> impl Future<Output = Result<Vec<(String, u32)>>> + Send {
        async move {
            let mut found = Vec::new();
            for subject in self.subjects().await? {
                for v in self.versions(&subject).await? {
                    if v.id == id {
                        found.push((v.subject, v.version));
                    }
                }
            }
            Ok(found)
        }
    }

    /// The number the next version of `subject` takes: one past every version it ever had
    /// (the default counts the live ones only).
    fn next_version(&self, subject: &str) -> impl Future<Output = Result<u32>> + Send {
        async move {
            let versions = self.versions(subject).await?;
            Ok(versions.iter().map(|v| v.version).max().unwrap_or(0) + 1)
        }
    }

    /// Every version of `subject`, soft-deleted ones included, oldest first.
    fn version_states(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<VersionState>>> + Send {
        async move {
            let versions = self.versions(subject).await?;
            Ok(versions
                .iter()
                .map(|v| VersionState {
                    version: v.version,
                    id: v.id,
                    deleted: false,
                })
                .collect())
        }
    }

    /// Soft-deletes a live version.
    fn soft_delete(
        &self,
        _subject: &str,
        _version: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            Err(crate::Error::Unsupported {
                operation: "soft delete",
            })
        }
    }

    /// Deletes a soft-deleted version for good.
    fn hard_delete(
        &self,
        _subject: &str,
        _version: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            Err(crate::Error::Unsupported {
                operation: "permanent delete",
            })
        }
    }

    /// How many versions (in any subject, soft-deleted included) hold schema `id`, and how
    /// many unpublished outbox rows and dead letters carry it.
    fn schema_usage(&self, _id: SchemaId) -> impl Future<Output = Result<(u64, u64)>> + Send {
        async move {
            Err(crate::Error::Unsupported {
                operation: "schema usage",
            })
        }
    }

    /// The version numbers of `subject`, oldest first, without parsing any schema (the
    /// default reads every version).
    fn version_numbers(&self, subject: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
        async move {
            let versions = self.versions(subject).await?;
            Ok(versions.iter().map(|v| v.version).collect())
        }
    }

    /// Stores a new version (see the contract).
    fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> impl Future<Output = Result<RegisteredSchema>> + Send;

    /// The schema with a global id.
    fn schema_by_id(&self, id: SchemaId) -> impl Future<Output = Result<Option<Schema>>> + Send;

    /// Every subject with at least one version, sorted.
    fn subjects(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The compatibility set for `subject` (or globally for `None`), if any.
    fn compatibility(
        &self,
        subject: Option<&str>,
    ) -> impl Future<Output = Result<Option<CompatibilityMode>>> + Send;

    /// Sets (or with `None`, deletes) the compatibility of `subject` (or the global one).
    fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> impl Future<Output = Result<()>> + Send;
}

macro_rules! forward_store {
    ($($ptr:ty),*) => {$(
        impl<T: SchemaStore + ?Sized> SchemaStore for $ptr {
            fn versions(&self, subject: &str) -> impl Future<Output = Result<Vec<RegisteredSchema>>> + Send {
                (**self).versions(subject)
            }
            fn version(&self, subject: &str, version: Option<u32>) -> impl Future<Output = Result<Option<RegisteredSchema>>> + Send {
                (**self).version(subject, version)
            }
            fn find(&self, subject: &str, schema: &Schema) -> impl Future<Output = Result<Option<RegisteredSchema>>> + Send {
                (**self).find(subject, schema)
            }
            fn version_numbers(&self, subject: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
                (**self).version_numbers(subject)
            }
            fn next_version(&self, subject: &str) -> impl Future<Output = Result<u32>> + Send {
                (**self).next_version(subject)
            }
            fn holders(&self, id: SchemaId) -> impl Future<Output = Result<Vec<(String, u32)>>> + Send {
                (**self).holders(id)
            }
            fn version_states(&self, subject: &str) -> impl Future<Output = Result<Vec<VersionState>>> + Send {
                (**self).version_states(subject)
            }
            fn soft_delete(&self, subject: &str, version: u32) -> impl Future<Output = Result<()>> + Send {
                (**self).soft_delete(subject, version)
            }
            fn hard_delete(&self, subject: &str, version: u32) -> impl Future<Output = Result<()>> + Send {
                (**self).hard_delete(subject, version)
            }
            fn schema_usage(&self, id: SchemaId) -> impl Future<Output = Result<(u64, u64)>> + Send {
                (**self).schema_usage(id)
            }
            fn insert_version(&self, subject: &str, version: u32, schema: &Schema) -> impl Future<Output = Result<RegisteredSchema>> + Send {
                (**self).insert_version(subject, version, schema)
            }
            fn schema_by_id(&self, id: SchemaId) -> impl Future<Output = Result<Option<Schema>>> + Send {
                (**self).schema_by_id(id)
            }
            fn subjects(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
                (**self).subjects()
            }
            fn compatibility(&self, subject: Option<&str>) -> impl Future<Output = Result<Option<CompatibilityMode>>> + Send {
                (**self).compatibility(subject)
            }
            fn set_compatibility(&self, subject: Option<&str>, mode: Option<CompatibilityMode>) -> impl Future<Output = Result<()>> + Send {
                (**self).set_compatibility(subject, mode)
            }
        }
    )*};
}

// A registry can share a store by reference or by `Arc`.
forward_store!(&T, std::sync::Arc<T>);
