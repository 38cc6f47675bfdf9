//! Relay configuration: a TOML file, then the environment, then flags (flags win).
//!
//! ```toml
//! database_url = "postgres://app@db/app"
//! table_prefix = "outbox"
//!
//! [kafka]
//! bootstrap_servers = "kafka-1:9092,kafka-2:9092"
//! [kafka.properties]            # any librdkafka producer property, passed through
//! "compression.type" = "lz4"
//!
//! [relay]
//! batch_size = 1000
//! poll_interval = "100ms"       # the longest idle wait; busy relays poll at once
//! strict_order = true           # PostgreSQL: never pass a row whose transaction is open
//! lease_ttl = "10s"
//! max_attempts = 5              # permanent failures before an event is dead-lettered
//! poison_policy = "block"       # or "skip"
//! shutdown_timeout = "30s"
//! retry_backoff = "1s"          # first wait after a permanent failure, doubling up to 60s
//! stuck_after = "60s"           # /healthz fails after this long without progress
//! listen_notify = false         # PostgreSQL: wake on NOTIFY from writers (see notify_relay)
//!
//! [http]
//! listen = "127.0.0.1:9464"     # /metrics, /healthz, /readyz; "" turns it off
//! protect_metrics = false       # true: /metrics needs a credential of [http.auth]
//! # [http.auth] and [http.server]: as for the registry below
//!
//! [registry]
//! listen = "127.0.0.1:8081"     # Confluent-compatible schema registry API; "" turns it off
//! read_only = true              # false allows registrations, config changes and deletes...
//! # url = "http://registry:8081" # use a remote registry instead (the API is then read-only)
//! lint = "allow"                # "deny" refuses new schemas breaking the design rules
//! # lint_config = "lint.toml"   # rule severities per subject (see `outbox-relay schema lint`)
//! [registry.auth]               # ...by clients presenting one of these (OUTBOX_REGISTRY_AUTH_*)
//! # username = "ci"
//! # password = "..."
//! # bearer_token = "..."
//! [registry.server]             # HTTPS and limits of the served port
//! # tls_cert = "/etc/outbox/cert.pem"
//! # tls_key = "/etc/outbox/key.pem"
//! header_timeout = "10s"        # also the idle limit of a kept-alive connection
//! body_timeout = "10s"
//! request_timeout = "30s"
//! body_limit = 10485760
//! max_concurrent_requests = 64
//! max_connections = 256
//! shutdown_grace = "5s"
//! max_connection_age = "5m"
//! ```

mod remote;
mod sections;

use std::net::SocketAddr;
use std::path::Path;

use outbox_core::{Error, Result};
use serde::Deserialize;

use crate::validate::invalid;
pub(crate) use remote::{registry_writable, remote_registry};
pub use sections::{DrainConfig, HttpConfig, KafkaConfig, PoisonPolicy, RegistryApiConfig};

/// Everything the relay needs to run. `Debug` redacts secrets (see [`crate::redact`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// The database holding the outbox (`postgres://`, `mysql://`, `sqlite:`).
    #[serde(default)]
    pub database_url: Option<String>,
    /// Prefix of the outbox tables (`outbox` → `outbox_events`, ...).
    #[serde(default = "default_prefix")]
    pub table_prefix: String,
    /// Database schema (PostgreSQL) or database (MySQL) of the tables.
    #[serde(default)]
    pub schema: Option<String>,
    /// Kafka settings.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Draining settings.
    #[serde(default)]
    pub relay: DrainConfig,
    /// The HTTP endpoint for metrics and health.
    #[serde(default)]
    pub http: HttpConfig,
    /// The schema registry REST API (Confluent-compatible) over the embedded registry.
    #[serde(default)]
    pub registry: RegistryApiConfig,
    /// Where events come from: `table` (poll `outbox_events`, the default) or `wal`
    /// (PostgreSQL's logical replication slot, see [`crate::wal`]).
    #[serde(default)]
    pub source: EventSource,
    /// WAL mode settings.
    #[serde(default)]
    pub wal: WalConfig,
}

/// Where the relay reads events from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// Poll the outbox table.
    #[default]
    Table,
    /// Stream PostgreSQL's logical replication slot (writers publish with `.wal(true)`).
    Wal,
}

/// WAL mode settings (`[wal]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Above this many bytes of WAL held back by the slot, the relay logs a warning and sets
    /// `outbox_relay_wal_slot_lag_alarm` (default 1 GiB): a slot must never hold WAL for ever.
    #[serde(default = "default_lag_alarm_bytes")]
    pub lag_alarm_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            lag_alarm_bytes: default_lag_alarm_bytes(),
        }
    }
}

fn default_lag_alarm_bytes() -> u64 {
    1 << 30
}

impl Default for RelayConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

fn default_prefix() -> String {
    "outbox".to_owned()
}

/// Values from flags, which override the file and the environment. `Debug` redacts secrets.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--bootstrap-servers`.
    pub bootstrap_servers: Option<String>,
    /// `--http-listen`.
    pub http_listen: Option<String>,
    /// `--table-prefix`.
    pub table_prefix: Option<String>,
    /// `--registry-listen`.
    pub registry_listen: Option<String>,
    /// `-X key=value` librdkafka properties.
    pub kafka_properties: Vec<(String, String)>,
}

impl RelayConfig {
    /// Reads the file (if any), applies the environment (`OUTBOX_DATABASE_URL` or
    /// `DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `OUTBOX_TABLE_PREFIX`, `OUTBOX_HTTP_LISTEN`,
    /// and the secrets and librdkafka properties of [`crate::secrets`]), then `overrides`,
    /// and validates the result.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the key that is missing or malformed.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok());
        let env = crate::secrets::Environment::from_process()?;
        crate::secrets::apply_environment(&mut config, &env)?;
        config.apply(overrides);
        crate::secrets::apply_database_password(&mut config, &env)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a configuration file (without the environment or validation).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_bounded(path, MAX_CONFIG_FILE_BYTES)
            .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
            .map_err(|e| invalid("--config", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::InvalidConfig { key, reason } => {
                invalid(&path.display().to_string(), format!("{key}: {reason}"))
            }
            other => other,
        })
    }

    /// Parses TOML text (without the environment or validation).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the offending key, line and column (never the value).
    pub fn from_toml(text: &str) -> Result<Self> {
        crate::validate::parse_toml(text)
    }

    /// Applies environment variables, read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(url) = var("OUTBOX_DATABASE_URL").or_else(|| var("DATABASE_URL")) {
            self.database_url = Some(url);
        }
        if let Some(servers) = var("KAFKA_BOOTSTRAP_SERVERS") {
            self.kafka.bootstrap_servers = Some(servers);
        }
        if let Some(prefix) = var("OUTBOX_TABLE_PREFIX") {
            self.table_prefix = prefix;
        }
        if let Some(listen) = var("OUTBOX_HTTP_LISTEN") {
            self.http.listen = listen;
        }
        if let Some(listen) = var("OUTBOX_REGISTRY_LISTEN") {
            self.registry.listen = listen;
        }
        self.registry.auth.apply_env("OUTBOX_REGISTRY_AUTH", &var);
        self.http.auth.apply_env("OUTBOX_HTTP_AUTH", &var);
    }

    /// Applies flag values.
    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(url) = overrides.database_url {
            self.database_url = Some(url);
        }
        if let Some(servers) = overrides.bootstrap_servers {
            // The property form (OUTBOX_KAFKA_BOOTSTRAP_SERVERS, the file) is applied after
            // `bootstrap_servers` when the client is built: drop it so the flag wins.
            self.kafka.properties.remove("bootstrap.servers");
            self.kafka.bootstrap_servers = Some(servers);
        }
        if let Some(listen) = overrides.http_listen {
            self.http.listen = listen;
        }
        if let Some(prefix) = overrides.table_prefix {
            self.table_prefix = prefix;
        }
        if let Some(listen) = overrides.registry_listen {
            self.registry.listen = listen;
        }
        self.kafka.properties.extend(overrides.kafka_properties);
    }

    /// Checks what every command needs: the database URL and sane values.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the key.
    pub fn validate(&self) -> Result<()> {
        self.checked_table_names().map(drop)
    }

    /// [`Self::validate`], returning the table names it validated.
    pub(crate) fn checked_table_names(&self) -> Result<outbox_core::table::TableNames> {
        self.database_url()?;
        crate::validate::check_ranges(self)?;
        if self.http_listen()?.is_some() {
            self.http.server.validate("http.server")?;
            self.http.auth.validate("http.auth")?;
            if self.http.protect_metrics && !self.http.auth.is_configured() {
                return Err(invalid(
                    "http.protect_metrics",
                    "needs a credential in [http.auth] (or OUTBOX_HTTP_AUTH_*)",
                ));
            }
        }
        if self.registry_listen()?.is_some() {
            self.registry.server.validate("registry.server")?;
            self.registry.auth.validate("registry.auth")?;
            if self.registry_writable() && !self.registry.auth.is_configured() {
                return Err(invalid(
                    "registry.read_only",
                    "writes over the API (read_only = false) need a credential in \
                     [registry.auth] (username and password, or bearer_token; or \
                     OUTBOX_REGISTRY_AUTH_*)",
                ));
            }
        }
        let names = outbox_core::table::TableNames::with_prefix(&self.table_prefix)
            .map_err(|e| invalid("table_prefix", e.to_string()))?;
        match &self.schema {
            Some(schema) => names.in_schema(schema),
            None => Ok(names),
        }
    }

    /// The database URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when it is missing.
    pub fn database_url(&self) -> Result<&str> {
        self.database_url.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
            invalid(
                "database_url",
                "missing (set it in the file, OUTBOX_DATABASE_URL, DATABASE_URL or --database-url)",
            )
        })
    }

    /// The registry API address, `None` when turned off.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an address that does not parse.
    pub fn registry_listen(&self) -> Result<Option<SocketAddr>> {
        listen_address("registry.listen", &self.registry.listen)
    }

    /// The HTTP address, `None` when turned off.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an address that does not parse.
    pub fn http_listen(&self) -> Result<Option<SocketAddr>> {
        listen_address("http.listen", &self.http.listen)
    }

    /// The table names.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] for unsafe names.
    pub fn table_names(&self) -> Result<outbox_core::table::TableNames> {
        let names = outbox_core::table::TableNames::with_prefix(&self.table_prefix)?;
        match &self.schema {
            Some(schema) => names.in_schema(schema),
            None => Ok(names),
        }
    }

    /// Whether the served registry API accepts writes: `read_only = false` and no remote
    /// registry (the API never forwards writes with the relay's own credentials).
    pub fn registry_writable(&self) -> bool {
        registry_writable(&self.registry)
    }

    /// The remote registry to use instead of the embedded tables, if configured. A URL
    /// without a scheme means `https://`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `registry.ca` when its file cannot be read.
    pub fn remote_registry(&self) -> Result<Option<outbox_core::registry::RemoteRegistryConfig>> {
        remote_registry(&self.registry)
    }

    /// This instance's lease holder name: `relay.instance_id`, else the host name. A relay
    /// restarted with the same identity takes its lease back at once (as a new generation,
    /// which fences a live twin), so give each relay on one host its own `instance_id`.
    pub fn instance_id(&self) -> String {
        self.relay.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "outbox-relay".to_owned())
        })
    }
}

/// The address `key` gives, `None` when empty (the port turned off).
fn listen_address(key: &str, text: &str) -> Result<Option<SocketAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| invalid(key, format!("{text:?} is not an address: {e}")))
}

/// The largest configuration file read (far above any real one).
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Reads at most `limit` bytes: a path to `/dev/zero` must fail, not read until memory runs
/// out. FIFOs and `/dev/stdin` still work (`--config <(...)`).
pub(crate) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}
