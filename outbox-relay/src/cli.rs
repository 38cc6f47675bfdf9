//! The command line of `outbox-relay`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Drains the transactional outbox to Kafka, and operates it.
#[derive(Debug, Parser)]
#[command(name = "outbox-relay", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with event schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Check a new schema against existing ones. Exits 0 when compatible, 1 when incompatible,
    /// 2 on invalid input.
    Check {
        /// Compatibility mode: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD,
        /// FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE (case-insensitive).
        #[arg(long, default_value = "FULL_TRANSITIVE")]
        mode: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The new schema (.avsc).
        new: PathBuf,
        /// The existing schemas (.avsc), oldest first.
        existing: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Lines for a person.
    Text,
    /// One JSON document.
    Json,
}
