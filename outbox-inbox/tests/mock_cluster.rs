//! The runner on rdkafka's mock cluster, with an in-memory backend: offsets are committed only
//! after `apply` succeeded, and hostile records are dead-lettered with their reason while the
//! partition moves on.
//!
//! The handover at a revoke is not tested here: the mock group coordinator refuses every
//! OffsetCommit while it waits for members to rejoin (REBALANCE_IN_PROGRESS, where a real
//! broker accepts the current generation's commits), so the commit a revoke makes cannot
//! land on it. `examples/inbox/tests/processes.rs` runs two consumers in one group on the
//! test broker instead.

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use outbox_core::Schema;
use outbox_core::encode::EventCodec;
use outbox_inbox::{ClientConfig, InboxSettings, Reason};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::{Memory, Running, settings, until};

struct Fixture {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
    producer: FutureProducer,
    codec: EventCodec,
}

async fn fixture(topic: &str, partitions: i32) -> Fixture {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let codec = support::tick_codec().await;
    Fixture {
        _cluster: cluster,
        bootstrap,
        producer,
        codec,
    }
}

impl Fixture {
    fn tick(&self, n: i64) -> Vec<u8> {
        support::tick(&self.codec, n)
    }

    async fn send(&self, topic: &str, partition: i32, ce_id: Option<&[u8]>, value: &[u8]) {
        let mut record = FutureRecord::<(), [u8]>::to(topic)
            .partition(partition)
            .payload(value);
        if let Some(id) = ce_id {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "ce_id",
                value: Some(id),
            }));
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    /// Produces a record with exactly these headers (`None` values are headers without a
    /// value), no key, and `value` (`None`: a tombstone).
    async fn send_raw(&self, topic: &str, headers: &[(&str, Option<&[u8]>)], value: Option<&[u8]>) {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header { key, value: *value });
        }
        let mut record = FutureRecord::<(), [u8]>::to(topic)
            .partition(0)
            .headers(owned);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    /// The group's committed offset of `topic`'s `partition`, `None` before any commit.
    fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .expect("committed offsets");
        match committed
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        }
    }
}

async fn start(memory: &Arc<Memory>, f: &Fixture, settings: InboxSettings) -> Running {
    support::start(memory, &f.bootstrap, settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_only_after_apply_succeeded() {
    let (topic, group) = ("ticks-commit", "g-commit");
    let f = fixture(topic, 1).await;
    for i in 0..3 {
        let id = format!("id-{i}");
        f.send(topic, 0, Some(id.as_bytes()), &f.tick(i)).await;
    }
    let memory = Arc::new(Memory {
        fail_id: "id-1".to_owned(),
        fail: AtomicU32::new(u32::MAX),
        ..Memory::default()
    });
    let (stop, runner) = start(&memory, &f, settings(group, topic)).await;

    // id-0 applied, id-1 failing again and again: the commit stops at id-1's offset.
    until("id-1 retried", || {
        let seen = memory.seen.lock().expect("lock");
        seen.calls.iter().filter(|c| *c == "id-1").count() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.committed(group, topic, 0),
        Some(1),
        "only id-0 is committed"
    );

    // The database comes back: id-1 applies, then id-2, and the commit follows.
    memory.fail.store(0, Ordering::SeqCst);
    until("every offset committed", || {
        f.committed(group, topic, 0) == Some(3)
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");
    let seen = memory.seen.lock().expect("lock");
    let applied: Vec<_> = seen
        .applied
        .iter()
        .map(|(id, o)| (id.as_str(), *o))
        .collect();
    assert_eq!(applied, [("id-0", 0), ("id-1", 1), ("id-2", 2)]);
    assert!(seen.dead.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_dead_lettered_with_their_reason_and_the_partition_moves_on() {
    let (topic, group) = ("ticks-hostile", "g-hostile");
    let f = fixture(topic, 1).await;
    let mut unknown_schema = vec![0, 0, 0, 3, 231]; // schema id 999
    unknown_schema.extend_from_slice(&f.tick(1)[5..]);
    f.send(topic, 0, None, &f.tick(0)).await; // 0: no ce_id
    f.send(topic, 0, Some(&[0xff, 0xfe]), &f.tick(1)).await; // 1: not UTF-8
    f.send(topic, 0, Some(b"garbage"), b"garbage bytes").await; // 2: no frame
    f.send(topic, 0, Some(b"unknown"), &unknown_schema).await; // 3
    f.send(topic, 0, Some(b"oversized"), &[0; 2048]).await; // 4
    f.send(topic, 0, Some(b"fine"), &f.tick(5)).await; // 5
    let memory = Arc::new(Memory::default());
    let mut settings = settings(group, topic);
    settings.max_value_bytes = 1024;
    let (stop, runner) = start(&memory, &f, settings).await;
    until("the good record committed", || {
        f.committed(group, topic, 0) == Some(6)
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");

    let seen = memory.seen.lock().expect("lock");
    assert_eq!(seen.applied, [("fine".to_owned(), 5)]);
    let offsets: Vec<i64> = seen.dead.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    assert_eq!(seen.dead[0].1, Reason::MissingCeId);
    assert_eq!(seen.dead[1].1, Reason::CeIdNotUtf8);
    assert!(
        matches!(&seen.dead[2].1, Reason::Undecodable { detail } if detail.contains("magic byte")),
        "{:?}",
        seen.dead[2].1
    );
    assert!(
        matches!(&seen.dead[3].1, Reason::UnknownSchema { detail } if detail.contains("999")),
        "{:?}",
        seen.dead[3].1
    );
    assert_eq!(
        seen.dead[4].1,
        Reason::TooLarge {
            bytes: 2048,
            limit: 1024
        }
    );
}

/// A blob value (the second registered schema) of raw datum bytes.
fn blob_frame(datum: &[u8]) -> Vec<u8> {
    // Schema id 2, the blob's (see `support::registry`).
    let mut value = vec![0, 0, 0, 0, 2];
    value.extend_from_slice(datum);
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_and_ce_ids_are_dead_lettered_and_the_good_records_around_them_applied_once()
 {
    let (topic, group) = ("ticks-malformed", "g-malformed");
    let f = fixture(topic, 1).await;
    let (_, tick_id, blob_id) = support::registry().await;
    assert_eq!(
        (tick_id.get(), blob_id.get()),
        (1, 2),
        "the ids blob_frame assumes"
    );
    let ce = |id: &'static [u8]| [("ce_id", Some(id))];
    let good = f.tick(0);
    let mut truncated = f.tick(1);
    truncated.pop();
    let mut trailing = f.tick(2);
    trailing.push(0);
    let max_id = "m".repeat(255);
    let long_id = "l".repeat(256);
    // A string declaring 2^40 bytes; then an empty string and an array declaring 2^40 items;
    // then a negative length.
    let huge_string = blob_frame(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let huge_array = blob_frame(&[0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let negative = blob_frame(&[0x09]);
    f.send_raw(topic, &ce(b"good-0"), Some(&good)).await; // 0
    f.send_raw(topic, &ce(b"truncated"), Some(&truncated)).await; // 1
    f.send_raw(topic, &ce(b"trailing"), Some(&trailing)).await; // 2
    f.send_raw(topic, &ce(b"huge-string"), Some(&huge_string))
        .await; // 3
    f.send_raw(topic, &ce(b"huge-array"), Some(&huge_array))
        .await; // 4
    f.send_raw(topic, &ce(b"negative"), Some(&negative)).await; // 5
    f.send_raw(topic, &ce(b""), Some(&good)).await; // 6: empty ce_id
    f.send_raw(topic, &[("ce_id", Some(long_id.as_bytes()))], Some(&good))
        .await; // 7
    f.send_raw(topic, &[("ce_id", None)], Some(&good)).await; // 8: ce_id without a value
    f.send_raw(topic, &ce(b"nul\0id"), Some(&good)).await; // 9
    f.send_raw(topic, &ce(b"tombstone"), None).await; // 10: no key, no value
    f.send_raw(topic, &[("ce_id", Some(max_id.as_bytes()))], Some(&good))
        .await; // 11
    // 12: other headers' values need not be UTF-8.
    f.send_raw(
        topic,
        &[
            ("traceparent", Some(b"\xff\xfe")),
            ("ce_id", Some(b"good-12")),
        ],
        Some(&f.tick(12)),
    )
    .await;
    f.send_raw(topic, &ce(b"good-0"), Some(&good)).await; // 13: a copy of 0
    let memory = Arc::new(Memory::default());
    let (stop, runner) = start(&memory, &f, settings(group, topic)).await;
    until("every record committed", || {
        f.committed(group, topic, 0) == Some(14)
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");

    let seen = memory.seen.lock().expect("lock");
    let applied: Vec<(&str, i64)> = seen
        .applied
        .iter()
        .map(|(id, o)| (id.as_str(), *o))
        .collect();
    assert_eq!(
        applied,
        [
            ("good-0", 0),
            ("tombstone", 10),
            (max_id.as_str(), 11),
            ("good-12", 12)
        ],
        "the good records, once each; the copy of good-0 skipped"
    );
    let offsets: Vec<i64> = seen.dead.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let reason = |i: usize| seen.dead[i].1.to_string();
    for i in 0..5 {
        assert!(
            reason(i).starts_with("undecodable value: "),
            "{}",
            reason(i)
        );
    }
    assert!(
        reason(1).contains("bytes left after the datum"),
        "{}",
        reason(1)
    );
    assert_eq!(seen.dead[5].1, Reason::CeIdLength { bytes: 0 });
    assert_eq!(seen.dead[6].1, Reason::CeIdLength { bytes: 256 });
    assert_eq!(seen.dead[7].1, Reason::MissingCeId);
    assert_eq!(seen.dead[8].1, Reason::CeIdControlCharacter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_reader_schema_cannot_resolve_is_dead_lettered() {
    let (topic, group) = ("ticks-unresolvable", "g-unresolvable");
    let f = fixture(topic, 1).await;
    // A valid blob: s = "x", a = [1].
    let blob = blob_frame(&[0x02, b'x', 0x02, 0x02, 0x00]);
    f.send(topic, 0, Some(b"tick-0"), &f.tick(0)).await;
    f.send(topic, 0, Some(b"blob"), &blob).await;
    f.send(topic, 0, Some(b"tick-2"), &f.tick(2)).await;
    let memory = Arc::new(Memory {
        reader: Some(Schema::parse_str(support::SCHEMA).expect("schema")),
        ..Memory::default()
    });
    let (stop, runner) = start(&memory, &f, settings(group, topic)).await;
    until("every record committed", || {
        f.committed(group, topic, 0) == Some(3)
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");
    let seen = memory.seen.lock().expect("lock");
    assert_eq!(
        seen.applied,
        [("tick-0".to_owned(), 0), ("tick-2".to_owned(), 2)]
    );
    assert_eq!(
        seen.dead.len(),
        1,
        "{:?}",
        seen.dead
            .iter()
            .map(|d| d.1.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(seen.dead[0].0, 1);
    assert!(
        matches!(&seen.dead[0].1, Reason::Undecodable { .. }),
        "{}",
        seen.dead[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_applying_dead_letters_the_record_and_the_partition_moves_on() {
    let (topic, group) = ("ticks-panic", "g-panic");
    let f = fixture(topic, 1).await;
    f.send(topic, 0, Some(b"id-0"), &f.tick(0)).await;
    f.send(topic, 0, Some(b"boom"), &f.tick(1)).await;
    f.send(topic, 0, Some(b"id-2"), &f.tick(2)).await;
    let memory = Arc::new(Memory {
        panic_id: "boom".to_owned(),
        ..Memory::default()
    });
    let (stop, runner) = start(&memory, &f, settings(group, topic)).await;
    until("every record committed", || {
        f.committed(group, topic, 0) == Some(3)
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");
    let seen = memory.seen.lock().expect("lock");
    assert_eq!(
        seen.applied,
        [("id-0".to_owned(), 0), ("id-2".to_owned(), 2)]
    );
    assert_eq!(seen.dead.len(), 1);
    assert_eq!(seen.dead[0].0, 1);
    assert!(
        matches!(&seen.dead[0].1, Reason::Panicked { detail } if detail.contains("panics on purpose")),
        "{}",
        seen.dead[0].1
    );
}
