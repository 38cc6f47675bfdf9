//! Keeping secrets out of what the relay prints: `Debug` of the configuration, URLs in
//! messages, librdkafka properties.

use std::fmt;

use crate::config::{KafkaConfig, Overrides, RegistryApiConfig, RelayConfig};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, inline private keys, `sasl.oauthbearer.config`).
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "passphrase", "jaas"]
        .iter()
        .any(|word| key.contains(word))
        || key == "sasl.oauthbearer.config"
        || key.ends_with("key.pem")
}

/// `url` with its password, and any query parameter whose name says secret, replaced by
/// [`REDACTED`]; text that is not a URL but holds an `@` is redacted whole.
pub fn url(text: &str) -> String {
    // An `@` that did not end up as user info means the parser split the URL elsewhere: a
    // password of digits followed by `#`, `?` or `/` reads as a port, the rest as a fragment,
    // query or path (`postgres://u:4711#x@db/app`).
    let parsed = url::Url::parse(text).ok().filter(|u| {
        !text.contains('@')
            || (u.has_host() && (!u.username().is_empty() || u.password().is_some()))
    });
    let Some(mut parsed) = parsed else {
        return if text.contains('@') {
            REDACTED.to_owned()
        } else {
            text.to_owned()
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    }
    let secret_key = |k: &str| is_secret_property(k);
    if parsed.query_pairs().any(|(k, _)| secret_key(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_key(&k) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // Percent-encoding turns the marker into %5Bredacted%5D; show it plainly.
    parsed.to_string().replace("%5Bredacted%5D", REDACTED)
}

/// Replaces every occurrence of each non-empty secret in `text` (for messages from libraries
/// that might echo what they were given).
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 3)
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret, REDACTED)
        })
}

/// The pieces of a secret property's value a library may quote on its own: the whole value,
/// each whitespace-separated word and each word's part after `=` (librdkafka echoes "the
/// rest of `sasl.oauthbearer.config` from the bad word on", or one `key=value`'s value).
pub fn fragments(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    for word in value.split_whitespace() {
        let word = word.trim_matches(|c| matches!(c, '"' | '\'' | ';' | ','));
        out.push(word.to_owned());
        if let Some((_, after)) = word.split_once('=') {
            out.push(after.trim_matches(|c| matches!(c, '"' | '\'')).to_owned());
        }
    }
    // Longest first, so a word is not replaced inside a longer piece that holds it.
    out.sort_by_key(|piece| std::cmp::Reverse(piece.len()));
    out
}

struct Redacted<'a>(Option<&'a str>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str(REDACTED),
            None => f.write_str("None"),
        }
    }
}

struct Url<'a>(Option<&'a str>);

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => fmt::Debug::fmt(&url(text), f),
            None => f.write_str("None"),
        }
    }
}

struct Properties<'a>(&'a std::collections::BTreeMap<String, String>);

impl fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let v = if is_secret_property(k) { REDACTED } else { v };
                (k, v)
            }))
            .finish()
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayConfig")
            .field("database_url", &Url(self.database_url.as_deref()))
            .field("table_prefix", &self.table_prefix)
            .field("schema", &self.schema)
            .field("kafka", &self.kafka)
            .field("relay", &self.relay)
            .field("http", &self.http)
            .field("registry", &self.registry)
            .field("source", &self.source)
            .field("wal", &self.wal)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: std::collections::BTreeMap<String, String> =
            self.kafka_properties.iter().cloned().collect();
        f.debug_struct("Overrides")
            .field("database_url", &Url(self.database_url.as_deref()))
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("http_listen", &self.http_listen)
            .field("table_prefix", &self.table_prefix)
            .field("registry_listen", &self.registry_listen)
            .field("kafka_properties", &Properties(&properties))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &Properties(&self.properties))
            .finish()
    }
}

impl fmt::Debug for RegistryApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryApiConfig")
            .field("listen", &self.listen)
            .field("read_only", &self.read_only)
            .field("url", &Url(self.url.as_deref()))
            .field("username", &self.username)
            .field("password", &Redacted(self.password.as_deref()))
            .field("bearer_token", &Redacted(self.bearer_token.as_deref()))
            .field("lint", &self.lint)
            .field("lint_config", &self.lint_config)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_config_hides_every_secret() {
        let mut config = RelayConfig::from_toml(
            r#"
database_url = "postgres://app:db-Secret@db/app?sslmode=verify-full&sslpassword=key-Secret"
[kafka.properties]
"sasl.username" = "relay"
"sasl.password" = "sasl-Secret"
"sasl.oauthbearer.client.secret" = "oidc-Secret"
"ssl.key.password" = "key-pass-Secret"
"ssl.key.pem" = "-----BEGIN PRIVATE KEY----- pem-Secret"
[registry]
url = "https://user:url-Secret@registry:8081"
username = "reader"
password = "registry-Secret"
bearer_token = "token-Secret"
"#,
        )
        .expect("config");
        config.kafka.bootstrap_servers = Some("kafka:9093".into());
        let overrides = crate::config::Overrides {
            database_url: config.database_url.clone(),
            kafka_properties: vec![("sasl.password".into(), "flag-Secret".into())],
            ..Default::default()
        };
        let text = format!("{config:?} {config:#?} {overrides:?}");
        assert!(!text.contains("Secret"), "{text}");
        for visible in [
            "app:[redacted]@db",
            "sslmode=verify-full",
            "relay",
            "reader",
        ] {
            assert!(text.contains(visible), "{visible} missing from {text}");
        }
    }

    #[test]
    fn urls_lose_passwords_and_secret_parameters() {
        assert_eq!(
            url("mysql://root:pw@localhost:3306/test?ssl-mode=VERIFY_IDENTITY"),
            "mysql://root:[redacted]@localhost:3306/test?ssl-mode=VERIFY_IDENTITY"
        );
        assert_eq!(
            url("postgres://localhost/test?password=pw"),
            "postgres://localhost/test?password=[redacted]"
        );
        assert_eq!(url("sqlite://o.db"), "sqlite://o.db");
        assert_eq!(url("user:pw@host"), REDACTED, "not a URL but credentials");
        for split in [
            "postgres://app:4711#pw-Secret@db/app",
            "postgres://app:4711?pw-Secret@db/app",
            "postgres://app:4711/pw-Secret@db/app",
        ] {
            assert_eq!(url(split), REDACTED, "{split}");
        }
        assert_eq!(
            scrub("login pw-1 failed", &["pw-1", ""]),
            "login [redacted] failed"
        );
    }
}
