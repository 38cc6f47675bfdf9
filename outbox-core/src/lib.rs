//! Core of the `outbox` transactional outbox.
pub mod compat;
mod error;
pub mod schema;

pub use apache_avro as avro;
pub use error::{Error, ErrorKind, Result};
pub use schema::Schema;
