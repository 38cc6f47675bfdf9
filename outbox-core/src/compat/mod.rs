//! Schema compatibility: Java-exact reader/writer checks and Confluent's seven modes.
//!
//! # Examples
//!
//! ```
//! use outbox_core::compat::{check_compatibility, CompatibilityMode};
//! use outbox_core::Schema;
//!
//! let v1 = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)?;
//! let v2 = Schema::parse_str(
//!     r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
//! )?;
//! // A new required field: old data cannot fill it, so BACKWARD refuses it ...
//! assert!(!check_compatibility(CompatibilityMode::Backward, &v2, &[v1.clone()]).is_compatible());
//! // ... while FORWARD (old readers ignore the new field) accepts it.
//! assert!(check_compatibility(CompatibilityMode::Forward, &v2, &[v1]).is_compatible());
//! # Ok::<(), outbox_core::Error>(())
//! ```

mod checker;
mod mode;

pub use checker::check_reader_writer;
pub use mode::{CompatibilityMode, CompatibilityReport, Direction, Problem, check_compatibility};

use crate::schema::AvroType;

/// The kinds of incompatibility, as Java's `SchemaIncompatibilityType` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IncompatibilityKind {
    /// Named types whose names (and reader aliases) do not match.
    NameMismatch,
    /// Fixed types of different sizes.
    FixedSizeMismatch,
    /// Writer enum symbols the reader lacks, with no reader enum default.
    MissingEnumSymbols,
    /// A reader field absent from the writer and without a default.
    ReaderFieldMissingDefaultValue,
    /// Types that cannot be promoted into one another.
    TypeMismatch,
    /// A writer type no reader union branch can read.
    MissingUnionBranch,
    /// A reader field that matches several writer fields by name and aliases (Java throws;
    /// Confluent reports the pair incompatible).
    AmbiguousField,
    /// Two recursive schemas whose checking would go deeper than
    /// [`MAX_CHECK_DEPTH`](crate::schema::limits::MAX_CHECK_DEPTH), or a check that needs more
    /// than [`MAX_CHECK_STEPS`](crate::schema::limits::MAX_CHECK_STEPS): reported
    /// incompatible rather than guessed.
    TooComplex,
}

impl IncompatibilityKind {
    /// The upper-case name Java and Confluent print (`READER_FIELD_MISSING_DEFAULT_VALUE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameMismatch => "NAME_MISMATCH",
            Self::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            Self::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            Self::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::MissingUnionBranch => "MISSING_UNION_BRANCH",
            Self::AmbiguousField => "AMBIGUOUS_FIELD",
            Self::TooComplex => "TOO_COMPLEX",
        }
    }
}

impl std::fmt::Display for IncompatibilityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a reader cannot read a writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// What is wrong.
    pub kind: IncompatibilityKind,
    /// JSON pointer into the reader schema (`/fields/1/type`), as Java reports it.
    pub location: String,
    /// Java's message for it (`reader type: INT not compatible with writer type: STRING`).
    pub message: String,
    /// The type of the reader fragment at `location`.
    pub reader_type: AvroType,
    /// The type of the writer fragment compared with it.
    pub writer_type: AvroType,
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}: {}", self.kind, self.location, self.message)
    }
}
