//! The rule catalogue: stable ids, default severities, and the one-line fix of each rule.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How serious a violation is. Errors fail `outbox-relay schema lint` and, at
/// [`LintLevel::Deny`](super::LintLevel::Deny), a registration; warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, but does not fail.
    Warning,
    /// Fails the lint.
    Error,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A design rule for event schemas (after *Building Event-Driven Microservices*, chapter 3).
///
/// The ids ([`Rule::id`]) are stable: configuration files and CI scripts refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// `doc-missing`: a record, enum, fixed or field without a `doc`.
    DocMissing,
    /// `money-float`: an amount of money as `float` or `double`.
    MoneyFloat,
    /// `time-untyped`: a point in time as `long`, `int` or `string` without a logical type.
    TimeUntyped,
    /// `id-untyped`: an id as a free string where the `uuid` logical type fits.
    IdUntyped,
    /// `enum-as-string`: a closed set of values (a status, a kind) as a free string.
    EnumAsString,
    /// `stream-union`: a union at the top of a stream's schema (one definition per stream).
    StreamUnion,
    /// `stream-multiple-types`: several record names on one stream (one definition per stream).
    StreamMultipleTypes,
    /// `event-signal`: a record with no data beyond ids and times (an event used as a signal).
    EventSignal,
    /// `size-large`: the estimated encoded size is over the configured threshold.
    SizeLarge,
    /// `optional-no-default`: an optional (`null` union) field without a default.
    OptionalNoDefault,
    /// `nesting-deep`: types nested deeper than the linter follows.
    NestingDeep,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: [Self; 11] = [
        Self::DocMissing,
        Self::MoneyFloat,
        Self::TimeUntyped,
        Self::IdUntyped,
        Self::EnumAsString,
        Self::StreamUnion,
        Self::StreamMultipleTypes,
        Self::EventSignal,
        Self::SizeLarge,
        Self::OptionalNoDefault,
        Self::NestingDeep,
    ];

    /// The stable id (`doc-missing`).
    pub fn id(self) -> &'static str {
        match self {
            Self::DocMissing => "doc-missing",
            Self::MoneyFloat => "money-float",
            Self::TimeUntyped => "time-untyped",
            Self::IdUntyped => "id-untyped",
            Self::EnumAsString => "enum-as-string",
            Self::StreamUnion => "stream-union",
            Self::StreamMultipleTypes => "stream-multiple-types",
            Self::EventSignal => "event-signal",
            Self::SizeLarge => "size-large",
            Self::OptionalNoDefault => "optional-no-default",
            Self::NestingDeep => "nesting-deep",
        }
    }

    /// The severity when no configuration says otherwise: rules that can be decided exactly
    /// are errors; rules that guess from a field's name are warnings.
    pub fn default_severity(self) -> Severity {
        match self {
            Self::DocMissing
            | Self::MoneyFloat
            | Self::StreamUnion
            | Self::StreamMultipleTypes
            | Self::SizeLarge
            | Self::OptionalNoDefault
            | Self::NestingDeep => Severity::Error,
            Self::TimeUntyped | Self::IdUntyped | Self::EnumAsString | Self::EventSignal => {
                Severity::Warning
            }
        }
    }

    /// The one-line fix.
    pub fn fix(self) -> &'static str {
        match self {
            Self::DocMissing => "add a \"doc\" saying what it means to the business",
            Self::MoneyFloat => {
                "use {\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":P,\"scale\":S} \
                 (or a long of minor units)"
            }
            Self::TimeUntyped => {
                "use {\"type\":\"long\",\"logicalType\":\"timestamp-millis\"} \
                 (or {\"type\":\"int\",\"logicalType\":\"date\"} for a day)"
            }
            Self::IdUntyped => "use {\"type\":\"string\",\"logicalType\":\"uuid\"} if it is a UUID",
            Self::EnumAsString => "use an enum with the known symbols and a \"default\" symbol",
            Self::StreamUnion => {
                "make the stream's schema one record; put other types on streams of their own"
            }
            Self::StreamMultipleTypes => {
                "publish each record type to a stream of its own (or evolve the existing record)"
            }
            Self::EventSignal => {
                "carry the facts that changed, so consumers need not query the producer back"
            }
            Self::SizeLarge => {
                "split the event, or reference large data (a URL or id) instead of embedding it"
            }
            Self::OptionalNoDefault => "add \"default\": null (with \"null\" first in the union)",
            Self::NestingDeep => "flatten the schema into fewer nested levels",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Rule {
    type Err = String;

    /// Parses a rule id (`doc-missing`).
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|r| r.id() == s).ok_or_else(|| {
            format!(
                "unknown rule {s:?} (expected one of: {})",
                Self::ALL.map(Self::id).join(", ")
            )
        })
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// One rule broken at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Its severity, after configuration.
    pub severity: Severity,
    /// JSON pointer into the schema document (`/fields/2/type`); `/` for the whole schema.
    pub location: String,
    /// What is wrong there, in one line.
    pub message: String,
    /// How to fix it, in one line.
    pub fix: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at {}: {} (fix: {})",
            self.severity, self.rule, self.location, self.message, self.fix
        )
    }
}

/// Every violation found in one schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintReport {
    /// The violations, in document order (by location).
    pub violations: Vec<Violation>,
}

impl LintReport {
    /// No violation at all.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// At least one violation of severity [`Severity::Error`].
    pub fn has_errors(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.severity == Severity::Error)
    }

    /// The violations of `rule`.
    pub fn of(&self, rule: Rule) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.rule == rule)
    }
}
