//! Claimed rows decoded cell by cell: a malformed column becomes a reason naming it, not a
//! failed claim.

use outbox_core::relay::{BlockedKey, ClaimedRow, MalformedRow, OutboxRecord};
use outbox_core::{Error, Result, headers_from_json};
use uuid::Uuid;

use crate::database::{Cell, Decoded, Value};

/// A row's cells decoded one by one: every column that does not decode is named in
/// `problems`, and gets an empty value in `record`.
pub(super) struct DecodedRow {
    pub(super) record: OutboxRecord,
    key: Option<BlockedKey>,
    problems: Vec<String>,
}

/// The `created_at` values a record can carry, in ms since the Unix epoch: Kafka refuses
/// negative timestamps, and RFC 3339 (`ce_time`) ends with year 9999.
const CREATED_AT_MS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// At most this many characters of a bad value are quoted in a dead letter's reason.
const QUOTED_CHARS: usize = 40;

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push_str("...");
    }
    format!("{quoted:?}")
}

pub(super) fn decode_row(cells: Vec<Cell>) -> Result<DecodedRow> {
    let mut cells = cells.into_iter();
    let mut problems = Vec::new();
    let mut next = |name: &str| match cells.next() {
        Some(Ok(value)) => Some(value),
        Some(Err(why)) => {
            problems.push(format!("{name}: {why}"));
            None
        }
        None => {
            problems.push(format!("{name}: missing"));
            None
        }
    };
    let Some(id) = next("id").map(Value::i64) else {
        return Err(Error::Decode {
            reason: "an outbox row has no integer id".to_owned(),
        });
    };
    let event_id = next("event_id").map(Value::text);
    let topic = next("topic").map(Value::text);
    let event_key = next("event_key").map(Value::opt_bytes);
    let event_type = next("event_type").map(Value::text);
    let schema_id = next("schema_id").map(Value::opt_i32);
    let content_type = next("content_type").map(Value::text);
    let payload = next("payload").map(Value::bytes);
    let headers = next("headers").map(Value::text);
    let created_at_ms = next("created_at").map(Value::opt_i64);
    let event_id = event_id.and_then(|text| match Uuid::parse_str(text.trim()) {
        Ok(uuid) => Some(uuid),
        Err(e) => {
            problems.push(format!("event_id: {} is not a UUID: {e}", quote(&text)));
            None
        }
    });
    let headers = headers.and_then(|text| match headers_from_json(&text) {
        Ok(headers) => Some(headers),
        Err(Error::Decode { reason }) => {
            problems.push(reason);
            None
        }
        Err(e) => {
            problems.push(format!("headers: {e}"));
            None
        }
    });
    let created_at_ms = created_at_ms.and_then(|ms| match ms {
        None => {
            problems.push(
                "created_at: not a finite point in time (infinity, or text that is not a date)"
                    .to_owned(),
            );
            None
        }
        Some(ms) if !CREATED_AT_MS.contains(&ms) => {
            problems.push(
                "created_at: outside 1970-01-01 to 9999-12-31, which a Kafka timestamp and \
                 ce_time can hold"
                    .to_owned(),
            );
            None
        }
        Some(ms) => Some(ms),
    });
    let key = match (&topic, &event_key) {
        (Some(topic), Some(key)) => Some((topic.clone(), key.clone())),
        _ => None,
    };
    Ok(DecodedRow {
        record: OutboxRecord {
            id,
            event_id: event_id.unwrap_or_default(),
            topic: topic.unwrap_or_default(),
            event_key: event_key.unwrap_or_default(),
            event_type: event_type.unwrap_or_default(),
            schema_id: schema_id.unwrap_or_default(),
            content_type: content_type.unwrap_or_default(),
            payload: payload.unwrap_or_default(),
            headers: headers.unwrap_or_default(),
            created_at_ms: created_at_ms.unwrap_or_default(),
        },
        key,
        problems,
    })
}

impl DecodedRow {
    pub(super) fn claimed(self) -> ClaimedRow {
        if self.problems.is_empty() {
            ClaimedRow::Record(self.record)
        } else {
            ClaimedRow::Malformed(MalformedRow {
                id: self.record.id,
                key: self.key,
                reason: format!("malformed row: {}", self.problems.join("; ")),
            })
        }
    }
}
