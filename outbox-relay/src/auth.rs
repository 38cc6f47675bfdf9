//! Credentials for the relay's *served* ports (`[registry.auth]`, `[http.auth]`): HTTP Basic
//! and bearer tokens, from the configuration or the environment, compared in constant time.
//!
//! These are the keys a client must present to this relay; the `[registry]` keys `username`,
//! `password` and `bearer_token` are what the relay presents to a *remote* registry.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Who may call the protected routes of a served port. No credential configured means none
/// is accepted.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HTTP Basic user name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP Basic password.
    #[serde(default)]
    pub password: Option<String>,
    /// A bearer token (`Authorization: Bearer <token>`).
    #[serde(default)]
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("bearer_token", &redacted(&self.bearer_token))
            .finish()
    }
}

impl AuthConfig {
    /// Fills unset keys from `<prefix>_USERNAME`, `<prefix>_PASSWORD`, `<prefix>_BEARER_TOKEN`
    /// (`OUTBOX_REGISTRY_AUTH`, `OUTBOX_HTTP_AUTH`), read through `var`.
    pub fn apply_env(&mut self, prefix: &str, var: impl Fn(&str) -> Option<String>) {
        let get = |name: &str| var(&format!("{prefix}_{name}")).filter(|v| !v.is_empty());
        if let Some(v) = get("USERNAME") {
            self.username = Some(v);
        }
        if let Some(v) = get("PASSWORD") {
            self.password = Some(v);
        }
        if let Some(v) = get("BEARER_TOKEN") {
            self.bearer_token = Some(v);
        }
    }

    /// Whether any credential is configured.
    pub fn is_configured(&self) -> bool {
        self.basic().is_some() || self.token().is_some()
    }

    /// Checks the values; `section` names the table in errors.
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::InvalidConfig`] for half a Basic pair or an empty secret.
    pub fn validate(&self, section: &str) -> outbox_core::Result<()> {
        let invalid = |key: &str, reason: &str| outbox_core::Error::InvalidConfig {
            key: format!("{section}.{key}"),
            reason: reason.to_owned(),
        };
        match (&self.username, &self.password) {
            (Some(_), None) => return Err(invalid("password", "set with username")),
            (None, Some(_)) => return Err(invalid("username", "set with password")),
            (Some(u), Some(p)) if u.is_empty() || p.is_empty() || u.contains(':') => {
                return Err(invalid(
                    "username",
                    "user name and password must be non-empty, the name without ':'",
                ));
            }
            _ => {}
        }
        if self.bearer_token.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("bearer_token", "must not be empty"));
        }
        Ok(())
    }

    fn basic(&self) -> Option<(&str, &str)> {
        Some((self.username.as_deref()?, self.password.as_deref()?))
    }

    fn token(&self) -> Option<&str> {
        self.bearer_token.as_deref().filter(|t| !t.is_empty())
    }

    /// Whether the request's `Authorization` header carries a configured credential.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = self.basic() else {
                return false;
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return false;
            };
            let expected = format!("{user}:{password}");
            same(&decoded, expected.as_bytes())
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.token()
                .is_some_and(|t| same(rest.as_bytes(), t.as_bytes()))
        } else {
            false
        }
    }
}

/// Constant-time equality: compares SHA-256 digests (fixed length, so neither the length nor
/// a common prefix of the secret shows in the timing) with a branch-free fold.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().expect("header"));
        h
    }

    #[test]
    fn basic_and_bearer_are_checked() {
        let auth = AuthConfig {
            username: Some("ci".into()),
            password: Some("s3cret".into()),
            bearer_token: Some("tok".into()),
        };
        let basic = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        assert!(auth.allows(&headers(&format!("Basic {basic}"))));
        assert!(auth.allows(&headers("bearer tok")));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ci:s3cre");
        for bad in [
            format!("Basic {wrong}"),
            "Basic !!!".to_owned(),
            "Bearer to".to_owned(),
            "Bearer tokk".to_owned(),
            "Digest tok".to_owned(),
            "tok".to_owned(),
        ] {
            assert!(!auth.allows(&headers(&bad)), "{bad}");
        }
        assert!(!AuthConfig::default().allows(&headers("Bearer ")));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
