//! [`RelayBuilder`]: a relay's settings, set one by one.

use std::sync::Arc;

use outbox_core::Result;

use super::{Relay, State};
use crate::config::{DrainConfig, KafkaConfig};
use crate::metrics::Metrics;
use crate::producer::KafkaProducer;

/// Builds a [`Relay`]; made by [`Relay::builder`].
///
/// Defaults: [`DrainConfig::default`], the instance id of the settings (or a fresh
/// `relay-<uuid>`), librdkafka's default `message.max.bytes`, metrics of its own, polling
/// only.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(store: outbox_core::relay::MemoryRelayStore) -> outbox_core::Result<()> {
/// use outbox_relay::{config::RelayConfig, producer::producer, Relay};
///
/// let config = RelayConfig::load(None, Default::default())?;
/// let relay = Relay::builder(store, producer(&config.kafka)?)
///     .with_settings(config.relay.clone())
///     .with_instance(config.instance_id())
///     .with_producer_config(config.kafka.clone())?
///     .build();
/// relay.run(async { tokio::signal::ctrl_c().await.ok(); }).await?; // until Ctrl-C
/// # Ok(()) }
/// ```
pub struct RelayBuilder<S> {
    store: S,
    producer: KafkaProducer,
    kafka: Option<KafkaConfig>,
    settings: DrainConfig,
    max_message_bytes: usize,
    instance: Option<String>,
    metrics: Option<Arc<Metrics>>,
    wakeup: Option<Arc<tokio::sync::Notify>>,
    capture: Option<crate::record::CaptureEncoder>,
}

impl<S> std::fmt::Debug for RelayBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("instance", &self.instance)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S> RelayBuilder<S> {
    pub(super) fn new(store: S, producer: KafkaProducer) -> Self {
        Self {
            store,
            producer,
            kafka: None,
            settings: DrainConfig::default(),
            max_message_bytes: crate::producer::DEFAULT_MESSAGE_MAX_BYTES,
            instance: None,
            metrics: None,
            wakeup: None,
            capture: None,
        }
    }

    /// The drain settings: batch size, polling, lease, poison policy, shutdown timeout.
    #[must_use]
    pub fn with_settings(mut self, settings: DrainConfig) -> Self {
        self.settings = settings;
        self
    }

    /// This relay's identity as the lease holder; a restarted relay with the same identity
    /// takes its own lease back at once. Default: the settings' `instance_id`, else a fresh
    /// `relay-<uuid>`.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Wakes the loop early when `wakeup` is notified (for example by a PostgreSQL
    /// LISTEN/NOTIFY listener); polling goes on as a fallback.
    #[must_use]
    pub fn with_wakeup(mut self, wakeup: Arc<tokio::sync::Notify>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// The producer's `message.max.bytes` (see [`crate::producer::max_message_bytes`]): a
    /// record above it is dead-lettered before it is produced. Default:
    /// [`crate::producer::DEFAULT_MESSAGE_MAX_BYTES`].
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The Kafka settings the producer was built from: sets the size limit (see
    /// [`with_max_message_bytes`](Self::with_max_message_bytes)) and lets the relay build a
    /// new producer when librdkafka reports a fatal error (an idempotence sequence failure),
    /// instead of spinning on the dead one. Without it, a fatal error fails `/healthz`.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] for a malformed `message.max.bytes`.
    pub fn with_producer_config(mut self, kafka: KafkaConfig) -> Result<Self> {
        self.max_message_bytes = crate::producer::max_message_bytes(&kafka)?;
        self.kafka = Some(kafka);
        Ok(self)
    }

    /// Encodes captured rows (`outbox_core::capture`) with the schemas of `source` (the
    /// registry their triggers registered with) before producing them; a row that does not
    /// fit is dead-lettered with the field named. Without it a captured row is dead-lettered,
    /// since its JSON image is not what consumers read.
    #[must_use]
    pub fn with_capture_schemas(mut self, source: impl crate::record::SchemaSource) -> Self {
        self.capture = Some(crate::record::CaptureEncoder::new(source));
        self
    }

    /// Shares these metrics (for the HTTP endpoint).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The relay.
    pub fn build(self) -> Relay<S> {
        let instance = self
            .instance
            .or_else(|| self.settings.instance_id.clone())
            .unwrap_or_else(|| format!("relay-{}", uuid::Uuid::now_v7()));
        Relay {
            store: self.store,
            producer: std::sync::RwLock::new(self.producer),
            kafka: self.kafka,
            settings: self.settings,
            max_message_bytes: self.max_message_bytes,
            instance,
            metrics: self.metrics.unwrap_or_else(|| Arc::new(Metrics::new())),
            wakeup: self.wakeup,
            capture: self.capture,
            once: tokio::sync::Mutex::new(State::default()),
        }
    }
}
