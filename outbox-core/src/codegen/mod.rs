//! Rust types from Avro schemas (`.avsc`), for `build.rs` or `outbox-relay schema codegen`.
//!
//! The generated types derive `AvroSchema` (the `apache_avro` derive), `Serialize` and
//! `Deserialize`, so their schema is computed by the derive, never copied from the source text;
//! the derived schema equals the source in Parsing Canonical Form and in defaults, docs,
//! logical types and aliases. What the derive cannot express is refused with
//! [`CodegenError::Unsupported`], naming the file and the JSON pointer of the construct.
//!
//! | Avro | Rust |
//! |------|------|
//! | record | `struct` (named fields; a field named like a keyword becomes `r#type`) |
//! | enum | `enum` of unit variants (the enum default is the `#[default]` variant) |
//! | namespace | nested `mod`s (`com.acme.Order` is `com::acme::Order`) |
//! | `boolean`, `int`, `long`, `float`, `double`, `string`, `null` | `bool`, `i32`, `i64`, `f32`, `f64`, `String`, `()` |
//! | `bytes`, fixed (as a field's type) | `Vec<u8>`, `[u8; N]` |
//! | array, map | `Vec<T>`, `HashMap<String, T>` |
//! | `["null", T]` | `Option<T>` |
//! | `uuid` (string), `date`, `time-*`, `timestamp-*`, `local-timestamp-*` | `String`, `i32`, `i64` with the logical type |
//! | `decimal` (bytes) | `apache_avro::Decimal` |
//! | a record containing itself | `Box<T>` |
//!
//! Not expressible (refused): unions other than `["null", T]` with `null` first; `bytes`,
//! fixed and logical types inside arrays, maps or unions (beyond `Option`); fixed-based
//! `decimal` and `uuid`, `duration`; a top-level schema that is not a record or an enum; a
//! type whose full name is also a namespace (a module and a type of one name); a namespace
//! part no module can be named (`self`, `super`, `crate`, `_`, `Self`) or a namespace of
//! more than 64 parts; a type name starting with `__` (serde's derive names its own items so).
//! An [`Event`](crate::Event) impl needs a top-level record and a
//! Kafka topic name.
//!
//! Docs become Rust docs escaped for rustdoc (no doc-tests, links or HTML from a schema's
//! text), and each named type states its namespace (the null one as `""`).
//!
//! The generated code names `::apache_avro` and `::serde` (and `::outbox_core` for the
//! [`Event`](crate::Event) impl): depend on `apache-avro` (feature `derive`), `serde`
//! (feature `derive`) and `serde_json` (the derive expands to it).
//!
//! # Examples
//!
//! ```
//! use outbox_core::codegen::Codegen;
//! use outbox_core::Schema;
//!
//! let schema = Schema::parse_str(r#"{"type":"record","name":"OrderPlaced",
//!     "namespace":"com.acme","doc":"An order was placed",
//!     "fields":[{"name":"order_id","type":"string"},{"name":"type","type":"int"}]}"#)?;
//! let code = Codegen::new()
//!     .schema("order_placed.avsc", &schema)
//!     .event("orders", "order_id")
//!     .generate()
//!     .expect("expressible");
//! assert!(code.contains("pub mod com {"));
//! assert!(code.contains("pub r#type: i32,"));
//! assert!(code.contains("const TOPIC: &'static str = \"orders\";"));
//! # Ok::<(), outbox_core::Error>(())
//! ```

mod emit;
mod field_type;
mod logical;
mod named;
mod record;
mod types;

use std::path::Path;

use crate::schema::Schema;

/// The largest schema file [`Codegen::file`] reads.
const MAX_SCHEMA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why code could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodegenError {
    /// A schema file could not be read or is not a valid schema.
    #[error("{file}: {reason}")]
    Input {
        /// The file (or label) of the schema.
        file: String,
        /// Why.
        reason: String,
    },
    /// The schema uses something the `AvroSchema` derive cannot express.
    #[error("{file}: at {location}: the AvroSchema derive cannot express {what}")]
    Unsupported {
        /// The file (or label) of the schema.
        file: String,
        /// JSON pointer of the construct in the schema document.
        location: String,
        /// What it is, and what would work instead.
        what: String,
    },
    /// Two schemas define the same full name differently.
    #[error("{file}: {name} is already defined differently in {other}")]
    Conflict {
        /// The file (or label) of the second definition.
        file: String,
        /// The full name.
        name: String,
        /// The file (or label) of the first definition.
        other: String,
    },
    /// The [`Event`](crate::Event) impl asked for cannot be generated.
    #[error("{file}: cannot implement Event: {reason}")]
    Event {
        /// The file (or label) of the schema.
        file: String,
        /// Why.
        reason: String,
    },
    /// The output file could not be written.
    #[error("cannot write {file}: {reason}")]
    Output {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// The path, relative to where the generated file is included, of the type generated for
/// the Avro full name `full_name` (`com.acme.type.Order` is `com::acme::r#type::Order`).
///
/// # Examples
///
/// ```
/// assert_eq!(outbox_core::codegen::rust_path("com.acme.match.Order"), "com::acme::r#match::Order");
/// ```
pub fn rust_path(full_name: &str) -> String {
    let (namespace, name) = full_name.rsplit_once('.').unwrap_or(("", full_name));
    let parts: Vec<String> = namespace
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    emit::path(&[], &parts, name)
}

/// An `Event` impl for a schema's top-level record: its topic and the field that is the key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventSpec {
    topic: String,
    key_field: Option<String>,
}

#[derive(Debug, Clone)]
struct Input {
    label: String,
    /// The file it was read from, so [`Codegen::write`] does not overwrite it.
    path: Option<std::path::PathBuf>,
    schema: Schema,
    event: Option<EventSpec>,
}

/// Generates one Rust source file from schemas.
///
/// # Examples
///
/// In `build.rs` (with `outbox-core` as a build dependency, feature `codegen`):
///
/// ```no_run
/// use outbox_core::codegen::Codegen;
///
/// let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("events.rs");
/// Codegen::new()
///     .file("schemas/order_placed.avsc")
///     .and_then(|c| c.event("orders", "order_id").write(&out))
///     .unwrap_or_else(|e| panic!("{e}"));
/// println!("cargo::rerun-if-changed=schemas");
/// ```
///
/// and in the crate: `include!(concat!(env!("OUT_DIR"), "/events.rs"));`.
#[derive(Debug, Clone, Default)]
pub struct Codegen {
    inputs: Vec<Input>,
}

impl Codegen {
    /// No schemas yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parsed schema; `label` names it in errors and in the generated header.
    #[must_use]
    pub fn schema(mut self, label: &str, schema: &Schema) -> Self {
        self.inputs.push(Input {
            label: label.to_owned(),
            path: None,
            schema: schema.clone(),
            event: None,
        });
        self
    }

    /// Reads and adds a schema file (at most 16 MiB).
    ///
    /// # Errors
    ///
    /// [`CodegenError::Input`] naming the file when it cannot be read or parsed.
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self, CodegenError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let input = |reason: String| CodegenError::Input {
            file: label.clone(),
            reason,
        };
        let text = crate::lint::config::read_bounded(path, MAX_SCHEMA_FILE_BYTES).map_err(input)?;
        let schema = Schema::parse_str(&text).map_err(|e| input(e.to_string()))?;
        let mut codegen = self.schema(&label, &schema);
        if let Some(last) = codegen.inputs.last_mut() {
            last.path = Some(path.to_path_buf());
        }
        Ok(codegen)
    }

    /// Implements [`Event`](crate::Event) for the top-level record of the schema added last:
    /// events go to `topic`, keyed by the field `key_field` (`""` for unkeyed events).
    #[must_use]
    pub fn event(mut self, topic: &str, key_field: &str) -> Self {
        if let Some(last) = self.inputs.last_mut() {
            last.event = Some(EventSpec {
                topic: topic.to_owned(),
                key_field: Some(key_field.to_owned()).filter(|k| !k.is_empty()),
            });
        }
        self
    }

    /// The generated Rust source.
    ///
    /// # Errors
    ///
    /// [`CodegenError::Unsupported`] for what the derive cannot express,
    /// [`CodegenError::Conflict`] for two different definitions of one name,
    /// [`CodegenError::Event`] for an impossible `Event` impl.
    pub fn generate(&self) -> Result<String, CodegenError> {
        let mut out = emit::Output::default();
        let mut registry = types::Registry::default();
        // A type generated from two inputs is one type: it can implement `Event` only once.
        let mut events: std::collections::HashMap<String, &str> = Default::default();
        for input in &self.inputs {
            if input.event.is_some()
                && let Some(name) = input.schema.full_name()
                && let Some(other) = events.insert(name.clone(), &input.label)
            {
                return Err(CodegenError::Event {
                    file: input.label.clone(),
                    reason: format!("{name} already implements Event (from {other})"),
                });
            }
            types::generate(input, &mut out, &mut registry)?;
        }
        if let Some(name) = registry.keys().filter(|name| out.has_module(name)).min() {
            return Err(CodegenError::Unsupported {
                file: self
                    .inputs
                    .iter()
                    .map(|i| i.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                location: "/".to_owned(),
                what: format!("{name} as both a type and a namespace (one Rust module, one type)"),
            });
        }
        let labels: Vec<&str> = self.inputs.iter().map(|i| i.label.as_str()).collect();
        Ok(out.render(&labels))
    }

    /// Generates and writes the source to `path`, only when it changed (so a build script
    /// does not trigger needless rebuilds).
    ///
    /// # Errors
    ///
    /// As [`generate`](Self::generate); [`CodegenError::Output`] when writing fails, or when
    /// `path` is one of the schema files read (a slip that would replace the schema).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), CodegenError> {
        let path = path.as_ref();
        let output = |reason: String| CodegenError::Output {
            file: path.display().to_string(),
            reason,
        };
        // Compared as files, so `./a.avsc`, a link or another spelling of the path is caught.
        if let Ok(target) = std::fs::canonicalize(path)
            && let Some(input) = self.inputs.iter().find(|i| {
                i.path
                    .as_ref()
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .is_some_and(|p| p == target)
            })
        {
            return Err(output(format!(
                "it is the schema file {}; write the code to a .rs file",
                input.label
            )));
        }
        let code = self.generate()?;
        // Only a regular file of the same length is read back: reading `/dev/stdout` or a
        // FIFO (`--out /dev/stdout | ...`) would wait forever for a writer, which is us.
        let unchanged = std::fs::metadata(path)
            .is_ok_and(|m| m.is_file() && m.len() == code.len() as u64)
            && std::fs::read(path).is_ok_and(|old| old == code.as_bytes());
        if unchanged {
            return Ok(());
        }
        std::fs::write(path, code).map_err(|e| output(e.to_string()))
    }
}
