//! The configuration's one error format and its range checks.
//!
//! A malformed file is reported by key, line and column, never by the value or the line's
//! content (a value may be a secret). Every duration, size and count is range-checked at
//! start, naming the key, so nothing out of range reaches the drain loop.

use std::ops::RangeInclusive;
use std::time::Duration;

use outbox_core::{Error, Result};
use serde::de::DeserializeOwned;

use crate::config::RelayConfig;

/// The error for `key`.
pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Parses TOML text into `T`, reporting a failure by key path, line and column.
pub(crate) fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message();
        // serde names an unknown field in the message, below the path of its table.
        let (key, reason) = match message.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                let key = if path == "." || path.is_empty() {
                    field.to_owned()
                } else if path == field || path.ends_with(&format!(".{field}")) {
                    path
                } else {
                    format!("{path}.{field}")
                };
                (key, "unknown key".to_owned())
            }
            None => (
                if path == "." || path.is_empty() {
                    "config file".to_owned()
                } else {
                    path
                },
                without_values(message),
            ),
        };
        invalid(&key, format!("{reason}{}", position(text, inner.span())))
    })
}

fn syntax_error(text: &str, e: &toml::de::Error) -> Error {
    // A duplicate key's span is the key as written: name it (a key is not a secret).
    let key = e
        .span()
        .filter(|_| e.message().starts_with("duplicate key"))
        .and_then(|span| text.get(span))
        .map(str::trim)
        .filter(|key| {
            !key.is_empty()
                && key.len() <= 100
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
        .unwrap_or("config file");
    invalid(
        key,
        format!(
            "not valid TOML: {}{}",
            without_values(e.message()),
            position(text, e.span())
        ),
    )
}

/// ` (line L, column C)` of the start of `span`.
fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" (line {line}, column {column})")
}

/// A serde or TOML message with the quoted input removed: serde quotes the value it refused
/// in backticks (`invalid type: string "hunter2"` or `` `42` ``); the expectation that follows
/// the comma names types and variants only.
fn without_values(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let (head, expected) = match first.split_once(", expected") {
        Some((head, rest)) => (head, format!(", expected{rest}")),
        None => (first, String::new()),
    };
    let head = match head.find(['`', '"', '\'']) {
        Some(at) => head[..at].trim_end(),
        None => head,
    };
    format!("{head}{expected}")
}

/// Checks every duration, size and count against its range.
pub(crate) fn check_ranges(config: &RelayConfig) -> Result<()> {
    let relay = &config.relay;
    count("relay.batch_size", relay.batch_size, 1..=100_000)?;
    count("relay.max_attempts", relay.max_attempts as usize, 1..=1000)?;
    duration(
        "relay.poll_interval",
        relay.poll_interval,
        ms(1)..=secs(3600),
    )?;
    duration("relay.lease_ttl", relay.lease_ttl, secs(1)..=secs(3600))?;
    duration(
        "relay.shutdown_timeout",
        relay.shutdown_timeout,
        ms(0)..=secs(3600),
    )?;
    duration(
        "relay.retry_backoff",
        relay.retry_backoff,
        ms(1)..=secs(600),
    )?;
    // A step waits up to 10 s for a database connection before it fails, then backs off up
    // to 5 s: below twice that, a database outage would fail `/healthz` ("drain loop stuck")
    // before it shows on `/readyz`, and supervisors would restart relays for an outage.
    duration(
        "relay.stuck_after",
        relay.stuck_after,
        secs(30)..=secs(86_400),
    )?;
    text("relay.lease_name", &relay.lease_name)?;
    text("relay.source", &relay.source)?;
    if let Some(instance) = &relay.instance_id {
        text("relay.instance_id", instance)?;
    }
    crate::producer::max_message_bytes(&config.kafka).map(drop)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn count(key: &str, value: usize, range: RangeInclusive<usize>) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(invalid(
        key,
        format!("must be between {} and {}", range.start(), range.end()),
    ))
}

fn duration(key: &str, value: Duration, range: RangeInclusive<Duration>) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    let show = |d: &Duration| humantime::format_duration(*d).to_string();
    Err(invalid(
        key,
        format!(
            "must be between {} and {}",
            show(range.start()),
            show(range.end())
        ),
    ))
}

/// A name stored in a 255-character column and sent in headers.
fn text(key: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > 255 {
        return Err(invalid(key, "must be 1 to 255 characters"));
    }
    Ok(())
}
