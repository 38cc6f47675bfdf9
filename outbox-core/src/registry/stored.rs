//! Reading and writing the numbers and schemas the schema tables hold.

use crate::Result;
use crate::schema::Schema;

pub(crate) fn stored_number(v: i32, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| crate::Error::Decode {
        reason: format!("negative {what} {v} in the schema tables"),
    })
}

/// Parses a schema read back from the schema tables, through a process-wide cache keyed by
/// the stored text (the canonical JSON, whose SHA-256 is the fingerprint column): a registry
/// read parses a schema once, not on every request.
///
/// # Errors
///
/// [`Error::Decode`](crate::Error::Decode) when it is not a valid schema.
pub fn stored_schema(json: &str) -> Result<Schema> {
    if let Some(schema) = cache::get(json) {
        return Ok(schema);
    }
    let schema = Schema::parse_str(json).map_err(|e| crate::Error::Decode {
        reason: format!("stored schema is not valid: {e}"),
    })?;
    cache::put(json, &schema);
    Ok(schema)
}

/// The parsed-schema cache: bounded in entries and bytes; emptied when full (reads refill it
/// with what is in use).
mod cache {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use crate::Schema;

    const MAX_ENTRIES: usize = 4096;
    const MAX_BYTES: usize = 64 * 1024 * 1024;

    #[derive(Default)]
    struct Cache {
        schemas: HashMap<String, Schema>,
        bytes: usize,
    }

    fn cache() -> &'static Mutex<Cache> {
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        CACHE.get_or_init(Mutex::default)
    }

    pub(super) fn get(json: &str) -> Option<Schema> {
        let cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
        cache.schemas.get(json).cloned()
    }

    pub(super) fn put(json: &str, schema: &Schema) {
        let mut cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
        if json.len() > MAX_BYTES / 4 {
            return;
        }
        if cache.schemas.len() >= MAX_ENTRIES || cache.bytes + json.len() > MAX_BYTES {
            cache.schemas.clear();
            cache.bytes = 0;
        }
        cache.bytes += json.len();
        cache.schemas.insert(json.to_owned(), schema.clone());
    }
}

/// A version number as the schema tables store it (`INTEGER`).
///
/// # Errors
///
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) above `i32::MAX`.
pub fn stored_version(version: u32) -> Result<i32> {
    i32::try_from(version).map_err(|_| crate::Error::InvalidConfig {
        key: "version".to_owned(),
        reason: format!("{version} is out of range"),
    })
}
