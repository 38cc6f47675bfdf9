//! The remote schema registry the configuration names, and whether the served API writes.

use outbox_core::Result;
use outbox_core::registry::RemoteRegistryConfig;

use super::{RegistryApiConfig, read_bounded};
use crate::validate::invalid;

/// Whether the served registry API accepts writes: `read_only = false` and no remote
/// registry (the API never forwards writes with the relay's own credentials).
pub(crate) fn registry_writable(registry: &RegistryApiConfig) -> bool {
    !registry.read_only && registry.url.as_deref().is_none_or(str::is_empty)
}

/// The remote registry to use instead of the embedded tables, if configured. A URL
/// without a scheme means `https://`.
///
/// # Errors
///
/// [`outbox_core::Error::InvalidConfig`] naming `registry.ca` when its file cannot be read.
pub(crate) fn remote_registry(
    registry: &RegistryApiConfig,
) -> Result<Option<RemoteRegistryConfig>> {
    let Some(url) = registry.url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    let credentials = registry.username.is_some() || registry.bearer_token.is_some();
    if credentials && url.starts_with("http://") && !is_loopback_url(&url) {
        tracing::warn!(
            "registry.url is plain http:// to another host: its credentials travel unencrypted"
        );
    }
    let mut remote = RemoteRegistryConfig::new(url);
    remote.bearer_token.clone_from(&registry.bearer_token);
    if let Some(user) = &registry.username {
        remote.basic_auth = Some((user.clone(), registry.password.clone().unwrap_or_default()));
    }
    if let Some(path) = &registry.ca {
        let pem = read_bounded(path, MAX_CA_FILE_BYTES).map_err(|e| {
            invalid(
                "registry.ca",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        remote.ca_pem = Some(pem);
    }
    Ok(Some(remote))
}

/// The largest CA file read (a whole system bundle is about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Whether `url` names this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|host| match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        })
}
