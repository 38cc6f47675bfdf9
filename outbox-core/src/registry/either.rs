//! A store chosen at run time between two kinds.

use super::store::{RegisteredSchema, SchemaStore, VersionState};
use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::{Result, SchemaId};

/// One of two stores, chosen at run time (the embedded tables or a remote registry).
#[derive(Debug, Clone)]
pub enum EitherStore<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

impl<A: SchemaStore, B: SchemaStore> SchemaStore for EitherStore<A, B> {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        match self {
            Self::Left(a) => a.versions(subject).await,
            Self::Right(b) => b.versions(subject).await,
        }
    }
    async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<Option<RegisteredSchema>> {
        match self {
            Self::Left(a) => a.version(subject, version).await,
            Self::Right(b) => b.version(subject, version).await,
        }
    }
    async fn find(&self, subject: &str, schema: &Schema) -> Result<Option<RegisteredSchema>> {
        match self {
            Self::Left(a) => a.find(subject, schema).await,
            Self::Right(b) => b.find(subject, schema).await,
        }
    }
    async fn version_numbers(&self, subject: &str) -> Result<Vec<u32>> {
        match self {
            Self::Left(a) => a.version_numbers(subject).await,
            Self::Right(b) => b.version_numbers(subject).await,
        }
    }
    async fn holders(&self, id: SchemaId) -> Result<Vec<(String, u32)>> {
        match self {
            Self::Left(a) => a.holders(id).await,
            Self::Right(b) => b.holders(id).await,
        }
    }
    async fn next_version(&self, subject: &str) -> Result<u32> {
        match self {
            Self::Left(a) => a.next_version(subject).await,
            Self::Right(b) => b.next_version(subject).await,
        }
    }
    async fn version_states(&self, subject: &str) -> Result<Vec<VersionState>> {
        match self {
            Self::Left(a) => a.version_states(subject).await,
            Self::Right(b) => b.version_states(subject).await,
        }
    }
    async fn soft_delete(&self, subject: &str, version: u32) -> Result<()> {
        match self {
            Self::Left(a) => a.soft_delete(subject, version).await,
            Self::Right(b) => b.soft_delete(subject, version).await,
        }
    }
    async fn hard_delete(&self, subject: &str, version: u32) -> Result<()> {
        match self {
            Self::Left(a) => a.hard_delete(subject, version).await,
            Self::Right(b) => b.hard_delete(subject, version).await,
        }
    }
    async fn schema_usage(&self, id: SchemaId) -> Result<(u64, u64)> {
        match self {
            Self::Left(a) => a.schema_usage(id).await,
            Self::Right(b) => b.schema_usage(id).await,
        }
    }
    async fn insert_version(
        &self,
        subject: &str,
        version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        match self {
            Self::Left(a) => a.insert_version(subject, version, schema).await,
            Self::Right(b) => b.insert_version(subject, version, schema).await,
        }
    }
    async fn schema_by_id(&self, id: SchemaId) -> Result<Option<Schema>> {
        match self {
            Self::Left(a) => a.schema_by_id(id).await,
            Self::Right(b) => b.schema_by_id(id).await,
        }
    }
    async fn subjects(&self) -> Result<Vec<String>> {
        match self {
            Self::Left(a) => a.subjects().await,
            Self::Right(b) => b.subjects().await,
        }
    }
    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        match self {
            Self::Left(a) => a.compatibility(subject).await,
            Self::Right(b) => b.compatibility(subject).await,
        }
    }
    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        match self {
            Self::Left(a) => a.set_compatibility(subject, mode).await,
            Self::Right(b) => b.set_compatibility(subject, mode).await,
        }
    }
}
