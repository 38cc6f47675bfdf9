//! Lint configuration: severities per rule, globally and per subject, from a TOML file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::names::{NameWords, words};
use super::rule::{Rule, Severity};
use crate::{Error, Result};

/// The largest configuration file read (a lint configuration is a few lines).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The key of errors about the file as a whole (syntax, unknown top-level keys).
const SYNTAX: &str = "lint configuration";

/// Default threshold of the `size-large` rule: 64 KiB, well under Kafka's 1 MiB
/// `message.max.bytes`, because events should carry facts, not documents.
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 64 * 1024;

/// How the linter is set up: which rules run at which severity, and the `size-large`
/// threshold, with overrides per subject.
///
/// # Examples
///
/// ```
/// use outbox_core::lint::{LintConfig, Rule, Severity};
///
/// let config = LintConfig::from_toml_str(r#"
///     [rules]
///     id-untyped = "off"
///
///     [names]                       # replaces a list of words the name-based rules use
///     money = ["price", "fare"]
///
///     [subjects."orders-value"]
///     max_size_bytes = 200000
///     rules = { doc-missing = "warning" }
/// "#)?;
/// let orders = config.for_subject(Some("orders-value"));
/// assert_eq!(orders.severity(Rule::DocMissing), Some(Severity::Warning));
/// assert_eq!(orders.severity(Rule::IdUntyped), None);
/// assert_eq!(config.for_subject(None).severity(Rule::DocMissing), Some(Severity::Error));
/// # Ok::<(), outbox_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    global: RuleSettings,
    subjects: BTreeMap<String, Overrides>,
}

/// The settings in force for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSettings {
    /// Severity per rule; `None` turns a rule off. Rules absent use their default severity.
    rules: BTreeMap<Rule, Option<Severity>>,
    /// The `size-large` threshold, in bytes.
    pub max_size_bytes: u64,
    /// The size assumed for a string or bytes value when estimating.
    pub assumed_string_bytes: u64,
    /// The number of entries assumed for an array or map when estimating.
    pub assumed_collection_items: u64,
    /// The words the name-based rules look for.
    pub names: NameWords,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            rules: BTreeMap::new(),
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            assumed_string_bytes: 32,
            assumed_collection_items: 8,
            names: NameWords::default(),
        }
    }
}

impl RuleSettings {
    /// The severity of `rule`, `None` when it is turned off.
    pub fn severity(&self, rule: Rule) -> Option<Severity> {
        self.rules
            .get(&rule)
            .copied()
            .unwrap_or(Some(rule.default_severity()))
    }

    /// Sets the severity of `rule` (`None` turns it off).
    pub fn set(&mut self, rule: Rule, severity: Option<Severity>) {
        self.rules.insert(rule, severity);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Overrides {
    rules: BTreeMap<Rule, Option<Severity>>,
    max_size_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    max_size_bytes: Option<u64>,
    assumed_string_bytes: Option<u64>,
    assumed_collection_items: Option<u64>,
    #[serde(default)]
    rules: BTreeMap<String, String>,
    #[serde(default)]
    subjects: BTreeMap<String, RawSubject>,
    #[serde(default)]
    names: RawNames,
}

/// Replacements for the lists of [`NameWords`]; a list not given keeps its default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNames {
    money: Option<Vec<String>>,
    not_money: Option<Vec<String>>,
    time: Option<Vec<String>>,
    id: Option<Vec<String>>,
    closed_set: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    max_size_bytes: Option<u64>,
    #[serde(default)]
    rules: BTreeMap<String, String>,
}

impl LintConfig {
    /// Parses TOML configuration text (see the type's example for the shape).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the key (`subjects."orders-value".rules.doc-mising`)
    /// or the line and column of a syntax error.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::InvalidConfig {
            key: SYNTAX.to_owned(),
            reason: toml_reason(text, &e),
        })?;
        let mut global = RuleSettings::default();
        if let Some(bytes) = raw.max_size_bytes {
            global.max_size_bytes = bytes;
        }
        if let Some(bytes) = raw.assumed_string_bytes {
            global.assumed_string_bytes = bytes;
        }
        if let Some(items) = raw.assumed_collection_items {
            global.assumed_collection_items = items;
        }
        global.rules = parse_rules(&raw.rules, "rules")?;
        let names = &mut global.names;
        for (key, list, words) in [
            ("money", &mut names.money, raw.names.money),
            ("not_money", &mut names.not_money, raw.names.not_money),
            ("time", &mut names.time, raw.names.time),
            ("id", &mut names.id, raw.names.id),
            ("closed_set", &mut names.closed_set, raw.names.closed_set),
        ] {
            if let Some(words) = words {
                *list = words
                    .iter()
                    .map(|w| one_word(w, key))
                    .collect::<Result<_>>()?;
            }
        }
        let subjects = raw
            .subjects
            .into_iter()
            .map(|(subject, raw)| {
                let prefix = format!("subjects.{subject:?}.rules");
                let rules = parse_rules(&raw.rules, &prefix)?;
                Ok((
                    subject,
                    Overrides {
                        rules,
                        max_size_bytes: raw.max_size_bytes,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { global, subjects })
    }

    /// Reads a TOML configuration file.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the file, for an unreadable, oversized (over 1 MiB) or
    /// invalid file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidConfig {
            key: path.display().to_string(),
            reason,
        };
        let text = read_bounded(path, MAX_CONFIG_BYTES).map_err(invalid)?;
        Self::from_toml_str(&text).map_err(|e| match e {
            Error::InvalidConfig { key, reason } if key == SYNTAX => invalid(reason),
            Error::InvalidConfig { key, reason } => invalid(format!("{key}: {reason}")),
            other => other,
        })
    }

    /// The settings in force for `subject` (the global ones when `None` or not listed).
    pub fn for_subject(&self, subject: Option<&str>) -> RuleSettings {
        let mut settings = self.global.clone();
        if let Some(overrides) = subject.and_then(|s| self.subjects.get(s)) {
            settings.rules.extend(overrides.rules.clone());
            if let Some(bytes) = overrides.max_size_bytes {
                settings.max_size_bytes = bytes;
            }
        }
        settings
    }

    /// The global settings, to adjust in code.
    pub fn global_mut(&mut self) -> &mut RuleSettings {
        &mut self.global
    }
}

/// A word of a `[names]` list, lower-cased as the words of a name are. The rules compare
/// word with word, so `unitPrice` or `unit_price` could never match (a field `unitPrice` is
/// the words `unit`, `price`): refused rather than silently matching nothing.
fn one_word(word: &str, list: &str) -> Result<String> {
    let split = words(word);
    match split.as_slice() {
        [one] if one.len() == word.trim().len() => Ok(one.clone()),
        _ => Err(Error::InvalidConfig {
            key: format!("names.{list}"),
            reason: format!(
                "{word:?} is not one word ({}); the rules match each word of a name \
                 (`unitPrice` and `unit_price` are `unit`, `price`): list single words",
                if split.is_empty() {
                    "it has no letters or digits".to_owned()
                } else {
                    split.join(", ")
                }
            ),
        }),
    }
}

fn parse_rules(
    raw: &BTreeMap<String, String>,
    prefix: &str,
) -> Result<BTreeMap<Rule, Option<Severity>>> {
    raw.iter()
        .map(|(id, level)| {
            let invalid = |reason: String| Error::InvalidConfig {
                key: format!("{prefix}.{id}"),
                reason,
            };
            let rule: Rule = id.parse().map_err(invalid)?;
            let severity = match level.as_str() {
                "error" => Some(Severity::Error),
                "warning" => Some(Severity::Warning),
                "off" => None,
                other => {
                    return Err(invalid(format!(
                        "unknown severity {other:?} (expected error, warning or off)"
                    )));
                }
            };
            Ok((rule, severity))
        })
        .collect()
}

/// One line for a TOML error: its message and, when known, where.
fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Reads a text file of at most `limit` bytes; the error is one line.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> std::result::Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > limit {
        return Err(format!("larger than the limit of {limit} bytes"));
    }
    Ok(text)
}
