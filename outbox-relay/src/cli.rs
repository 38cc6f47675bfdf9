//! The command line of `outbox-relay`: what clap parses, and the flags as configuration
//! [`Overrides`].

// The doc comments are clap's help text, printed as written: `<NAME>` is for the terminal,
// not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use outbox_core::Result;

use crate::config::Overrides;
use crate::validate::invalid;

/// Drains the transactional outbox to Kafka, and operates it.
#[derive(Debug, Parser)]
#[command(name = "outbox-relay", version, about)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML configuration file.
    #[arg(long, short = 'c', global = true, env = "OUTBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (postgres://, mysql://, mariadb://, sqlite:); else OUTBOX_DATABASE_URL or
    /// DATABASE_URL.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Kafka bootstrap servers; else KAFKA_BOOTSTRAP_SERVERS.
    #[arg(long, global = true)]
    pub bootstrap_servers: Option<String>,
    /// Prefix of the outbox tables (default `outbox`).
    #[arg(long, global = true)]
    pub table_prefix: Option<String>,
    /// Address for /metrics, /healthz, /readyz ("" turns it off).
    #[arg(long, global = true)]
    pub http_listen: Option<String>,
    /// Address for the schema registry REST API ("" turns it off).
    #[arg(long, global = true)]
    pub registry_listen: Option<String>,
    /// A librdkafka producer property, `key=value` (repeatable). Secrets are better given as
    /// OUTBOX_KAFKA_<NAME> or OUTBOX_KAFKA_<NAME>_FILE (OUTBOX_KAFKA_SASL_PASSWORD → sasl.password).
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    pub kafka_property: Vec<String>,
    /// Log format: `text` (colours only on a terminal) or `json`.
    #[arg(long, global = true, env = "OUTBOX_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::logging::LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Capture the changes of existing tables with triggers.
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// Publish the rows a table already holds, by query: a bulk snapshot or incremental
    /// loading, into the outbox (same events as trigger capture).
    #[command(subcommand)]
    Liberate(LiberateCommand),
    /// Inspect and resolve events that failed permanently.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
}

/// `outbox-relay schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
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
        id: Option<outbox_core::SchemaId>,
    },
}

/// `outbox-relay registry ...`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
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

/// `outbox-relay dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
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

/// `outbox-relay capture ...`.
#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Register the table's change-event schema and install the triggers that write one
    /// outbox row per inserted, updated or deleted row.
    Add {
        /// The table.
        #[arg(long)]
        table: String,
        /// The topic (default: the table's name).
        #[arg(long)]
        topic: Option<String>,
        /// Only these columns, comma-separated.
        #[arg(long, conflicts_with = "exclude")]
        columns: Option<String>,
        /// Every column but these (repeatable or comma-separated).
        #[arg(long)]
        exclude: Vec<String>,
        /// A field name for a column, `old=new` (repeatable).
        #[arg(long)]
        rename: Vec<String>,
        /// The key columns, comma-separated (required for a table without a primary key).
        #[arg(long)]
        key: Vec<String>,
    },
    /// List the captured tables.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Drop a table's triggers (its registered schemas stay).
    Remove {
        /// The table.
        #[arg(long)]
        table: String,
    },
    /// Apply DDL to a captured table if its new change-event schema is compatible, and
    /// replace the triggers; a breaking change is refused with nothing changed.
    Migrate {
        /// The table.
        #[arg(long)]
        table: String,
        /// The DDL, one statement (`ALTER TABLE orders ADD COLUMN note TEXT`).
        #[arg(long)]
        ddl: String,
    },
}

/// What every `outbox-relay liberate` mode takes.
#[derive(Debug, Args)]
pub struct LiberateArgs {
    /// The table.
    #[arg(long)]
    pub table: String,
    /// The topic (default: the capture's, else the table's name).
    #[arg(long)]
    pub topic: Option<String>,
    /// Rows per chunk: one transaction, one checkpoint.
    #[arg(long, default_value_t = 1000)]
    pub chunk: usize,
    /// At most this many rows per second (default: as fast as the database goes).
    #[arg(long, value_name = "ROWS")]
    pub rows_per_second: Option<u32>,
    /// Forget the stored checkpoint and start from the first row.
    #[arg(long)]
    pub restart: bool,
    /// Read the rows from this SELECT instead of the whole table (custom query loading):
    /// its rows must have the table's columns (`SELECT * FROM orders WHERE region = 'eu'`).
    #[arg(long)]
    pub query: Option<String>,
    /// Keep the progress figures (`outbox_liberate_*`: rows done, estimate, rate, time left,
    /// chunks, queries) in this file, in Prometheus's text format, rewritten every second
    /// (for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
}

/// `outbox-relay liberate ...`.
#[derive(Debug, Subcommand)]
pub enum LiberateCommand {
    /// Every row, in primary-key order, as snapshot events (`op = r`); resumes from its
    /// checkpoint after a crash.
    Bulk {
        /// Table, topic, chunk, throttle.
        #[command(flatten)]
        args: LiberateArgs,
    },
    /// The rows past the stored position by `--by` columns (`op = u`), polling until SIGINT
    /// or SIGTERM (or once, with `--once`).
    Incremental {
        /// Table, topic, chunk, throttle.
        #[command(flatten)]
        args: LiberateArgs,
        /// The ordering columns, comma-separated: `updated_at`, `id` or `updated_at,id`
        /// (timestamp then id: rows sharing a timestamp are not skipped).
        #[arg(long, required = true)]
        by: String,
        /// Time between polls.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Read only rows whose first `--by` column (a timestamp) is at least this old, so a
        /// transaction that commits within it after stamping its row is not missed.
        #[arg(long, value_parser = humantime::parse_duration)]
        lag: Option<std::time::Duration>,
        /// Poll once and exit.
        #[arg(long)]
        once: bool,
    },
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// JSON.
    Json,
}

impl Global {
    /// The flags as configuration overrides (`-X key=value` split), warning about secrets on
    /// the command line.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] naming `-X` for a value that is not `key=value`.
    pub fn overrides(&self) -> Result<Overrides> {
        let kafka_properties = self
            .kafka_property
            .iter()
            .enumerate()
            .map(|(n, kv)| {
                kv.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    // Not the text itself: it may be a secret with a typo in place of `=`.
                    .ok_or_else(|| invalid("-X", format!("value {} is not key=value", n + 1)))
            })
            .collect::<Result<Vec<(String, String)>>>()?;
        // Flags are visible to every user of the machine (`ps`, /proc/<pid>/cmdline).
        for (key, _) in &kafka_properties {
            if crate::redact::is_secret_property(key) {
                tracing::warn!(
                    property = %key,
                    "a secret on the command line is visible to every user of this machine; use OUTBOX_KAFKA_<NAME> or OUTBOX_KAFKA_<NAME>_FILE"
                );
            }
        }
        if self
            .database_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| u.password().is_some())
        {
            tracing::warn!(
                "--database-url holds a password, visible to every user of this machine; use OUTBOX_DATABASE_PASSWORD or OUTBOX_DATABASE_PASSWORD_FILE"
            );
        }
        Ok(Overrides {
            database_url: self.database_url.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            http_listen: self.http_listen.clone(),
            table_prefix: self.table_prefix.clone(),
            registry_listen: self.registry_listen.clone(),
            kafka_properties,
        })
    }
}

impl Command {
    /// The log level when `RUST_LOG` is not set: `info` for the long-running commands, `warn`
    /// for the others (sqlx logs PostgreSQL notices such as "relation already exists,
    /// skipping" at info).
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Self::Run => "info,sqlx=warn",
            _ => "warn",
        }
    }
}
