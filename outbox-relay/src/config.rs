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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use outbox_core::{Error, Result};
use serde::{Deserialize, Deserializer};

use crate::validate::invalid;

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
}

/// The schema registry REST API.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryApiConfig {
    /// Address to serve it on; empty turns it off.
    #[serde(default = "default_registry_listen")]
    pub listen: String,
    /// Refuse registrations, configuration changes and deletes over the API (schemas then
    /// come only from application start-up). The default; writes also need `auth`.
    #[serde(default = "yes")]
    pub read_only: bool,
    /// Use this remote Confluent-compatible registry instead of the embedded tables (for the
    /// `schema` commands and the served API).
    #[serde(default)]
    pub url: Option<String>,
    /// Basic authentication user for `url`.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication password for `url`.
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token for `url`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Whether new schemas (over the API or `schema register`) are linted: `allow` (no),
    /// `warn` or `deny` (refused when a rule of error severity is broken).
    #[serde(default)]
    pub lint: outbox_core::lint::LintLevel,
    /// The lint rules file (TOML), as `outbox-relay schema lint --lint-config` reads it.
    #[serde(default)]
    pub lint_config: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed `url`'s certificate (default: the Mozilla roots).
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// Credentials a client must present to write over the served API.
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// HTTPS and limits of the served API.
    #[serde(default)]
    pub server: crate::server::ServerConfig,
}

impl Default for RegistryApiConfig {
    fn default() -> Self {
        Self {
            listen: default_registry_listen(),
            read_only: true,
            url: None,
            username: None,
            password: None,
            bearer_token: None,
            lint: outbox_core::lint::LintLevel::default(),
            lint_config: None,
            ca: None,
            auth: crate::auth::AuthConfig::default(),
            server: crate::server::ServerConfig::default(),
        }
    }
}

fn default_registry_listen() -> String {
    "127.0.0.1:8081".to_owned()
}

/// Kafka settings.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// librdkafka producer properties, passed through as given.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What to do with the later events of a key whose event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonPolicy {
    /// Park them in the dead-letter table too, so the key's order survives a retry.
    #[default]
    Block,
    /// Publish them; only the poison event is set aside.
    Skip,
}

/// Draining settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainConfig {
    /// Rows claimed and produced per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The longest wait between polls when the outbox is empty.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// PostgreSQL strict order (see the crate docs).
    #[serde(default = "yes")]
    pub strict_order: bool,
    /// The lease only one relay holds at a time.
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// How long a lease lasts without renewal; a stand-by takes over after it.
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// This instance's name in the lease table (default: the host name). A restarted relay
    /// with the same identity takes its lease back at once.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Permanent failures of one event before it is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// What happens to the key of a dead-lettered event.
    #[serde(default)]
    pub poison_policy: PoisonPolicy,
    /// How long shutdown waits for outstanding acknowledgements.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// The CloudEvents `source` attribute of every record.
    #[serde(default = "default_source")]
    pub source: String,
    /// PostgreSQL: LISTEN on the outbox channel and wake at once when a writer built with
    /// `notify_relay(true)` commits (polling goes on as a fallback).
    #[serde(default)]
    pub listen_notify: bool,
    /// The first wait after a permanent delivery failure before the event is tried again;
    /// it doubles with each attempt (up to 60 s) until `max_attempts`.
    #[serde(default = "default_retry_backoff", deserialize_with = "duration")]
    pub retry_backoff: Duration,
    /// `/healthz` fails when the drain loop has made no progress for this long while rows
    /// wait (a stuck loop, a dead producer): a restart can fix that.
    #[serde(default = "default_stuck_after", deserialize_with = "duration")]
    pub stuck_after: Duration,
}

/// The HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address for `/metrics`, `/healthz`, `/readyz`; empty turns the endpoint off.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Require a credential of `auth` for `/metrics` (health stays open for probes).
    #[serde(default)]
    pub protect_metrics: bool,
    /// Credentials for `/metrics` when `protect_metrics` is on.
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// HTTPS and limits of the endpoint.
    #[serde(default)]
    pub server: crate::server::ServerConfig,
}

fn default_prefix() -> String {
    "outbox".to_owned()
}
fn default_batch_size() -> usize {
    1000
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(100)
}
fn yes() -> bool {
    true
}
fn default_lease_name() -> String {
    "outbox-relay".to_owned()
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    5
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retry_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_stuck_after() -> Duration {
    Duration::from_secs(60)
}
fn default_source() -> String {
    "urn:outbox-relay".to_owned()
}
fn default_listen() -> String {
    "127.0.0.1:9464".to_owned()
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|_| serde::de::Error::custom("not a duration such as 250ms or 10s".to_owned()))
}

impl Default for DrainConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
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
        outbox_core::table::TableNames::with_prefix(&self.table_prefix)
            .map_err(|e| invalid("table_prefix", e.to_string()))?;
        Ok(())
    }

    /// Checks that Kafka is configured (what `run` needs beyond the database).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `kafka.bootstrap_servers`.
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
        if self.registry.listen.is_empty() {
            return Ok(None);
        }
        self.registry.listen.parse().map(Some).map_err(|e| {
            invalid(
                "registry.listen",
                format!("{:?} is not an address: {e}", self.registry.listen),
            )
        })
    }

    /// The HTTP address, `None` when turned off.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an address that does not parse.
    pub fn http_listen(&self) -> Result<Option<SocketAddr>> {
        if self.http.listen.is_empty() {
            return Ok(None);
        }
        self.http.listen.parse().map(Some).map_err(|e| {
            invalid(
                "http.listen",
                format!("{:?} is not an address: {e}", self.http.listen),
            )
        })
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
        !self.registry.read_only && self.registry.url.as_deref().is_none_or(str::is_empty)
    }

    /// The remote registry to use instead of the embedded tables, if configured. A URL
    /// without a scheme means `https://`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `registry.ca` when its file cannot be read.
    pub fn remote_registry(&self) -> Result<Option<outbox_core::registry::RemoteRegistryConfig>> {
        let Some(url) = self.registry.url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        let credentials = self.registry.username.is_some() || self.registry.bearer_token.is_some();
        if credentials && url.starts_with("http://") && !is_loopback_url(&url) {
            tracing::warn!(
                "registry.url is plain http:// to another host: its credentials travel unencrypted"
            );
        }
        let mut remote = outbox_core::registry::RemoteRegistryConfig::new(url);
        remote.bearer_token.clone_from(&self.registry.bearer_token);
        if let Some(user) = &self.registry.username {
            remote.basic_auth = Some((
                user.clone(),
                self.registry.password.clone().unwrap_or_default(),
            ));
        }
        if let Some(path) = &self.registry.ca {
            let pem = read_bounded(path, MAX_CA_FILE_BYTES).map_err(|e| {
                invalid(
                    "registry.ca",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            remote.ca_pem = Some(pem);
        }
        Ok(Some(remote))
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

/// The largest configuration file read (far above any real one).
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// The largest CA file read (a whole system bundle is about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads at most `limit` bytes: a path to `/dev/zero` must fail, not read until memory runs
/// out. FIFOs and `/dev/stdin` still work (`--config <(...)`).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
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

/// Whether `url` names this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|host| match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        })
}
