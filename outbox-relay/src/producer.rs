//! The Kafka producer: idempotent, `acks=all`, retrying transient errors forever so that a
//! broker outage delays records instead of failing (and reordering) them.

use outbox_core::{Error, Result};
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

use crate::config::KafkaConfig;

/// Properties the relay's guarantees rest on: they cannot be overridden.
const ENFORCED: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
];

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
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULTS {
        config.set(key, value);
    }
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

/// Creates the producer.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when librdkafka refuses a property.
pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer> {
    client_config(kafka)?
        .create()
        .map_err(|e| Error::InvalidConfig {
            key: "kafka.properties".to_owned(),
            reason: e.to_string(),
        })
}
