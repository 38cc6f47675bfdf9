//! Subject naming strategies: which registry subject an event's schema lives under.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// How the subject for a topic's value schema is named, as Confluent's serializers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-value`: one event definition per stream, so an unrelated second record type on
    /// the same topic is refused as an incompatible change (the default).
    #[default]
    TopicName,
    /// `<record full name>`: one subject per type, shared by every topic carrying it.
    RecordName,
    /// `<topic>-<record full name>`: several types per topic, each evolving on its own.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for a value schema of `record_full_name` on `topic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use outbox_core::registry::SubjectNameStrategy;
    ///
    /// let s = SubjectNameStrategy::TopicRecordName;
    /// assert_eq!(s.subject("orders", "com.acme.OrderPlaced"), "orders-com.acme.OrderPlaced");
    /// assert_eq!(SubjectNameStrategy::default().subject("orders", "x.Y"), "orders-value");
    /// ```
    pub fn subject(self, topic: &str, record_full_name: &str) -> String {
        match self {
            Self::TopicName => format!("{topic}-value"),
            Self::RecordName => record_full_name.to_owned(),
            Self::TopicRecordName => format!("{topic}-{record_full_name}"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::TopicName => "topic_name",
            Self::RecordName => "record_name",
            Self::TopicRecordName => "topic_record_name",
        }
    }
}

impl fmt::Display for SubjectNameStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubjectNameStrategy {
    type Err = Error;

    /// Accepts `topic_name`, `record_name`, `topic_record_name`, or Confluent's class names
    /// (`TopicNameStrategy`, ...), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        let key = s.trim().to_ascii_lowercase().replace(['_', '-'], "");
        match key.trim_end_matches("strategy") {
            "topicname" => Ok(Self::TopicName),
            "recordname" => Ok(Self::RecordName),
            "topicrecordname" => Ok(Self::TopicRecordName),
            _ => Err(Error::InvalidConfig {
                key: "subject_name_strategy".to_owned(),
                reason: format!(
                    "unknown strategy {s:?} (expected topic_name, record_name or topic_record_name)"
                ),
            }),
        }
    }
}

/// The stream a breaking change goes to while the old stream drains: `orders` → `orders.v2`,
/// `orders.v2` → `orders.v3`.
///
/// # Examples
///
/// ```
/// use outbox_core::registry::next_stream;
///
/// assert_eq!(next_stream("orders"), "orders.v2");
/// assert_eq!(next_stream("orders.v9"), "orders.v10");
/// assert_eq!(next_stream("orders.vip"), "orders.vip.v2");
/// ```
pub fn next_stream(topic: &str) -> String {
    if let Some((base, version)) = topic.rsplit_once(".v")
        && !version.is_empty()
        && version.len() < 10
        && version.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = version.parse::<u32>()
    {
        return format!("{base}.v{}", n + 1);
    }
    format!("{topic}.v2")
}

/// The stream of a `<topic>-value` subject (the topic-name strategy), else the subject itself.
pub(crate) fn stream_of_subject(subject: &str) -> &str {
    subject.strip_suffix("-value").unwrap_or(subject)
}
