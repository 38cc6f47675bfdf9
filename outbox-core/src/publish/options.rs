//! How a writer is set up: the options its builder sets.

use crate::compat::CompatibilityMode;
use crate::encode::{DEFAULT_MAX_PAYLOAD_BYTES, PayloadFormat};
use crate::lint::{LintConfig, LintLevel};
use crate::registry::{RemoteRegistryConfig, SubjectNameStrategy};
use crate::table::TableNames;

use super::EventType;

/// How a writer is set up; its builder (`outbox_sqlx::OutboxBuilder`,
/// `outbox_diesel::DieselOutboxBuilder`) sets these with its inherent setters.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// The table names.
    pub table_names: TableNames,
    /// Whether building creates or upgrades the tables.
    pub run_migrations: bool,
    /// The mode for subjects without a setting of their own or a global one.
    pub default_compatibility: CompatibilityMode,
    /// How subjects are named.
    pub subject_name_strategy: SubjectNameStrategy,
    /// The payload format.
    pub payload_format: PayloadFormat,
    /// The largest encoded record accepted (key + value + headers).
    pub max_payload_bytes: usize,
    /// Whether an event type not registered at start-up registers on first publish.
    pub auto_register: bool,
    /// PostgreSQL: NOTIFY listening relays in every publishing transaction.
    pub notify_relay: bool,
    /// The event types registered at start-up.
    pub event_types: Vec<EventType>,
    /// A remote Confluent-compatible registry to register with instead of the embedded one.
    pub schema_registry: Option<RemoteRegistryConfig>,
    /// Whether registering a new schema runs the schema linter, and what a violation does.
    pub lint_level: LintLevel,
    /// The linter's rules, when `lint_level` is not `Allow`.
    pub lint_config: LintConfig,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            table_names: TableNames::default(),
            run_migrations: true,
            default_compatibility: CompatibilityMode::default(),
            subject_name_strategy: SubjectNameStrategy::default(),
            payload_format: PayloadFormat::default(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            auto_register: false,
            notify_relay: false,
            event_types: Vec::new(),
            schema_registry: None,
            lint_level: LintLevel::default(),
            lint_config: LintConfig::default(),
        }
    }
}
