//! Produces one record over the bare Kafka protocol (Produce v3, record batch v2), for what
//! rdkafka's producer cannot send: a header name that is not UTF-8 (its `Header::key` is a
//! `&str`; Kafka's protocol carries the name as bytes, and C, Go or raw clients send any).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// CRC-32C (Castagnoli), which a record batch carries over its attributes and records.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn varint(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn varbytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// One record batch of one record.
fn batch(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut record = vec![0u8]; // attributes
    varint(&mut record, 0); // timestamp delta
    varint(&mut record, 0); // offset delta
    varbytes(&mut record, key);
    varbytes(&mut record, value);
    varint(&mut record, headers.len() as i64);
    for (name, value) in headers {
        varbytes(&mut record, Some(name));
        varbytes(&mut record, *value);
    }
    let mut records = Vec::new();
    varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // From attributes on: what the CRC covers.
    let mut tail = Vec::new();
    tail.extend_from_slice(&0i16.to_be_bytes()); // attributes
    tail.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    tail.extend_from_slice(&now.to_be_bytes()); // base timestamp
    tail.extend_from_slice(&now.to_be_bytes()); // max timestamp
    tail.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    tail.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    tail.extend_from_slice(&1i32.to_be_bytes()); // records
    tail.extend_from_slice(&records);

    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    // Length: from the partition leader epoch to the end.
    batch.extend_from_slice(&((4 + 1 + 4 + tail.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);
    batch
}

/// Produces one record to `topic`'s `partition` on the single broker at `bootstrap` (its
/// leader), `acks=-1`, and checks the broker's answer.
pub(crate) fn produce(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) {
    let records = batch(key, value, headers);
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // api key: Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // version
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    string(&mut body, "raw-produce");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // topics
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes()); // partitions
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(&records);

    let address = bootstrap.split(',').next().expect("a bootstrap server");
    let mut stream = TcpStream::connect(address).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .expect("send");
    stream.write_all(&body).expect("send");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("the broker's answer");
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut answer).expect("the broker's answer");
    // correlation id, topics (1), name, partitions (1), index, then the error code.
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    let error = i16::from_be_bytes([answer[at], answer[at + 1]]);
    assert_eq!(error, 0, "the broker refused the raw record");
}
