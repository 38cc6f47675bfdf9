//! The command line of `outbox-relay`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Drains the transactional outbox to Kafka, and operates it.
#[derive(Debug, Parser)]
#[command(name = "outbox-relay", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Settings shared by every subcommand; they override the config file and the environment.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// TOML configuration file.
    #[arg(long, short = 'c', global = true, env = "OUTBOX_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Database URL (postgres://, mysql://, mariadb://, sqlite:); else OUTBOX_DATABASE_URL or
    /// DATABASE_URL.
    #[arg(long, global = true)]
    pub(crate) database_url: Option<String>,
    /// Kafka bootstrap servers; else KAFKA_BOOTSTRAP_SERVERS.
    #[arg(long, global = true)]
    pub(crate) bootstrap_servers: Option<String>,
    /// Prefix of the outbox tables (default `outbox`).
    #[arg(long, global = true)]
    pub(crate) table_prefix: Option<String>,
    /// Address for /metrics, /healthz, /readyz ("" turns it off).
    #[arg(long, global = true)]
    pub(crate) http_listen: Option<String>,
    /// Address for the schema registry REST API ("" turns it off).
    #[arg(long, global = true)]
    pub(crate) registry_listen: Option<String>,
    /// A librdkafka producer property, `key=value` (repeatable). Secrets are better given as
    /// OUTBOX_KAFKA_<NAME> or OUTBOX_KAFKA_<NAME>_FILE (OUTBOX_KAFKA_SASL_PASSWORD → sasl.password).
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    pub(crate) kafka_property: Vec<String>,
    /// Log format: `text` (colours only on a terminal) or `json`.
    #[arg(long, global = true, env = "OUTBOX_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: outbox_relay::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Drain the outbox to Kafka until SIGINT or SIGTERM (migrates the tables first).
    Run,
    /// Create or upgrade the outbox tables.
    Migrate,
    /// Show backlog, lag, dead letters and the current leader.
    Status,
    /// Work with event schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// The schema registry REST API (Confluent-compatible).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Inspect and resolve events that failed permanently.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
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
        /// The stream the schemas are for, so the hint names the next one (`orders.v2`).
        #[arg(long)]
        topic: Option<String>,
        /// The new schema (.avsc).
        new: PathBuf,
        /// The existing schemas (.avsc), oldest first.
        existing: Vec<PathBuf>,
    },
    /// Check schemas against the design rules for events. Exits 0 when no rule of error
    /// severity is broken, 1 when one is, 2 on invalid input.
    Lint {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The stream the schemas are versions of (oldest first): turns on the
        /// one-definition-per-stream rules and selects `subjects."<topic>-value"` settings.
        #[arg(long)]
        topic: Option<String>,
        /// TOML file with rule severities and thresholds, globally and per subject; default:
        /// the relay configuration's `[registry] lint_config`, when `--config` names one.
        /// (Not `--config`: that is the relay's configuration, also set by `OUTBOX_CONFIG`.)
        #[arg(long, value_name = "FILE")]
        lint_config: Option<PathBuf>,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// The schemas (.avsc).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate Rust types (deriving `AvroSchema`, serde) from schemas. Exits 0 when written,
    /// 1 when a schema uses what the derive cannot express, 2 on invalid input.
    Codegen {
        /// Write here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Implement `outbox_core::Event` for each file's top-level record, on this topic.
        #[arg(long)]
        topic: Option<String>,
        /// The field that is the event key (with `--topic`).
        #[arg(long, requires = "topic")]
        key: Option<String>,
        /// The schemas (.avsc).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Register a schema under a subject in the database's registry (compatibility-checked).
    Register {
        /// The subject (`<topic>-value` for the default naming strategy).
        #[arg(long)]
        subject: String,
        /// The schema (.avsc).
        file: PathBuf,
    },
    /// List subjects, or the versions of one subject.
    List {
        /// A subject.
        subject: Option<String>,
    },
    /// Print a schema: the latest (or `--version`) of a subject, or the one with `--id`.
    Get {
        /// The subject.
        subject: Option<String>,
        /// The version (default: latest).
        #[arg(long)]
        version: Option<u32>,
        /// A global schema id instead of a subject.
        #[arg(long)]
        id: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Serve the embedded registry over the Confluent Schema Registry REST API until SIGINT
    /// or SIGTERM (`run` serves it too).
    Serve {
        /// Refuse registrations, configuration changes and deletes, whatever the
        /// configuration says (read-only is also the default; writes need `read_only = false`
        /// and a credential in `[registry.auth]`).
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// List dead letters, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Put dead letters back into the outbox in their original places (same id and event
    /// id), so they are published ahead of their keys' later events.
    Retry {
        /// Dead letter ids (their original outbox ids).
        #[arg(required_unless_present = "key")]
        ids: Vec<i64>,
        /// Retry every dead letter of this event key (UTF-8), in their original order.
        #[arg(long, conflicts_with = "ids")]
        key: Option<String>,
        /// With `--key`: only the dead letters of this topic.
        #[arg(long, requires = "key")]
        topic: Option<String>,
    },
    /// Delete dead letters for good.
    Discard {
        /// Dead letter ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Lines for a person.
    Text,
    /// JSON.
    Json,
}
