//! Avro schemas: parsing with Java's rules, a canonical JSON form and its fingerprint.

pub mod limits;
pub(crate) mod model;
mod parse;

use std::fmt;
use std::sync::Arc;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

pub use model::AvroType;
pub(crate) use parse::{Parsed, excerpt};

use crate::{Error, Result};

/// A parsed, valid Avro schema.
///
/// Parsing follows Apache Avro Java's rules, so a schema accepted here is one a Confluent
/// registry accepts. Cheap to clone.
///
/// # Examples
///
/// ```
/// use outbox_core::Schema;
///
/// let schema = Schema::parse_str(r#"{"type":"record","name":"com.acme.Order","fields":[]}"#)?;
/// assert_eq!(schema.full_name().as_deref(), Some("com.acme.Order"));
/// assert!(Schema::parse_str(r#"{"type":"record","name":"1bad","fields":[]}"#).is_err());
/// # Ok::<(), outbox_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Schema {
    inner: Arc<Inner>,
}

struct Inner {
    parsed: Parsed,
    canonical: String,
    fingerprint: String,
}

impl Schema {
    /// Parses schema JSON text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] when the text is not JSON or not a valid Avro schema, or is
    /// over a cap of [`limits`].
    pub fn parse_str(text: &str) -> Result<Self> {
        if text.len() > limits::MAX_SCHEMA_BYTES {
            return Err(Error::InvalidSchema {
                reason: format!(
                    "the schema is {} bytes, more than the limit of {} bytes",
                    text.len(),
                    limits::MAX_SCHEMA_BYTES
                ),
            });
        }
        let json: Json = serde_json::from_str(text).map_err(|e| Error::InvalidSchema {
            reason: format!("not JSON: {e}"),
        })?;
        Self::parse_json(&json)
    }

    /// Parses a schema from a JSON value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] when the value is not a valid Avro schema, or is over a cap
    /// of [`limits`].
    pub fn parse_json(json: &Json) -> Result<Self> {
        let parsed = parse::parse(json).map_err(|reason| Error::InvalidSchema { reason })?;
        let mut canonical = String::new();
        write_canonical(json, &mut canonical);
        if canonical.len() > limits::MAX_SCHEMA_BYTES {
            return Err(Error::InvalidSchema {
                reason: format!(
                    "the schema is {} bytes, more than the limit of {} bytes",
                    canonical.len(),
                    limits::MAX_SCHEMA_BYTES
                ),
            });
        }
        let fingerprint = hex(&Sha256::digest(canonical.as_bytes()));
        Ok(Self {
            inner: Arc::new(Inner {
                parsed,
                canonical,
                fingerprint,
            }),
        })
    }

    /// Converts a schema built by `apache_avro` (for example by `#[derive(AvroSchema)]`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] if `apache_avro` produced something Java would refuse.
    pub fn from_avro(schema: &apache_avro::Schema) -> Result<Self> {
        let json = serde_json::to_value(schema).map_err(|e| Error::InvalidSchema {
            reason: format!("cannot serialize the apache_avro schema: {e}"),
        })?;
        Self::parse_json(&json)
    }

    /// The schema as compact JSON with object keys sorted: the form stored and compared, so
    /// the same schema registered twice is recognised.
    pub fn canonical_json(&self) -> &str {
        &self.inner.canonical
    }

    /// Lower-case hex SHA-256 of [`canonical_json`](Self::canonical_json).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// The type of the top-level schema.
    pub fn avro_type(&self) -> AvroType {
        let p = &self.inner.parsed;
        p.resolve(p.root).avro_type()
    }

    /// The full name of the top-level type when it is named (`com.acme.orders.OrderPlaced`).
    pub fn full_name(&self) -> Option<String> {
        let p = &self.inner.parsed;
        p.resolve(p.root).named().map(|n| n.name.full())
    }

    /// The `apache_avro` form of this schema, for decoding with `apache_avro`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchema`] if `apache_avro` refuses a schema Java accepts.
    pub fn to_avro(&self) -> Result<apache_avro::Schema> {
        apache_avro::Schema::parse_str(self.canonical_json()).map_err(|e| Error::InvalidSchema {
            reason: format!("apache_avro cannot read the schema: {e}"),
        })
    }

    pub(crate) fn parsed(&self) -> &Parsed {
        &self.inner.parsed
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schema")
            .field(&self.inner.canonical)
            .finish()
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.inner.canonical == other.inner.canonical
    }
}

impl Eq for Schema {}

/// Compact JSON with sorted object keys, whatever map order `serde_json` was built with.
fn write_canonical(json: &Json, out: &mut String) {
    match json {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
