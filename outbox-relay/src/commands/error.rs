//! What a command ends with: an [`Outcome`], or a [`CommandError`] with its exit code.

use outbox_core::Error;

/// Exit code for invalid input or configuration (as clap uses for usage errors).
const EXIT_INVALID_INPUT: u8 = 2;

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// It did what was asked (exit 0).
    Success,
    /// It ran, and said on standard error what it could not do: an incompatible schema, a
    /// dead letter not found, a lint rule broken (exit 1).
    Failure,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
        }
    }
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A configuration, database, registry or Kafka error.
    #[error(transparent)]
    Outbox(#[from] Error),
    /// A schema or configuration file a `schema` command reads is unreadable or invalid.
    #[error(transparent)]
    Input(#[from] crate::schema_check::InputError),
    /// `schema codegen` could not generate code.
    #[error(transparent)]
    Codegen(#[from] outbox_core::codegen::CodegenError),
    /// The outbox tables are missing: the database was never migrated.
    #[error(
        "the outbox tables ({events}, ...) do not exist in the database named by database_url: \
         run `outbox-relay migrate`"
    )]
    TablesMissing {
        /// The events table the command looked for.
        events: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl CommandError {
    /// The process exit code: 2 for invalid input or configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        use outbox_core::codegen::CodegenError;
        match self {
            Self::Outbox(
                Error::InvalidConfig { .. }
                | Error::InvalidSchema { .. }
                | Error::InvalidIdentifier { .. }
                | Error::CaptureRefused { .. }
                | Error::LiberationRefused { .. },
            )
            | Self::Input(_)
            | Self::Codegen(CodegenError::Input { .. } | CodegenError::Output { .. }) => {
                EXIT_INVALID_INPUT
            }
            _ => 1,
        }
    }
}
