//! Confluent's compatibility modes over a subject's history.

use std::fmt;
use std::str::FromStr;

use super::{Incompatibility, check_reader_writer};
use crate::Error;
use crate::schema::Schema;
use crate::schema::limits::MAX_PROBLEMS;

/// A subject's compatibility mode, with Confluent Schema Registry's semantics: plain modes
/// check the latest version, transitive modes every version; BACKWARD means the new schema
/// reads data written with the old one, FORWARD the reverse, FULL both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityMode {
    /// No check.
    None,
    /// The new schema reads data of the latest version.
    Backward,
    /// The new schema reads data of every version.
    BackwardTransitive,
    /// The latest version reads data of the new schema.
    Forward,
    /// Every version reads data of the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every version (the outbox default: consumers on any
    /// version read any event, and the outbox can be replayed with any version).
    #[default]
    FullTransitive,
}

impl CompatibilityMode {
    /// Every mode, in Confluent's documentation order.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    /// The Confluent name (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityMode {
    type Err = Error;

    /// Parses a mode name case-insensitively; `-` may stand for `_`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == wanted)
            .ok_or_else(|| Error::InvalidConfig {
                key: "compatibility".to_owned(),
                reason: format!(
                    "unknown compatibility mode {s:?} (expected one of: {})",
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            })
    }
}

/// Which way a check read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The new schema as reader, an existing version as writer (the backward half).
    NewReadsExisting,
    /// An existing version as reader, the new schema as writer (the forward half).
    ExistingReadsNew,
}

impl Direction {
    /// A short phrase for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewReadsExisting => "new schema reading data written with existing",
            Self::ExistingReadsNew => "existing schema reading data written with new",
        }
    }
}

/// An incompatibility with one existing version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Index of the existing version in the history given (0 = oldest).
    pub existing: usize,
    /// Which schema was the reader.
    pub direction: Direction,
    /// What is wrong, located in the reader schema.
    pub incompatibility: Incompatibility,
}

/// The verdict of checking a new schema against a history under a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    /// The mode checked.
    pub mode: CompatibilityMode,
    /// Every incompatibility found; empty means compatible.
    pub problems: Vec<Problem>,
}

impl CompatibilityReport {
    /// Whether the new schema may be registered.
    pub fn is_compatible(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `new` against `history` (oldest first) under `mode`.
pub fn check_compatibility(
    mode: CompatibilityMode,
    new: &Schema,
    history: &[Schema],
) -> CompatibilityReport {
    let first = if mode.transitive() {
        0
    } else {
        history.len().saturating_sub(1)
    };
    let mut problems = Vec::new();
    if mode != CompatibilityMode::None {
        for (existing, old) in history.iter().enumerate().skip(first) {
            if problems.len() >= MAX_PROBLEMS {
                break;
            }
            if mode.backward() {
                problems.extend(check_reader_writer(new, old).into_iter().map(|i| Problem {
                    existing,
                    direction: Direction::NewReadsExisting,
                    incompatibility: i,
                }));
            }
            if mode.forward() {
                problems.extend(check_reader_writer(old, new).into_iter().map(|i| Problem {
                    existing,
                    direction: Direction::ExistingReadsNew,
                    incompatibility: i,
                }));
            }
        }
    }
    CompatibilityReport { mode, problems }
}
