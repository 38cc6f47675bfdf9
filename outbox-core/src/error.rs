//! The one error type of `outbox-core`, shared by the writers and the relay.

use crate::compat::{CompatibilityMode, Problem};
use crate::lint::Violation;

/// A `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether retrying the failed operation can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing condition (a dropped connection, a serialization conflict, a busy broker):
    /// retry the same operation.
    Retryable,
    /// The input or the configuration is wrong; retrying the same thing fails the same way.
    Permanent,
}

/// Everything that can go wrong in the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema is not valid Avro (or not JSON).
    #[error("invalid schema: {reason}")]
    InvalidSchema {
        /// Why, in one line.
        reason: String,
    },

    /// An event does not conform to its registered schema; nothing was written.
    #[error("event does not match schema of subject {subject}: at {path}: {reason}")]
    SchemaViolation {
        /// The subject whose schema the event was checked against.
        subject: String,
        /// Where in the event (`items[2].sku`; `$` for the whole event).
        path: String,
        /// What is wrong there.
        reason: String,
    },

    /// An event's encoded record is larger than the configured limit; nothing was written.
    #[error("encoded event of {size} bytes exceeds the limit of {limit} bytes (topic {topic})")]
    PayloadTooLarge {
        /// The topic the event was for.
        topic: String,
        /// The size of the encoded record (key + value + headers, or the value alone when
        /// refused while encoding), in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },

    /// A row's schema id does not fit the `schema_id` column (`INTEGER`, as Confluent's ids);
    /// nothing was written.
    #[error(
        "schema id {id} is out of range for the schema_id column (at most {})",
        i32::MAX
    )]
    SchemaIdOutOfRange {
        /// The schema id.
        id: u32,
    },

    /// A schema change breaks the subject's compatibility mode; nothing was registered.
    #[error(
        "schema for subject {subject} is incompatible under {mode}: {} (make the change compatible, \
         or publish it to a new stream such as `{}`)",
        summarize(problems),
        crate::registry::next_stream(crate::registry::stream_of_subject(subject))
    )]
    IncompatibleSchema {
        /// The subject.
        subject: String,
        /// The mode checked.
        mode: CompatibilityMode,
        /// Every incompatibility, with the version it breaks and where.
        problems: Vec<Problem>,
    },

    /// A schema breaks the design rules the registry enforces
    /// ([`LintLevel::Deny`](crate::lint::LintLevel::Deny)); nothing was registered.
    #[error(
        "schema for subject {subject} breaks the schema design rules: {}",
        summarize_violations(violations)
    )]
    LintFailed {
        /// The subject.
        subject: String,
        /// Every violation of error severity.
        violations: Vec<Violation>,
    },

    /// No subject by that name.
    #[error("subject not found: {subject}")]
    SubjectNotFound {
        /// The subject.
        subject: String,
    },

    /// No such version of a subject.
    #[error("version {version} not found in subject {subject}")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: u32,
    },

    /// No schema with that id.
    #[error("schema id {id} not found")]
    SchemaNotFound {
        /// The id.
        id: crate::SchemaId,
    },

    /// An event type was published that the outbox was not built to publish.
    #[error("event type {event_type} is not registered with this outbox (register it at start-up)")]
    UnregisteredEvent {
        /// The Avro full name of the event type.
        event_type: String,
    },

    /// A table or schema name is not a safe SQL identifier.
    #[error("invalid identifier {name:?}: {reason}")]
    InvalidIdentifier {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration value is missing or malformed.
    #[error("invalid configuration for {key}: {reason}")]
    InvalidConfig {
        /// The configuration key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record value could not be decoded.
    #[error("cannot decode record: {reason}")]
    Decode {
        /// Why.
        reason: String,
    },

    /// The event could not be turned into an Avro value.
    #[error("cannot serialize event: {reason}")]
    Serialize {
        /// Why.
        reason: String,
    },

    /// A storage back end failed (database, network).
    #[error("{operation} failed: {source}")]
    Store {
        /// The operation that failed (`read batch`, `register schema`).
        operation: &'static str,
        /// Whether a retry can succeed.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A table cannot be captured as asked (or a DDL under capture is refused); nothing
    /// was changed.
    #[error("capture of table {table} refused: {reason}")]
    CaptureRefused {
        /// The table.
        table: String,
        /// Why, naming the column or the option.
        reason: String,
    },

    /// A query liberation (`liberate bulk|incremental`) cannot run as asked; nothing was
    /// written.
    #[error("liberation of table {table} refused: {reason}")]
    LiberationRefused {
        /// The table.
        table: String,
        /// Why, naming the column or the option.
        reason: String,
    },

    /// A delete the registry's rules refuse (Confluent's: soft delete first, then
    /// `permanent`; and ours: never lose the schema of an event still in the outbox).
    #[error("cannot delete {}: {refusal}", target(subject, *version))]
    DeleteRefused {
        /// The subject.
        subject: String,
        /// The version, `None` for the whole subject.
        version: Option<u32>,
        /// Why.
        refusal: DeleteRefusal,
    },

    /// This store cannot do what was asked (a remote or writer-side store asked to delete).
    #[error("{operation} is not supported by this schema store")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
    },

    /// A write raced with another writer (a unique key was taken); the operation may be retried.
    #[error("conflicting concurrent write: {what}")]
    Conflict {
        /// What was taken.
        what: String,
    },

    /// A relay's write was refused because another holder took its lease (the fencing token
    /// moved on): the relay must stop producing.
    #[error("lease {lease} was taken over (generation {token} is no longer current)")]
    LeaseLost {
        /// The lease.
        lease: String,
        /// The generation the write was made under.
        token: i64,
    },

    /// WAL mode cannot work with this database as it is: no slot recorded, the slot gone or
    /// lost, `wal_level` not `logical`, a role without `REPLICATION`. Messages emitted without
    /// a slot are lost for good, so this is never worked around silently.
    #[error("wal mode: slot {slot}: {reason}")]
    WalSlot {
        /// The replication slot.
        slot: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// Another client is reading the replication slot (SQLSTATE 55006): a standby relay
    /// waits and retries, as for the lease.
    #[error("wal mode: slot {slot} is in use by another client")]
    WalSlotInUse {
        /// The replication slot.
        slot: String,
    },
}

impl Error {
    /// Whether the failed operation may succeed if retried.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store {
                retryable: true, ..
            }
            | Self::Conflict { .. }
            | Self::WalSlotInUse { .. } => ErrorKind::Retryable,
            _ => ErrorKind::Permanent,
        }
    }

    /// Shorthand for `self.kind() == ErrorKind::Retryable`.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }
}

/// Why a registry delete is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteRefusal {
    /// Already soft-deleted: only `permanent` can delete it now.
    SoftDeleted,
    /// Not soft-deleted yet: `permanent` needs a soft delete first.
    NotSoftDeleted,
    /// Permanent deletion would remove the only copy of schema `id`, which unpublished
    /// outbox rows or dead letters still carry: the relay (and their consumers) need it.
    InUse {
        /// The schema id.
        id: crate::SchemaId,
    },
}

impl std::fmt::Display for DeleteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SoftDeleted => {
                f.write_str("it was soft deleted; set permanent=true to delete it permanently")
            }
            Self::NotSoftDeleted => {
                f.write_str("it was not deleted first before being permanently deleted")
            }
            Self::InUse { id } => write!(
                f,
                "schema id {id} is still carried by unpublished outbox events or dead letters"
            ),
        }
    }
}

fn target(subject: &str, version: Option<u32>) -> String {
    match version {
        Some(v) => format!("subject {subject} version {v}"),
        None => format!("subject {subject}"),
    }
}

fn summarize(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            format!(
                "{} (version index {}, {})",
                p.incompatibility,
                p.existing,
                p.direction.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first violations, then how many more: a hostile schema with 100 000 undocumented fields
/// must not make a 10 MB error message.
fn summarize_violations(violations: &[Violation]) -> String {
    const SHOWN: usize = 20;
    let mut text = violations
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > SHOWN {
        text.push_str(&format!("; and {} more", violations.len() - SHOWN));
    }
    text
}
