//! The Kafka producer: idempotent, `acks=all`, retrying transient errors forever so that a
//! broker outage delays records instead of failing (and reordering) them.

use outbox_core::{Error, Result};
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

use crate::config::KafkaConfig;
use crate::kafka_log::KafkaLog;

/// Properties the relay's guarantees rest on: they cannot be overridden.
const ENFORCED: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
];

/// The producer's default `message.max.bytes`: the writers' default record limit (1 MiB of
/// key + value + headers) plus 64 KiB for the CloudEvents headers and the framing, so every
/// event `publish` accepts is accepted here (librdkafka's own default is 1,000,000).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize =
    outbox_core::encode::DEFAULT_MAX_PAYLOAD_BYTES + 64 * 1024;

/// `message.max.bytes` as librdkafka bounds it.
const MESSAGE_MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1000..=1_000_000_000;

/// Defaults the user may override.
const DEFAULTS: [(&str, &str); 4] = [
    // 0 = no delivery timeout: transient errors are retried until the broker is back.
    ("message.timeout.ms", "0"),
    ("linger.ms", "1"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "200000"),
];

/// Builds the client configuration: defaults, then the user's properties, then the enforced
/// ones (a conflicting user value is refused, not silently replaced).
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the property.
pub fn client_config(kafka: &KafkaConfig) -> Result<ClientConfig> {
    max_message_bytes(kafka)?;
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULTS {
        config.set(key, value);
    }
    config.set("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES.to_string());
    if let Some(servers) = &kafka.bootstrap_servers {
        config.set("bootstrap.servers", servers);
    }
    for (key, value) in &kafka.properties {
        if let Some((_, required)) = ENFORCED.iter().find(|(k, _)| k == key)
            && value != required
        {
            return Err(Error::InvalidConfig {
                key: format!("kafka.properties.{key}"),
                reason: format!(
                    "must be {required}: the relay's ordering and no-loss guarantees rest on it"
                ),
            });
        }
        config.set(key, value);
    }
    for (key, value) in ENFORCED {
        config.set(key, value);
    }
    Ok(config)
}

/// The `message.max.bytes` the producer runs with: the user's property, else
/// [`DEFAULT_MESSAGE_MAX_BYTES`].
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `kafka.properties.message.max.bytes` when it is not a
/// number librdkafka accepts.
pub fn max_message_bytes(kafka: &KafkaConfig) -> Result<usize> {
    let Some(text) = kafka.properties.get("message.max.bytes") else {
        return Ok(DEFAULT_MESSAGE_MAX_BYTES);
    };
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| MESSAGE_MAX_BYTES_RANGE.contains(n))
        .ok_or_else(|| Error::InvalidConfig {
            key: "kafka.properties.message.max.bytes".to_owned(),
            reason: format!(
                "must be a whole number of bytes from {} to {}",
                MESSAGE_MAX_BYTES_RANGE.start(),
                MESSAGE_MAX_BYTES_RANGE.end()
            ),
        })
}

/// The relay's producer: its librdkafka log lines go through `tracing` with secrets cut out
/// (see [`KafkaLog`]).
pub type KafkaProducer = FutureProducer<KafkaLog>;

/// Creates the producer.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when librdkafka refuses a property.
pub fn producer(kafka: &KafkaConfig) -> Result<KafkaProducer> {
    let mut config = client_config(kafka)?;
    config.set_log_level(KafkaLog::level());
    config
        .create_with_context(KafkaLog::new(kafka))
        .map_err(|e| Error::InvalidConfig {
            key: "kafka.properties".to_owned(),
            reason: e.to_string(),
        })
}
