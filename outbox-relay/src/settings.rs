//! The configuration parsed once into what the commands use: a checked database URL and its
//! backend, validated table names and the statements built from them, Kafka settings, and the
//! served ports' parsed addresses.
//!
//! [`RelayConfig`] is the file's shape (TOML, then the environment, then flags);
//! [`Settings`] is built from it once, and nothing is parsed or validated again after that.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use outbox_core::Result;
use outbox_core::table::{Statements, TableNames};
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore};
use sqlx::Pool;

use crate::config::{
    DrainConfig, EventSource, HttpConfig, KafkaConfig, Overrides, RegistryApiConfig, RelayConfig,
    WalConfig,
};
use crate::database::Backend;
use crate::validate::invalid;

/// Everything a command needs, validated once. `Debug` redacts secrets.
#[derive(Clone)]
pub struct Settings {
    database_url: String,
    /// The database kind `database_url` names.
    pub backend: Backend,
    /// The outbox tables' names (validated).
    pub tables: TableNames,
    statements: Arc<Statements>,
    /// Kafka settings (their `message.max.bytes` checked).
    pub kafka: KafkaConfig,
    /// Draining settings (range-checked).
    pub relay: DrainConfig,
    /// This instance's lease holder name: `relay.instance_id`, else the host name.
    pub instance_id: String,
    /// The metrics and health endpoint's settings.
    pub http: HttpConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` when turned off.
    pub http_listen: Option<SocketAddr>,
    /// The schema registry API's settings.
    pub registry: RegistryApiConfig,
    /// Where the registry API is served; `None` when turned off.
    pub registry_listen: Option<SocketAddr>,
    /// Where events come from: the table, or (PostgreSQL only) the replication slot.
    pub source: EventSource,
    /// WAL mode settings.
    pub wal: WalConfig,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &crate::redact::url(&self.database_url))
            .field("backend", &self.backend)
            .field("tables", &self.tables)
            .field("kafka", &self.kafka)
            .field("relay", &self.relay)
            .field("instance_id", &self.instance_id)
            .field("http", &self.http)
            .field("http_listen", &self.http_listen)
            .field("registry", &self.registry)
            .field("registry_listen", &self.registry_listen)
            .field("source", &self.source)
            .field("wal", &self.wal)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the file (if any), the environment and `overrides` (see [`RelayConfig::load`]),
    /// and builds the settings.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] naming the key that is missing or malformed;
    /// [`outbox_core::Error::InvalidIdentifier`] for unsafe table names.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self> {
        Self::new(RelayConfig::load(file, overrides)?)
    }

    /// Validates `config` and builds the settings from it.
    ///
    /// # Errors
    ///
    /// As [`RelayConfig::validate`], and [`outbox_core::Error::InvalidConfig`] for a database URL of
    /// another kind; [`outbox_core::Error::InvalidIdentifier`] for unsafe table names.
    pub fn new(config: RelayConfig) -> Result<Self> {
        let tables = config.checked_table_names()?;
        let database_url = config.database_url()?.to_owned();
        let backend = crate::database::backend(&database_url)?;
        let statements = Arc::new(Statements::new(backend.dialect(), &tables));
        if config.source == EventSource::Wal
            && backend.dialect() != outbox_core::table::Dialect::Postgres
        {
            return Err(invalid(
                "source",
                "source = \"wal\" needs a PostgreSQL database_url".to_owned(),
            ));
        }
        Ok(Self {
            backend,
            tables,
            statements,
            instance_id: config.instance_id(),
            http_listen: config.http_listen()?,
            registry_listen: config.registry_listen()?,
            database_url,
            kafka: config.kafka,
            relay: config.relay,
            http: config.http,
            registry: config.registry,
            source: config.source,
            wal: config.wal,
        })
    }

    /// The database URL (never empty).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The SQL statements for [`Self::backend`] and [`Self::tables`], built once.
    pub fn statements(&self) -> &Arc<Statements> {
        &self.statements
    }

    /// The relay store over `pool`, with the configured strict order.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] naming `database_url` when `pool` is of another database kind
    /// than the URL names.
    pub fn relay_store<DB: OutboxDatabase>(&self, pool: Pool<DB>) -> Result<SqlxRelayStore<DB>> {
        Ok(SqlxRelayStore::new(pool, self.statements_for::<DB>()?)
            .with_strict_order(self.relay.strict_order))
    }

    /// The statements, checked to be for `DB`.
    pub(crate) fn statements_for<DB: OutboxDatabase>(&self) -> Result<Arc<Statements>> {
        if self.statements.dialect != DB::DIALECT {
            return Err(invalid(
                "database_url",
                format!(
                    "names a {:?} database, but the pool is {:?}",
                    self.statements.dialect,
                    DB::DIALECT
                ),
            ));
        }
        Ok(Arc::clone(&self.statements))
    }

    /// Checks that Kafka is configured (what `run` needs beyond the database).
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] naming `kafka.bootstrap_servers`.
    pub fn require_kafka(&self) -> Result<()> {
        if self
            .kafka
            .bootstrap_servers
            .as_deref()
            .is_none_or(str::is_empty)
            && !self.kafka.properties.contains_key("bootstrap.servers")
        {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "missing (set it in the file, KAFKA_BOOTSTRAP_SERVERS or --bootstrap-servers)",
            ));
        }
        crate::producer::client_config(&self.kafka).map(drop)
    }

    /// Whether the served registry API accepts writes: `read_only = false` and no remote
    /// registry (the API never forwards writes with the relay's own credentials).
    pub fn registry_writable(&self) -> bool {
        crate::config::registry_writable(&self.registry)
    }

    /// The remote registry to use instead of the embedded tables, if configured (see
    /// [`RelayConfig::remote_registry`]).
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] naming `registry.ca` when its file cannot be read.
    pub fn remote_registry(&self) -> Result<Option<outbox_core::registry::RemoteRegistryConfig>> {
        crate::config::remote_registry(&self.registry)
    }
}
