//! `outbox-relay schema check`: is a new schema compatible with the existing ones?

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use outbox_core::Schema;
use outbox_core::compat::{CompatibilityMode, CompatibilityReport, Direction, check_compatibility};
use outbox_core::registry::next_stream;
use outbox_core::schema::limits::MAX_SCHEMA_BYTES;

/// Input the check cannot work with: an unreadable file, a schema that does not parse, an
/// unknown mode. The CLI prints it on one line and exits 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A schema file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A schema file is larger than the CLI reads.
    #[error("{path}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A schema file is not a valid Avro schema.
    #[error("{path}: {source}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// Why.
        source: outbox_core::Error,
    },
    /// The mode is not one of the seven.
    #[error("{0}")]
    Mode(outbox_core::Error),
    /// A configuration file (the lint rules) is unreadable or invalid.
    #[error("{0}")]
    Config(outbox_core::Error),
}

/// The schemas of one check, as read from files.
#[derive(Debug)]
pub struct CheckInput {
    /// The mode.
    pub mode: CompatibilityMode,
    /// The new schema's file and schema.
    pub new: (PathBuf, Schema),
    /// The existing schemas, oldest first.
    pub existing: Vec<(PathBuf, Schema)>,
    /// The stream these are schemas of, so the hint can name the next one.
    pub topic: Option<String>,
}

impl CheckInput {
    /// Reads and parses the files.
    ///
    /// # Errors
    ///
    /// [`InputError`] for an unknown mode, an unreadable file or an invalid schema.
    pub fn load(mode: &str, new: &Path, existing: &[PathBuf]) -> Result<Self, InputError> {
        let mode = mode.parse().map_err(InputError::Mode)?;
        let new = (new.to_path_buf(), read_schema(new)?);
        let existing = existing
            .iter()
            .map(|p| Ok((p.clone(), read_schema(p)?)))
            .collect::<Result<_, InputError>>()?;
        Ok(Self {
            mode,
            new,
            existing,
            topic: None,
        })
    }

    /// Names the stream, so an incompatible verdict's hint names the next one
    /// (`orders` → `orders.v2`).
    #[must_use]
    pub fn with_topic(mut self, topic: Option<&str>) -> Self {
        self.topic = topic.map(str::to_owned);
        self
    }

    /// Runs the check.
    pub fn check(&self) -> CompatibilityReport {
        let history: Vec<Schema> = self.existing.iter().map(|(_, s)| s.clone()).collect();
        check_compatibility(self.mode, &self.new.1, &history)
    }

    /// The verdict for a person: one headline, one line per incompatibility, and a hint.
    pub fn render_text(&self, report: &CompatibilityReport) -> String {
        let mut out = String::new();
        let verdict = if report.is_compatible() {
            "compatible"
        } else {
            "incompatible"
        };
        let _ = write!(
            out,
            "{verdict}: {} against {} existing schema{} under {}",
            self.new.0.display(),
            self.existing.len(),
            if self.existing.len() == 1 { "" } else { "s" },
            report.mode
        );
        if report.is_compatible() {
            out.push('\n');
            return out;
        }
        let _ = writeln!(out, " ({} incompatibilities)", report.problems.len());
        for p in &report.problems {
            let i = &p.incompatibility;
            let _ = writeln!(
                out,
                "  {} ({}): {} at {}: {}",
                self.existing[p.existing].0.display(),
                p.direction.as_str(),
                i.kind,
                i.location,
                i.message
            );
        }
        let next = match &self.topic {
            Some(topic) => format!("`{}`", next_stream(topic)),
            None => "`<topic>.v2`; pass --topic to name it".to_owned(),
        };
        let _ = writeln!(
            out,
            "hint: make the change compatible (give new fields defaults, keep types promotable), \
             or publish it to a new stream ({next}) while the old one drains"
        );
        out
    }

    /// The verdict as one JSON document.
    pub fn render_json(&self, report: &CompatibilityReport) -> String {
        let problems: Vec<serde_json::Value> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "existing": self.existing[p.existing].0.display().to_string(),
                    "existing_index": p.existing,
                    "direction": match p.direction {
                        Direction::NewReadsExisting => "new_reads_existing",
                        Direction::ExistingReadsNew => "existing_reads_new",
                    },
                    "kind": p.incompatibility.kind.as_str(),
                    "location": p.incompatibility.location,
                    "message": p.incompatibility.message,
                })
            })
            .collect();
        serde_json::json!({
            "compatible": report.is_compatible(),
            "mode": report.mode.as_str(),
            "new": self.new.0.display().to_string(),
            "existing": self.existing.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "next_stream": self.topic.as_deref().map(next_stream),
            "incompatibilities": problems,
        })
        .to_string()
    }
}

/// The largest schema file the schema commands read: the largest schema there may be
/// ([`MAX_SCHEMA_BYTES`]), so a hostile file (or `/dev/zero`) is refused without being read
/// whole.
pub const MAX_SCHEMA_FILE_BYTES: u64 = MAX_SCHEMA_BYTES as u64;

/// Reads and parses a schema file of at most [`MAX_SCHEMA_FILE_BYTES`].
pub(crate) fn read_schema(path: &Path) -> Result<Schema, InputError> {
    use std::io::Read as _;
    let read_error = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_SCHEMA_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_SCHEMA_FILE_BYTES {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_SCHEMA_FILE_BYTES,
        });
    }
    Schema::parse_str(&text).map_err(|source| InputError::Schema {
        path: path.to_path_buf(),
        source,
    })
}
