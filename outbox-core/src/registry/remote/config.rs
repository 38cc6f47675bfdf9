//! Where a remote registry is and how to reach it, shown without its secrets.

use std::time::Duration;

/// Where the remote registry is and how to reach it. `Debug` redacts the password, the token
/// and any credentials in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteRegistryConfig {
    /// Base URL, like `https://registry:8081`.
    pub url: String,
    /// Basic authentication (user, password).
    pub basic_auth: Option<(String, String)>,
    /// A bearer token (instead of basic authentication).
    pub bearer_token: Option<String>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// PEM certificates of the CAs to trust for `https://` instead of the Mozilla roots
    /// (needs the `registry-tls` feature).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RemoteRegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistryConfig")
            .field("url", &without_credentials(&self.url))
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|(user, _)| (user, "[redacted]")),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[redacted]"),
            )
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .finish()
    }
}

impl RemoteRegistryConfig {
    /// A registry at `url`, without authentication, with a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            basic_auth: None,
            bearer_token: None,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// `url` with any `user:password@` replaced, for messages.
pub(super) fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@` anywhere, not only before the first `/`, `?` or `#`: a password typed with
    // one of those unencoded would otherwise be taken for the path and shown.
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://[redacted]@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{RemoteRegistryConfig, without_credentials};

    #[test]
    fn credentials_leave_urls_whatever_the_password_holds() {
        for url in [
            "https://reader:pa/ss-Secret@registry:8081",
            "https://reader:pa?ss-Secret@registry:8081",
            "https://reader:pa#ss-Secret@registry:8081",
            "https://reader:pa@ss-Secret@registry:8081/base",
        ] {
            let shown = without_credentials(url);
            assert!(!shown.contains("Secret"), "{url} -> {shown}");
            assert!(shown.starts_with("https://[redacted]@"), "{shown}");
        }
        assert_eq!(
            without_credentials("https://registry:8081/base"),
            "https://registry:8081/base"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut config = RemoteRegistryConfig::new("https://u:url-Secret@registry:8081");
        config.basic_auth = Some(("reader".into(), "basic-Secret".into()));
        config.bearer_token = Some("token-Secret".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("Secret"), "{shown}");
        assert!(shown.contains("reader"), "{shown}");
    }
}
