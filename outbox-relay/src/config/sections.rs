//! The sections of the configuration file and their defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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

pub use outbox_core::PoisonPolicy;

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
