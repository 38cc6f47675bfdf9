//! The relay's typed rows, decoded cell by cell: a malformed column becomes a reason naming
//! it, not a failed read.

use outbox_core::relay::{BlockedKey, MalformedRow, OutboxRecord, ReadRow};
use outbox_core::{Error, Result, SchemaId, headers_from_json};
use uuid::Uuid;

use crate::cells::{Cell, FromCells, RowCells};

/// The record columns of an outbox or dead-letter row, each decoded on its own.
pub(super) struct RecordRow {
    id: Cell<i64>,
    event_id: Cell<String>,
    topic: Cell<String>,
    event_key: Cell<Option<Vec<u8>>>,
    event_type: Cell<String>,
    schema_id: Cell<Option<i32>>,
    content_type: Cell<String>,
    payload: Cell<Vec<u8>>,
    headers: Cell<String>,
    created_at_ms: Cell<Option<i64>>,
}

impl FromCells for RecordRow {
    fn from_cells(c: &mut dyn RowCells) -> Cell<Self> {
        Ok(Self {
            id: c.i64(),
            event_id: c.text(),
            topic: c.text(),
            event_key: c.opt_bytes(),
            event_type: c.text(),
            schema_id: c.opt_i32(),
            content_type: c.text(),
            payload: c.bytes(),
            headers: c.text(),
            created_at_ms: c.opt_i64(),
        })
    }
}

/// A dead-letter row: the record columns, then its attempts and error.
pub(super) struct DeadLetterRow {
    pub(super) record: RecordRow,
    pub(super) attempts: Cell<i32>,
    pub(super) error: Cell<String>,
}

impl FromCells for DeadLetterRow {
    fn from_cells(c: &mut dyn RowCells) -> Cell<Self> {
        Ok(Self {
            record: RecordRow::from_cells(c)?,
            attempts: c.i32(),
            error: c.text(),
        })
    }
}

/// A dead-lettered `(topic, key)` and its smallest id, each cell decoded on its own.
pub(super) struct BlockedKeyRow {
    topic: Cell<String>,
    key: Cell<Option<Vec<u8>>>,
    id: Cell<i64>,
}

impl FromCells for BlockedKeyRow {
    fn from_cells(c: &mut dyn RowCells) -> Cell<Self> {
        Ok(Self {
            topic: c.text(),
            key: c.opt_bytes(),
            id: c.i64(),
        })
    }
}

impl BlockedKeyRow {
    /// The key and id, when every cell decoded: a dead letter whose topic or key does not
    /// decode blocks no key the relay can see.
    pub(super) fn decoded(self) -> Option<(BlockedKey, i64)> {
        Some(((self.topic.ok()?, self.key.ok()?), self.id.ok()?))
    }
}

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

/// The cell's value, or `None` with a problem naming the column.
fn named<T>(problems: &mut Vec<String>, name: &str, cell: Cell<T>) -> Option<T> {
    match cell {
        Ok(value) => Some(value),
        Err(why) => {
            problems.push(format!("{name}: {why}"));
            None
        }
    }
}

impl RecordRow {
    /// Decodes the record, naming every column that does not decode.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the `id` itself does not decode: without it the row cannot
    /// even be dead-lettered.
    pub(super) fn decode(self) -> Result<DecodedRow> {
        let Ok(id) = self.id else {
            return Err(Error::Decode {
                reason: "an outbox row has no integer id".to_owned(),
            });
        };
        let mut problems = Vec::new();
        let p = &mut problems;
        let event_id = named(p, "event_id", self.event_id);
        let topic = named(p, "topic", self.topic);
        let event_key = named(p, "event_key", self.event_key);
        let event_type = named(p, "event_type", self.event_type);
        let schema_id = named(p, "schema_id", self.schema_id);
        let content_type = named(p, "content_type", self.content_type);
        let payload = named(p, "payload", self.payload);
        let headers = named(p, "headers", self.headers);
        let created_at_ms = named(p, "created_at", self.created_at_ms);
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
        let schema_id = match schema_id {
            Some(Some(raw)) => match SchemaId::from_column(raw) {
                Some(id) => Some(Some(id)),
                None => {
                    problems.push(format!("schema_id: {raw} is negative, not a schema id"));
                    None
                }
            },
            other => other.map(|_| None),
        };
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
}

impl DecodedRow {
    /// The row as the relay reads it: a record, or malformed with every problem named.
    pub(super) fn read_row(self) -> ReadRow {
        if self.problems.is_empty() {
            ReadRow::Record(self.record)
        } else {
            ReadRow::Malformed(MalformedRow {
                id: self.record.id,
                key: self.key,
                reason: format!("malformed row: {}", self.problems.join("; ")),
            })
        }
    }
}
