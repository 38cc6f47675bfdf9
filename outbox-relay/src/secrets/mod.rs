//! Settings that come from the environment, secrets above all, so that nothing secret has to
//! be on the command line or in the TOML file.
//!
//! | Variable | Setting |
//! |---|---|
//! | `OUTBOX_DATABASE_URL_FILE` | `database_url`, read from a file |
//! | `OUTBOX_DATABASE_PASSWORD`, `OUTBOX_DATABASE_PASSWORD_FILE` | the password inside `database_url` |
//! | `OUTBOX_KAFKA_<NAME>`, `OUTBOX_KAFKA_<NAME>_FILE` | the librdkafka property `<name>` |
//! | `OUTBOX_REGISTRY_URL`, `OUTBOX_REGISTRY_USERNAME`, `OUTBOX_REGISTRY_CA` | `registry.url`, `.username`, `.ca` |
//! | `OUTBOX_REGISTRY_PASSWORD`, `OUTBOX_REGISTRY_BEARER_TOKEN` (and `_FILE`) | `registry.password`, `.bearer_token` |
//! | `OUTBOX_REGISTRY_AUTH_PASSWORD`, `OUTBOX_REGISTRY_AUTH_BEARER_TOKEN` (and `_FILE`) | `registry.auth.password`, `.bearer_token` |
//! | `OUTBOX_HTTP_AUTH_PASSWORD`, `OUTBOX_HTTP_AUTH_BEARER_TOKEN` (and `_FILE`) | `http.auth.password`, `.bearer_token` |
//!
//! `<NAME>` maps to a librdkafka property as Confluent's container images map theirs:
//! lowercase, `_` → `.`, `__` → `_`, `___` → `-` (`OUTBOX_KAFKA_SASL_PASSWORD` →
//! `sasl.password`). A `_FILE` variable names a file holding the value (a container secret);
//! one trailing newline is dropped. Setting both `X` and `X_FILE` is an error. Precedence:
//! file < environment < flags.

use std::collections::BTreeMap;
use std::ffi::OsString;

use outbox_core::{Error, Result};

use crate::config::RelayConfig;

/// A snapshot of the environment variables the relay reads (`OUTBOX_*`).
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values are secrets.
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Environment {
    /// The process environment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming an `OUTBOX_*` variable whose value is not UTF-8.
    pub fn from_process() -> Result<Self> {
        Self::from_os_vars(std::env::vars_os())
    }

    /// The given variables (tests, embedding).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming an `OUTBOX_*` variable whose value is not UTF-8.
    pub fn from_os_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self> {
        let mut out = BTreeMap::new();
        for (name, value) in vars {
            let Some(name) = name.to_str().filter(|n| n.starts_with("OUTBOX_")) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| invalid(name, "is not valid UTF-8"))?;
            out.insert(name.to_owned(), value);
        }
        Ok(Self { vars: out })
    }

    /// The given variables.
    pub fn from_pairs<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: vars
                .into_iter()
                .filter(|(n, _)| n.starts_with("OUTBOX_"))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `name`, or of the file `name_FILE` names.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable when both are set or the file cannot be
    /// read (the message names the path, never the content).
    pub fn value(&self, name: &str) -> Result<Option<String>> {
        let file_var = format!("{name}_FILE");
        match (self.vars.get(name), self.vars.get(&file_var)) {
            (Some(_), Some(_)) => Err(invalid(
                name,
                format!("set both {name} and {file_var}; keep one"),
            )),
            (Some(value), None) => Ok(Some(value.clone())),
            (None, Some(path)) => read_secret_file(&file_var, path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The librdkafka properties given as `OUTBOX_KAFKA_*` variables.
    ///
    /// # Errors
    ///
    /// As [`Environment::value`], and for a variable that names no property.
    pub fn kafka_properties(&self) -> Result<Vec<(String, String)>> {
        let names: std::collections::BTreeSet<&str> = self
            .vars
            .keys()
            .filter_map(|n| n.strip_prefix("OUTBOX_KAFKA_"))
            .map(|n| n.strip_suffix("_FILE").unwrap_or(n))
            .collect();
        let mut properties = Vec::new();
        // Case differs between variables, not between properties: `OUTBOX_KAFKA_SASL_PASSWORD`
        // and `OUTBOX_KAFKA_sasl_password_FILE` both set `sasl.password`, and which one won
        // would depend on the names' sort order.
        let mut set_by: BTreeMap<String, String> = BTreeMap::new();
        for name in names {
            let var = format!("OUTBOX_KAFKA_{name}");
            let property = kafka_property_name(name)
                .ok_or_else(|| invalid(&var, "does not name a librdkafka property"))?;
            if let Some(value) = self.value(&var)? {
                let source = if self.vars.contains_key(&var) {
                    var.clone()
                } else {
                    format!("{var}_FILE")
                };
                if let Some(other) = set_by.insert(property.clone(), source.clone()) {
                    return Err(invalid(
                        &source,
                        format!("sets {property}, as {other} does; keep one"),
                    ));
                }
                properties.push((property, value));
            }
        }
        Ok(properties)
    }
}

/// The librdkafka property an `OUTBOX_KAFKA_<NAME>` variable sets: lowercase, `___` → `-`,
/// `__` → `_`, `_` → `.`; `None` for an empty or malformed name.
pub fn kafka_property_name(name: &str) -> Option<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(at) = rest.find('_') {
        out.push_str(&rest[..at]);
        let run = rest[at..].bytes().take_while(|&b| b == b'_').count();
        match run {
            1 => out.push('.'),
            2 => out.push('_'),
            3 => out.push('-'),
            _ => return None,
        }
        rest = &rest[at + run..];
    }
    out.push_str(rest);
    (!out.starts_with('.') && !out.ends_with('.')).then_some(out)
}

/// The most a `_FILE` secret may hold: far above any password, key or token, far below what
/// would exhaust memory (a path to `/dev/zero` or a disk image must not hang the relay).
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// The text of a small file named by `var` (see [`MAX_SECRET_FILE_BYTES`]), without a final
/// line break.
pub(crate) fn read_secret_file(var: &str, path: &str) -> Result<String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| invalid(var, format!("cannot read {path:?}: {e}"));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(invalid(
            var,
            format!("{path:?} holds more than {MAX_SECRET_FILE_BYTES} bytes; is it the secret?"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(var, format!("{path:?} is not UTF-8 text")))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Applies what the environment sets, except the database password (see
/// [`apply_database_password`], which must come after the flags).
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the variable.
pub fn apply_environment(config: &mut RelayConfig, env: &Environment) -> Result<()> {
    // `OUTBOX_DATABASE_URL` itself is read by `RelayConfig::apply_env` (with `DATABASE_URL`);
    // reading it again here adds the `_FILE` form and refuses both at once.
    if let Some(url) = env.value("OUTBOX_DATABASE_URL")? {
        config.database_url = Some(url);
    }
    config.kafka.properties.extend(env.kafka_properties()?);
    if let Some(url) = env.value("OUTBOX_REGISTRY_URL")? {
        config.registry.url = Some(url);
    }
    if let Some(user) = env.value("OUTBOX_REGISTRY_USERNAME")? {
        config.registry.username = Some(user);
    }
    if let Some(password) = env.value("OUTBOX_REGISTRY_PASSWORD")? {
        config.registry.password = Some(password);
    }
    if let Some(token) = env.value("OUTBOX_REGISTRY_BEARER_TOKEN")? {
        config.registry.bearer_token = Some(token);
    }
    if let Some(ca) = env.vars.get("OUTBOX_REGISTRY_CA") {
        config.registry.ca = Some(ca.into());
    }
    // The served ports' credentials: `RelayConfig::apply_env` reads the plain variables; this
    // adds their `_FILE` forms, so these secrets too can be container secrets.
    for (prefix, auth) in [
        ("OUTBOX_REGISTRY_AUTH", &mut config.registry.auth),
        ("OUTBOX_HTTP_AUTH", &mut config.http.auth),
    ] {
        if let Some(password) = env.value(&format!("{prefix}_PASSWORD"))? {
            auth.password = Some(password).filter(|p| !p.is_empty());
        }
        if let Some(token) = env.value(&format!("{prefix}_BEARER_TOKEN"))? {
            auth.bearer_token = Some(token).filter(|t| !t.is_empty());
        }
    }
    Ok(())
}

/// Puts `OUTBOX_DATABASE_PASSWORD` (or the file `OUTBOX_DATABASE_PASSWORD_FILE` names) into
/// the database URL, percent-encoded, so the URL itself holds no secret.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the variable, or `database_url` when the URL cannot hold
/// a password (SQLite, no host). The URL is never part of the message.
pub fn apply_database_password(config: &mut RelayConfig, env: &Environment) -> Result<()> {
    let Some(password) = env.value("OUTBOX_DATABASE_PASSWORD")? else {
        return Ok(());
    };
    let Some(text) = config.database_url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(invalid(
            "OUTBOX_DATABASE_PASSWORD",
            "is set but database_url is not (the password goes into it)",
        ));
    };
    let mut url = url::Url::parse(text).map_err(|e| {
        invalid(
            "database_url",
            format!("is not a URL a password can be put into ({e})"),
        )
    })?;
    if url.set_password(Some(&password)).is_err() || url.scheme() == "sqlite" {
        return Err(invalid(
            "database_url",
            format!(
                "a {}: URL has no password (OUTBOX_DATABASE_PASSWORD is set)",
                url.scheme()
            ),
        ));
    }
    config.database_url = Some(url.into());
    Ok(())
}

#[cfg(test)]
mod tests;
