//! The start-up check that the broker accepts the relay's security settings.
//!
//! The producer retries transient errors forever (a broker outage must delay records, not
//! fail them), so a wrong CA, a refused login or a plaintext client against a TLS listener
//! would otherwise look like an outage that never ends. Before draining, `run` asks the
//! broker for metadata with a client built from the same properties; a TLS or
//! authentication failure stops the relay with an error naming the setting. A broker that is
//! merely down only delays the check: after [`WAIT`] the relay starts and waits for it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use outbox_core::{Error, Result};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::kafka_log::KafkaLog;

/// How long the check waits for a broker that does not answer at all.
pub const WAIT: Duration = Duration::from_secs(10);

/// Collects what librdkafka reports while connecting.
#[derive(Debug, Default)]
struct Watch {
    reports: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
    /// Whether the client speaks plaintext (`security.protocol` PLAINTEXT or SASL_PLAINTEXT).
    plaintext: bool,
    /// Whether the client logs in with OAUTHBEARER (a refused token is not a password).
    oauthbearer: bool,
    /// Where the check's librdkafka lines go, secrets cut out, as the producer's do.
    log: KafkaLog,
}

/// How long a plaintext client sees its connections dropped at the first request before it
/// blames its protocol (librdkafka reports repeated identical drops only once).
const DROPS_BEFORE_BLAME: Duration = Duration::from_secs(3);

impl Watch {
    fn push(&self, code: Option<RDKafkaErrorCode>, text: String) {
        if let Ok(mut reports) = self.reports.lock() {
            reports.push((code, text));
        }
    }

    /// The first report that settings, not an outage, explain.
    fn misconfiguration(&self, waited: Duration) -> Option<(&'static str, String)> {
        let reports = self.reports.lock().ok()?;
        if let Some(found) = reports.iter().find_map(|(code, text)| {
            setting_at_fault(*code, text, self.oauthbearer).map(|key| (key, text.clone()))
        }) {
            return Some(found);
        }
        // A TLS listener drops a plaintext client at its first request (ApiVersion): the TCP
        // connection works, the Kafka protocol never starts. An outage does not look so.
        let drops: Vec<&String> = reports
            .iter()
            .map(|(_, text)| text)
            .filter(|t| t.contains("Disconnected") && t.contains("state APIVERSION_QUERY"))
            .collect();
        (self.plaintext && !drops.is_empty() && waited >= DROPS_BEFORE_BLAME).then(|| {
            (
                "kafka.properties.security.protocol",
                format!(
                    "every connection was dropped at the first request, as a TLS listener \
                     drops a plaintext client (use SSL or SASL_SSL): {}",
                    drops[0]
                ),
            )
        })
    }
}

impl ClientContext for Watch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
        if (level as i32) <= (RDKafkaLogLevel::Info as i32) {
            self.push(None, format!("{fac}: {log_message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.push(error.rdkafka_error_code(), reason.to_owned());
    }
}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// The setting a librdkafka report blames, if it blames one (not a plain outage).
fn setting_at_fault(
    code: Option<RDKafkaErrorCode>,
    text: &str,
    oauthbearer: bool,
) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    if code == Some(RDKafkaErrorCode::Authentication)
        || lower.contains("sasl authentication error")
        || lower.contains("sasl scram")
        || lower.contains("mechanism handshake failed")
        || lower.contains("oauthbearer")
    {
        return Some(if oauthbearer || lower.contains("oauthbearer") {
            "kafka.properties.sasl.oauthbearer.*"
        } else if lower.contains("mechanism") && !lower.contains("scram authentication failed") {
            "kafka.properties.sasl.mechanism"
        } else {
            "kafka.properties.sasl.username/sasl.password"
        });
    }
    if lower.contains("certificate verify failed") || lower.contains("ssl.ca.location") {
        return Some("kafka.properties.ssl.ca.location");
    }
    if lower.contains("certificate required") || lower.contains("bad certificate") {
        return Some("kafka.properties.ssl.certificate.location/ssl.key.location");
    }
    if lower.contains("security.protocol")
        || lower.contains("wrong version number")
        || lower.contains("packet length too long")
    {
        return Some("kafka.properties.security.protocol");
    }
    if code == Some(RDKafkaErrorCode::SSL) || lower.contains("ssl handshake failed") {
        return Some("kafka.properties.ssl.*");
    }
    None
}

/// Connects with `kafka`'s settings and asks for metadata.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the property at fault when the client certificate and key
/// do not belong together, an OIDC token endpoint does not answer, librdkafka refuses a
/// property, or the broker refuses the TLS handshake or the login. A broker that does not
/// answer within [`WAIT`] is not an error (the relay waits for it, as for any outage).
pub async fn check_broker(kafka: &KafkaConfig) -> Result<()> {
    crate::kafka_tls::check_client_pair(kafka)?;
    crate::token_endpoint::check_token_endpoint(kafka, crate::token_endpoint::WAIT).await?;
    let mut config = crate::producer::client_config(kafka)?;
    config.set_log_level(KafkaLog::level());
    let log = KafkaLog::new(kafka);
    let scrubber = log.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let protocol = config
            .get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase();
        let watch = Watch {
            plaintext: protocol.ends_with("plaintext"),
            oauthbearer: config
                .get("sasl.mechanism")
                .is_some_and(|m| m.eq_ignore_ascii_case("OAUTHBEARER")),
            log,
            ..Watch::default()
        };
        let producer: ThreadedProducer<Watch> = config.create_with_context(watch).map_err(|e| {
            let text = format!("librdkafka refused the settings: {e}");
            (Some("kafka.properties"), text)
        })?;
        let start = Instant::now();
        loop {
            let answered = producer
                .client()
                .fetch_metadata(None, Duration::from_millis(500))
                .is_ok();
            if let Some((key, text)) = producer.context().misconfiguration(start.elapsed()) {
                return Err((
                    Some(key),
                    format!("the broker refused the connection: {text}"),
                ));
            }
            if answered {
                return Ok(());
            }
            if start.elapsed() >= WAIT {
                return Err((None, "no broker answered".to_owned()));
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err((None, format!("the broker check stopped: {e}"))));
    match verdict {
        Ok(()) => Ok(()),
        Err((Some(key), text)) => Err(Error::InvalidConfig {
            key: key.to_owned(),
            reason: scrubber.scrub(&text),
        }),
        Err((None, text)) => {
            tracing::warn!(
                reason = %scrubber.scrub(&text),
                "Kafka is not reachable yet; starting anyway, records wait for it"
            );
            Ok(())
        }
    }
}
