//! librdkafka's log lines and error reports, routed through `tracing` (target `librdkafka`)
//! with secrets cut out, at every level and under any `debug` setting.
//!
//! librdkafka hides the properties it knows to be sensitive, but not everything a line can
//! quote: a token endpoint URL with credentials in it, pieces of `sasl.oauthbearer.config`,
//! a token it fetched. Every line is scrubbed of the values of the client's secret
//! properties, of passwords in URLs, and of anything shaped like a JWT before it is logged.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::ProducerContext;

use crate::config::KafkaConfig;
use crate::redact::{REDACTED, fragments, is_secret_property, scrub, url};

/// A librdkafka client context that logs through `tracing` with the client's secrets
/// redacted.
#[derive(Debug, Clone, Default)]
pub struct KafkaLog {
    /// Pieces of secret values, longest first.
    secrets: Vec<String>,
}

impl KafkaLog {
    /// A context for a client built from `kafka`: it knows the secret properties' values and
    /// the passwords in URL-valued properties.
    pub fn new(kafka: &KafkaConfig) -> Self {
        let mut secrets = Vec::new();
        let values = kafka
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(
                kafka
                    .bootstrap_servers
                    .as_deref()
                    .map(|v| ("bootstrap.servers", v)),
            );
        for (key, value) in values {
            if is_secret_property(key) {
                secrets.extend(fragments(value));
            }
            if let Ok(parsed) = url::Url::parse(value)
                && let Some(password) = parsed.password()
            {
                secrets.push(password.to_owned());
                secrets.push(percent_decoded(password));
            }
        }
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` without the client's secrets, URL passwords or JWTs.
    pub fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let text = scrub(text, &secrets);
        text.split_inclusive(char::is_whitespace)
            .map(|piece| {
                let word = piece.trim_end();
                let core = word.trim_matches(|c: char| "\"'()[]{}<>,;".contains(c));
                if core.contains("://") && core.contains('@') {
                    piece.replace(core, &url(core))
                } else if looks_like_jwt(core) {
                    piece.replace(core, REDACTED)
                } else {
                    piece.to_owned()
                }
            })
            .collect()
    }

    /// The librdkafka log level that lets through what `tracing` would print.
    pub fn level() -> RDKafkaLogLevel {
        if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
            RDKafkaLogLevel::Debug
        } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
            RDKafkaLogLevel::Info
        } else if tracing::enabled!(target: "librdkafka", tracing::Level::WARN) {
            RDKafkaLogLevel::Warning
        } else {
            RDKafkaLogLevel::Error
        }
    }
}

/// `text` with its `%XX` escapes decoded (librdkafka may quote either form).
fn percent_decoded(text: &str) -> String {
    let query = format!("x={}", text.replace('+', "%2B"));
    url::form_urlencoded::parse(query.as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, v)| v.into_owned())
}

/// Three dot-separated base64url parts, the first a JSON header (`eyJ`): a JSON Web Token.
fn looks_like_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[..2].iter().all(|p| p.len() >= 4)
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl ClientContext for KafkaLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let line = self.scrub(log_message);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{line}");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{line}");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{line}");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{line}");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(
            target: "librdkafka",
            error = %self.scrub(&error.to_string()),
            "{}",
            self.scrub(reason)
        );
    }
}

impl ProducerContext for KafkaLog {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_secret_values_url_passwords_and_tokens() {
        let mut kafka = KafkaConfig::default();
        for (k, v) in [
            ("sasl.password", "sasl-Secret-1"),
            (
                "sasl.oauthbearer.config",
                "principal=relay extension_x=ext-Secret-2",
            ),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "https://id:url%2FSecret-3@idp.example/token",
            ),
        ] {
            kafka.properties.insert(k.to_owned(), v.to_owned());
        }
        let log = KafkaLog::new(&kafka);
        let line = log.scrub(
            "conf sasl.password=sasl-Secret-1 ext-Secret-2 url https://id:url%2FSecret-3@idp.example/token \
             (https://u:other-Secret-4@host:1/) got eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig-Secret",
        );
        assert!(!line.contains("Secret"), "{line}");
        assert!(
            line.contains("https://id:[redacted]@idp.example/token"),
            "{line}"
        );
        assert!(line.starts_with("conf sasl.password=[redacted] "), "{line}");
        assert_eq!(
            log.scrub("plain line, nothing\tsecret"),
            "plain line, nothing\tsecret"
        );
    }
}
