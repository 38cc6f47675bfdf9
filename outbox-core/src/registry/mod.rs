//! The schema registry engine: idempotent registration under compatibility rules, over any
//! [`SchemaStore`].
//!
//! The decisions are pure functions ([`plan_registration`]) so that async and blocking
//! back ends (sqlx, diesel) run the same rules; [`Registry`] drives them over an async store.

pub mod conformance;
mod decoder;
mod delete;
mod either;
mod engine;
mod memory;
mod plan;
mod remote;
mod sql_store;
mod store;
mod stored;
mod subject;

pub use decoder::Decoder;
pub use either::EitherStore;
pub use engine::{LintObserver, Registry};
pub use memory::MemorySchemaStore;
pub use plan::{RegistrationPlan, plan_registration};
pub use remote::{RemoteRegistryConfig, RemoteSchemaStore};
pub use sql_store::SqlSchemaStore;
pub use store::{RegisteredSchema, SchemaStore, VersionState};
pub use stored::{stored_schema, stored_version};
pub(crate) use subject::stream_of_subject;
pub use subject::{SubjectNameStrategy, next_stream};
