//! The WAL envelope: every column survives a round trip, and hostile bytes are refused with
//! a reason, never a panic.

use outbox_core::relay::OutboxRecord;
use outbox_core::table::TableNames;
use outbox_core::wal::{
    ENVELOPE_VERSION, RETRY_ENVELOPE_VERSION, WalNames, decode_envelope, decode_message,
    encode_envelope, encode_retry_envelope,
};
use outbox_core::{NewOutboxRow, SchemaId};
use uuid::Uuid;

fn row(key: Option<&[u8]>, schema_id: Option<u32>) -> NewOutboxRow {
    NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: "orders".to_owned(),
        event_key: key.map(<[u8]>::to_vec),
        event_type: "com.acme.OrderPlaced".to_owned(),
        schema_id: schema_id.map(SchemaId::new),
        content_type: "application/vnd.apache.avro+binary".to_owned(),
        payload: vec![0, 0, 0, 0, 7, 1, 2, 3],
        headers: vec![
            ("traceparent".to_owned(), "00-abc-def-01".to_owned()),
            ("x".to_owned(), "1".to_owned()),
            ("x".to_owned(), "2".to_owned()),
        ],
    }
}

#[test]
fn every_column_round_trips() {
    for (key, schema_id) in [
        (Some(&b"order-1"[..]), Some(7)),
        (None, None),
        (Some(&b""[..]), Some(0)),
    ] {
        let row = row(key, schema_id);
        let bytes = encode_envelope(&row, 1_700_000_000_123).expect("encode");
        assert_eq!(bytes[0], ENVELOPE_VERSION);
        let record = decode_envelope(&bytes, 42).expect("decode");
        assert_eq!(record.id, 42);
        assert_eq!(record.event_id, row.event_id);
        assert_eq!(record.topic, row.topic);
        assert_eq!(record.event_key, row.event_key);
        assert_eq!(record.event_type, row.event_type);
        assert_eq!(record.schema_id, schema_id.map(SchemaId::new));
        assert_eq!(record.content_type, row.content_type);
        assert_eq!(record.payload, row.payload);
        assert_eq!(record.headers, row.headers);
        assert_eq!(record.created_at_ms, 1_700_000_000_123);
    }
}

#[test]
fn a_retried_dead_letter_carries_its_id() {
    let row = row(Some(b"order-9"), Some(3));
    let record = decode_envelope(&encode_envelope(&row, 77).expect("encode"), 5).expect("decode");
    let bytes = encode_retry_envelope(&record, 1234).expect("encode retry");
    assert_eq!(bytes[0], RETRY_ENVELOPE_VERSION);
    let (again, dead_letter_id) = decode_message(&bytes, 99).expect("decode retry");
    assert_eq!(dead_letter_id, Some(1234));
    assert_eq!(again, OutboxRecord { id: 99, ..record });
    // A version-1 envelope is no retry; truncations of version 2 fail with a reason.
    let (_, none) = decode_message(&encode_envelope(&row, 77).expect("encode"), 1).expect("v1");
    assert_eq!(none, None);
    for len in 0..bytes.len() {
        assert!(decode_message(&bytes[..len], 1).is_err());
    }
}

#[test]
fn schema_ids_above_i32_are_refused_at_encode() {
    assert!(encode_envelope(&row(None, Some(u32::MAX)), 0).is_err());
}

#[test]
fn hostile_envelopes_are_refused_with_a_reason() {
    let good = encode_envelope(&row(Some(b"k"), Some(1)), 5).expect("encode");
    // Every truncation fails, naming a field, and never panics.
    for len in 0..good.len() {
        let reason = decode_envelope(&good[..len], 1).expect_err("truncated");
        assert!(!reason.is_empty());
    }
    let mut other_version = good.clone();
    other_version[0] = 3;
    assert!(
        decode_envelope(&other_version, 1)
            .expect_err("version")
            .contains("version 3")
    );
    // Version 1's bytes under version 2 lack the dead letter's id.
    let mut as_retry = good.clone();
    as_retry[0] = RETRY_ENVELOPE_VERSION;
    assert!(
        decode_message(&as_retry, 1)
            .expect_err("no dead letter id")
            .starts_with("dead_letter_id: truncated")
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(
        decode_envelope(&trailing, 1)
            .expect_err("trailing")
            .contains("after the last field")
    );
    // A length of 4 GiB is refused without allocating it.
    let mut huge = good[..25].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(
        decode_envelope(&huge, 1)
            .expect_err("huge")
            .starts_with("topic: truncated")
    );
    // A header value is never quoted in the reason.
    let mut secret = row(None, None);
    secret.headers = vec![];
    let mut bytes = encode_envelope(&secret, 0).expect("encode");
    let n = bytes.len();
    bytes.truncate(n - 6);
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"\"Bearer s3cr\"");
    let reason = decode_envelope(&bytes, 1).expect_err("headers");
    assert!(
        reason.contains("headers") && !reason.contains("s3cr"),
        "{reason}"
    );
}

#[test]
fn names_derive_from_the_table_prefix() {
    let names = WalNames::new(&TableNames::default());
    assert_eq!(names.slot, "outbox_wal");
    assert_eq!(names.publication, "outbox_wal");
    assert_eq!(names.message_prefix, "outbox:outbox_events");
    let names = WalNames::new(
        &TableNames::with_prefix("Billing_Outbox")
            .expect("prefix")
            .in_schema("App")
            .expect("schema"),
    );
    assert_eq!(names.slot, "app_billing_outbox_wal");
    assert_eq!(names.message_prefix, "outbox:App.Billing_Outbox_events");
    let long = "p".repeat(40);
    let names = WalNames::new(
        &TableNames::with_prefix(&long)
            .expect("prefix")
            .in_schema(&"s".repeat(30))
            .expect("schema"),
    );
    assert_eq!(names.slot.len(), 63);
    assert!(
        names
            .slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
}
