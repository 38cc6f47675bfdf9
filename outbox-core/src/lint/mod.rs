//! Design rules for event schemas, after *Building Event-Driven Microservices* (chapter 3):
//! documented schemas, the narrowest types, one definition per stream, events that carry data
//! rather than signals, small events, and optional fields that can evolve.
//!
//! Each [`Violation`] has a stable rule id, a severity, a JSON-pointer location in the schema
//! document and a one-line fix, like a compatibility [`Incompatibility`](crate::compat::Incompatibility).
//! Rules are configured or turned off globally and per subject with a [`LintConfig`].
//!
//! | id | default | what |
//! |----|---------|------|
//! | `doc-missing` | error | a record, enum, fixed (without logical type) or field without `doc` |
//! | `money-float` | error | money (`price`, `amount`, `total`, ...) as `float`/`double` |
//! | `time-untyped` | warning | a time (`created_at`, `timestamp`, ...) as `long`/`int`/`string` without a logical type |
//! | `id-untyped` | warning | an id (`order_id`) as a string without the `uuid` logical type |
//! | `enum-as-string` | warning | a closed set (`status`, `kind`, ...) as a free string |
//! | `stream-union` | error | a union at the top of a stream's schema |
//! | `stream-multiple-types` | error | a record name other than the one the stream carries |
//! | `event-signal` | warning | a record with nothing but ids and times |
//! | `size-large` | error | an estimated encoded size over `max_size_bytes` (64 KiB) |
//! | `optional-no-default` | error | a `null` union field without a default |
//! | `nesting-deep` | error | types nested more than 64 levels deep |
//!
//! The stream rules run only when the context names a stream (a topic).
//!
//! # Examples
//!
//! ```
//! use outbox_core::lint::{lint, LintConfig, LintContext, Rule};
//! use outbox_core::Schema;
//!
//! let schema = Schema::parse_str(r#"{"type":"record","name":"OrderPlaced",
//!     "doc":"An order was placed",
//!     "fields":[{"name":"total","type":"double","doc":"What the customer pays"}]}"#)?;
//! let report = lint(&schema, &LintContext::for_topic("orders"), &LintConfig::default());
//! let v = &report.violations[0];
//! assert_eq!((v.rule, v.location.as_str()), (Rule::MoneyFloat, "/fields/0/type"));
//! assert!(report.has_errors());
//! # Ok::<(), outbox_core::Error>(())
//! ```

pub(crate) mod config;
mod names;
mod rule;
mod size;
mod walk;

use std::fmt;
use std::str::FromStr;

use serde_json::Value as Json;

pub use config::{DEFAULT_MAX_SIZE_BYTES, LintConfig, RuleSettings};
pub use names::NameWords;
pub use rule::{LintReport, Rule, Severity, Violation};

use crate::schema::Schema;
use crate::{Error, Result};

/// What a writer or a registry does with the linter when a schema is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    /// Do not lint (the default).
    #[default]
    Allow,
    /// Lint and log the violations; register anyway.
    Warn,
    /// Refuse to register a schema with an error-severity violation
    /// ([`Error::LintFailed`]).
    Deny,
}

impl LintLevel {
    /// `allow`, `warn` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Warn => "warn",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for LintLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LintLevel {
    type Err = Error;

    /// Parses `allow`, `warn` or `deny` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(Self::Allow),
            "warn" => Ok(Self::Warn),
            "deny" => Ok(Self::Deny),
            _ => Err(Error::InvalidConfig {
                key: "lint".to_owned(),
                reason: format!("unknown lint level {s:?} (expected allow, warn or deny)"),
            }),
        }
    }
}

/// Where a schema is used: the subject (for per-subject configuration) and the stream it is
/// the schema of (for the one-definition-per-stream rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintContext {
    /// The registry subject, for [`LintConfig::for_subject`].
    pub subject: Option<String>,
    /// The topic whose value schema this is; `None` skips the stream rules.
    pub topic: Option<String>,
    /// Full names of the record types the stream already carries (its registered versions).
    pub stream_types: Vec<String>,
}

impl LintContext {
    /// The value schema of `topic`, under the default subject `<topic>-value`.
    pub fn for_topic(topic: &str) -> Self {
        Self {
            subject: Some(format!("{topic}-value")),
            topic: Some(topic.to_owned()),
            stream_types: Vec::new(),
        }
    }

    /// A registry subject; a `<topic>-value` subject (the topic-name strategy) names its stream.
    pub fn for_subject(subject: &str) -> Self {
        Self {
            subject: Some(subject.to_owned()),
            topic: subject.strip_suffix("-value").map(str::to_owned),
            stream_types: Vec::new(),
        }
    }

    /// With the full names of the types the stream already carries.
    #[must_use]
    pub fn with_stream_types(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.stream_types = names.into_iter().collect();
        self
    }
}

/// Lints `schema` used in `context` under `config`.
///
/// Work is linear in the size of the schema: the document is walked with an explicit stack
/// and a depth bound, the size estimate visits each named type once.
pub fn lint(schema: &Schema, context: &LintContext, config: &LintConfig) -> LintReport {
    let settings = config.for_subject(context.subject.as_deref());
    let mut walk = walk::Walk {
        settings: &settings,
        out: Vec::new(),
    };
    // The canonical form is the document with its keys sorted: same arrays, same pointers.
    // serde_json refuses documents nested over 128 levels, which are too deep anyway.
    let Ok(document) = serde_json::from_str::<Json>(schema.canonical_json()) else {
        walk.report(
            Rule::NestingDeep,
            "/",
            format!("types are nested more than {} levels deep", walk::MAX_DEPTH),
        );
        return LintReport {
            violations: walk.out,
        };
    };
    if let Some(topic) = &context.topic {
        stream_rules(&mut walk, schema, &document, topic, &context.stream_types);
    }
    if let Some(Json::Array(fields)) = document.get("fields")
        && walk::is_signal(
            &settings.names,
            fields
                .iter()
                .filter_map(|f| f.get("name").and_then(Json::as_str)),
        )
    {
        let name = schema.full_name().unwrap_or_default();
        walk.report(
            Rule::EventSignal,
            "/fields",
            format!("record {name} carries nothing but ids and times"),
        );
    }
    walk.types(&document);
    let estimate = size::estimate(schema.parsed(), &settings);
    if estimate > settings.max_size_bytes {
        walk.report(
            Rule::SizeLarge,
            "/",
            format!(
                "estimated encoded size {estimate} bytes is over {} bytes",
                settings.max_size_bytes
            ),
        );
    }
    let mut violations = walk.out;
    // Document order: the walk finishes a record's fields before its nested types.
    violations.sort_by_cached_key(|v| pointer_key(&v.location));
    LintReport { violations }
}

/// A JSON pointer as a sort key, comparing array indices as numbers.
fn pointer_key(pointer: &str) -> Vec<(u64, String)> {
    pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, s.to_owned()),
        })
        .collect()
}

fn stream_rules(
    walk: &mut walk::Walk<'_>,
    schema: &Schema,
    document: &Json,
    topic: &str,
    stream_types: &[String],
) {
    if document.is_array() {
        walk.report(
            Rule::StreamUnion,
            "/",
            format!("the schema of stream {topic} is a union of several types"),
        );
    }
    // A record renamed with the old name as an alias is the same type, evolved.
    let parsed = schema.parsed();
    let aliases = parsed
        .resolve(parsed.root)
        .named()
        .map(|n| n.aliases.as_slice())
        .unwrap_or_default();
    if let Some(name) = schema.full_name()
        && let Some(other) = stream_types
            .iter()
            .find(|t| **t != name && !aliases.contains(t))
    {
        walk.report(
            Rule::StreamMultipleTypes,
            "/name",
            format!("stream {topic} carries {other}; this schema is {name}"),
        );
    }
}
