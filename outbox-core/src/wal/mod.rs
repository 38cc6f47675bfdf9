//! WAL mode (PostgreSQL): the envelope a writer emits with `pg_logical_emit_message` instead
//! of inserting a row, and the names of the slot and publication the relay reads it through.
//!
//! The envelope carries every column of the table contract, so the relay turns it into the
//! same Kafka record a polled row becomes. Layout (all integers big-endian):
//!
//! ```text
//! version u8 (= 1)
//! event_id [16]            created_at_ms i64
//! topic str                event_key opt-bytes          event_type str
//! schema_id opt-i32        content_type str             payload bytes
//! headers str (the `headers` column's JSON)
//! str / bytes = u32 length + bytes; opt-x = u8 0 (absent) | 1 + x
//! ```
//!
//! Version 2 is the same followed by `dead_letter_id i64`: a dead letter that
//! `outbox-relay dead-letters retry` emits again, carrying the place it held, so the relay
//! keeps it ahead of its key's later dead letters (the block policy) and, should it fail
//! again, parks it under the same id. Writers only ever emit version 1.
//!
//! Decoding never trusts a length: a malformed envelope is an error naming the field, which
//! the relay dead-letters while the rest flows.

mod statements;

pub use statements::{SlotCheckRow, WalSlotIdentity, WalStatements, check_wal_slot};

use uuid::Uuid;

use crate::relay::OutboxRecord;
use crate::table::{Table, TableNames};
use crate::{NewOutboxRow, Result, headers_from_json};

/// The envelope version writers emit.
pub const ENVELOPE_VERSION: u8 = 1;

/// The envelope version of a retried dead letter (version 1 plus the dead letter's id).
pub const RETRY_ENVELOPE_VERSION: u8 = 2;

/// PostgreSQL's longest identifier (a slot or publication name), in bytes.
const MAX_NAME_LEN: usize = 63;

/// Encodes `row`, written at `created_at_ms` (milliseconds since the Unix epoch), as a WAL
/// envelope.
///
/// # Errors
///
/// [`Error::SchemaIdOutOfRange`](crate::Error::SchemaIdOutOfRange) above `i32::MAX`, and
/// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) for a field over 4 GiB.
pub fn encode_envelope(row: &NewOutboxRow, created_at_ms: i64) -> Result<Vec<u8>> {
    encode(ENVELOPE_VERSION, row, created_at_ms)
}

/// Encodes the dead letter `dead_letter_id` (its record, as the dead-letter table holds it)
/// as a version-2 envelope, for `dead-letters retry` in WAL mode.
///
/// # Errors
///
/// As [`encode_envelope`].
pub fn encode_retry_envelope(record: &OutboxRecord, dead_letter_id: i64) -> Result<Vec<u8>> {
    let row = NewOutboxRow {
        event_id: record.event_id,
        topic: record.topic.clone(),
        event_key: record.event_key.clone(),
        event_type: record.event_type.clone(),
        schema_id: record.schema_id,
        content_type: record.content_type.clone(),
        payload: record.payload.clone(),
        headers: record.headers.clone(),
    };
    let mut out = encode(RETRY_ENVELOPE_VERSION, &row, record.created_at_ms)?;
    out.extend_from_slice(&dead_letter_id.to_be_bytes());
    Ok(out)
}

fn encode(version: u8, row: &NewOutboxRow, created_at_ms: i64) -> Result<Vec<u8>> {
    let schema_id = row.stored_schema_id()?;
    let headers = row.headers_json();
    let mut out = Vec::with_capacity(72 + row.record_size() + headers.len());
    out.push(version);
    out.extend_from_slice(row.event_id.as_bytes());
    out.extend_from_slice(&created_at_ms.to_be_bytes());
    let mut put = |bytes: &[u8]| -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| crate::Error::PayloadTooLarge {
            topic: row.topic.clone(),
            size: bytes.len(),
            limit: u32::MAX as usize,
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    };
    put(row.topic.as_bytes())?;
    match &row.event_key {
        Some(key) => {
            put(&[1])?;
            put(key)?;
        }
        None => put(&[0])?,
    }
    put(row.event_type.as_bytes())?;
    match schema_id {
        Some(id) => put(&id.to_be_bytes())?,
        None => put(&[])?,
    }
    put(row.content_type.as_bytes())?;
    put(&row.payload)?;
    put(headers.as_bytes())?;
    Ok(out)
}

/// Decodes an envelope into the record the relay produces, at position `id`.
///
/// # Errors
///
/// A reason naming the first field that does not decode (never quoting its content: a header
/// may be a credential), for the dead-letter table.
pub fn decode_envelope(bytes: &[u8], id: i64) -> std::result::Result<OutboxRecord, String> {
    decode_message(bytes, id).map(|(record, _)| record)
}

/// Decodes an envelope of either version into the record at position `id` and, for a
/// retried dead letter (version 2), the dead letter's id.
///
/// # Errors
///
/// As [`decode_envelope`].
pub fn decode_message(
    bytes: &[u8],
    id: i64,
) -> std::result::Result<(OutboxRecord, Option<i64>), String> {
    let mut r = Reader(bytes);
    let version = r.take(1, "version")?[0];
    if version != ENVELOPE_VERSION && version != RETRY_ENVELOPE_VERSION {
        return Err(format!(
            "envelope version {version} is not supported (this relay reads versions {ENVELOPE_VERSION} and {RETRY_ENVELOPE_VERSION})"
        ));
    }
    let event_id = Uuid::from_slice(r.take(16, "event_id")?).map_err(|e| e.to_string())?;
    let created_at_ms = i64::from_be_bytes(r.array("created_at")?);
    let topic = r.text("topic")?;
    let event_key = match r.field("event_key flag")? {
        [0] => None,
        [1] => Some(r.field("event_key")?.to_vec()),
        _ => return Err("event_key flag: neither 0 nor 1".to_owned()),
    };
    let event_type = r.text("event_type")?;
    let schema_id = match r.field("schema_id")? {
        [] => None,
        // Written from the column form (`i32`); a negative id is no registry's, as for a row.
        [a, b, c, d] => Some(
            crate::SchemaId::from_column(i32::from_be_bytes([*a, *b, *c, *d]))
                .ok_or_else(|| "schema_id: negative".to_owned())?,
        ),
        _ => return Err("schema_id: not 0 or 4 bytes".to_owned()),
    };
    let content_type = r.text("content_type")?;
    let payload = r.field("payload")?.to_vec();
    let headers = headers_from_json(&r.text("headers")?).map_err(|e| e.to_string())?;
    let dead_letter_id = if version == RETRY_ENVELOPE_VERSION {
        Some(i64::from_be_bytes(r.array("dead_letter_id")?))
    } else {
        None
    };
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last field", r.0.len()));
    }
    let record = OutboxRecord {
        id,
        event_id,
        topic,
        event_key,
        event_type,
        schema_id,
        content_type,
        payload,
        headers,
        created_at_ms,
    };
    Ok((record, dead_letter_id))
}

/// A bounds-checked cursor: every read names its field when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "{field}: truncated ({} bytes left, {n} needed)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &str) -> std::result::Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn field(&mut self, field: &str) -> std::result::Result<&'a [u8], String> {
        let len = u32::from_be_bytes(self.array(field)?);
        self.take(usize::try_from(len).unwrap_or(usize::MAX), field)
    }

    fn text(&mut self, field: &str) -> std::result::Result<String, String> {
        let bytes = self.field(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{field}: not UTF-8"))
    }
}

/// The names WAL mode uses for one outbox (one set of [`TableNames`]): the logical replication
/// slot, the (empty) publication `pgoutput` requires, and the prefix of the logical messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalNames {
    /// The replication slot: `<schema>_<prefix>_wal`, lowercase (PostgreSQL slot names allow
    /// only `a-z`, `0-9` and `_`).
    pub slot: String,
    /// The publication: the same name as the slot.
    pub publication: String,
    /// The prefix of the logical messages: `outbox:<schema>.<prefix>_events`.
    pub message_prefix: String,
}

impl WalNames {
    /// The names for the outbox whose tables are `names`.
    pub fn new(names: &TableNames) -> Self {
        let events = names.name(Table::Events);
        let prefix = events
            .as_str()
            .strip_suffix("_events")
            .unwrap_or(events.as_str());
        let schema = names.schema().map(|s| format!("{}_", s.as_str()));
        let mut slot =
            format!("{}{prefix}_wal", schema.as_deref().unwrap_or("")).to_ascii_lowercase();
        if slot.len() > MAX_NAME_LEN {
            // Identifiers are ASCII, so any byte index is a char boundary.
            use sha2::Digest;
            let digest = sha2::Sha256::digest(slot.as_bytes());
            let tag: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            slot = format!("{}_{tag}", &slot[..MAX_NAME_LEN - 13]);
        }
        let message_prefix = match names.schema() {
            Some(schema) => format!("outbox:{}.{}", schema.as_str(), events.as_str()),
            None => format!("outbox:{}", events.as_str()),
        };
        Self {
            publication: slot.clone(),
            slot,
            message_prefix,
        }
    }
}
