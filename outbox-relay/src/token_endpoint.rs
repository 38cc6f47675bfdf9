//! The start-up check that an OIDC token endpoint answers at all.
//!
//! With `sasl.oauthbearer.method=oidc`, librdkafka fetches its token before it talks to the
//! broker. An endpoint that accepts the connection and never answers leaves it waiting
//! without a word, and the relay would wait for the broker as through an outage. Asking the
//! endpoint once (a GET without credentials), with a bounded wait, names the setting instead. Any answer, an error status
//! included, passes: only silence is refused. An endpoint that refuses connections or fails
//! TLS is left to librdkafka, which reports those itself.

use std::time::Duration;

use outbox_core::{Error, Result};

use crate::config::KafkaConfig;

/// The property that names the endpoint.
pub const PROPERTY: &str = "sasl.oauthbearer.token.endpoint.url";

/// How long the endpoint has to answer.
pub const WAIT: Duration = Duration::from_secs(10);

/// Refuses an OIDC token endpoint that does not answer within `wait`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `kafka.properties.sasl.oauthbearer.token.endpoint.url`.
pub async fn check_token_endpoint(kafka: &KafkaConfig, wait: Duration) -> Result<()> {
    let oidc = kafka
        .properties
        .get("sasl.oauthbearer.method")
        .is_some_and(|m| m.eq_ignore_ascii_case("oidc"));
    let Some(mut url) = kafka
        .properties
        .get(PROPERTY)
        .filter(|_| oidc)
        .and_then(|u| url::Url::parse(u).ok())
    else {
        return Ok(());
    };
    // The probe carries no credential: it only asks whether anything answers.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(wait))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let silent = tokio::task::spawn_blocking(move || {
        matches!(agent.get(url.as_str()).call(), Err(ureq::Error::Timeout(_)))
    })
    .await
    .unwrap_or(false);
    if silent {
        return Err(Error::InvalidConfig {
            key: format!("kafka.properties.{PROPERTY}"),
            reason: format!(
                "the OAUTHBEARER token endpoint took the connection but did not answer within \
                 {} s, so no token can be fetched",
                wait.as_secs_f32()
            ),
        });
    }
    Ok(())
}
