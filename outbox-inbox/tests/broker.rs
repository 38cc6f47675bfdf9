//! The runner on the test broker (`KAFKA_BOOTSTRAP_SERVERS`), with the in-memory backend, for
//! hostile records the mock cluster cannot carry: a 10 MiB value (it drops data past ~5 MiB
//! per partition) and header names that are not UTF-8 (sent over the bare protocol).

#[allow(dead_code)]
mod support;

// One copy of the broker helpers, shared with outbox-relay's tests.
#[allow(dead_code)]
#[path = "../../outbox-relay/tests/common/broker.rs"]
mod broker;

use std::sync::Arc;
use std::time::Duration;

use outbox_inbox::{ClientConfig, Reason};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{Memory, raw_produce, settings, until};

/// A fresh topic of one partition, and the group to consume it with.
async fn topic(bootstrap: &str, name: &str) -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let topic = format!("inbox-{name}-{id}");
    broker::create_topic(bootstrap, &topic, 1).await;
    (topic, format!("g-{id}"))
}

async fn send(producer: &FutureProducer, topic: &str, ce_id: &str, value: &[u8]) {
    let headers = OwnedHeaders::new().insert(Header {
        key: "ce_id",
        value: Some(ce_id),
    });
    let record = FutureRecord::<(), [u8]>::to(topic)
        .partition(0)
        .headers(headers)
        .payload(value);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Runs an inbox over `memory` until `n` records are handled, then stops it.
async fn consume(memory: &Arc<Memory>, bootstrap: &str, topic: &str, group: &str, n: usize) {
    let mut settings = settings(group, topic);
    settings.max_value_bytes = 1024 * 1024;
    let (stop, runner) = support::start(memory, bootstrap, settings).await;
    let memory = Arc::clone(memory);
    until("every record handled", || {
        let seen = memory.seen.lock().expect("lock");
        seen.applied.len() + seen.dead.len() >= n
    })
    .await;
    let _ = stop.send(());
    runner.await.expect("join").expect("runner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mib_value_is_dead_lettered_without_its_bytes_and_the_next_record_applied() {
    let Some(bootstrap) = broker::broker() else {
        return;
    };
    let (topic, group) = topic(&bootstrap, "huge").await;
    let codec = support::tick_codec().await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.max.bytes", (16 * 1024 * 1024).to_string())
        .create()
        .expect("producer");
    let huge = vec![0u8; 10 * 1024 * 1024];
    send(&producer, &topic, "before", &support::tick(&codec, 0)).await;
    send(&producer, &topic, "huge", &huge).await;
    send(&producer, &topic, "after", &support::tick(&codec, 2)).await;
    let memory = Arc::new(Memory::default());
    consume(&memory, &bootstrap, &topic, &group, 3).await;
    let seen = memory.seen.lock().expect("lock");
    assert_eq!(
        seen.applied,
        [("before".to_owned(), 0), ("after".to_owned(), 2)]
    );
    assert_eq!(
        seen.dead,
        [(
            1,
            Reason::TooLarge {
                bytes: 10 * 1024 * 1024,
                limit: 1024 * 1024
            },
            None
        )],
        "dead-lettered, its value not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_that_are_not_utf8_are_dead_lettered_and_the_partition_moves_on() {
    let Some(bootstrap) = broker::broker() else {
        return;
    };
    let (topic, group) = topic(&bootstrap, "header-names").await;
    let codec = support::tick_codec().await;
    let tick = |n| support::tick(&codec, n);
    let ce = |id: &'static [u8]| (b"ce_id".as_slice(), Some(id));
    let (t0, t1, t2, t3) = (tick(0), tick(1), tick(2), tick(3));
    raw_produce::produce(&bootstrap, &topic, 0, None, Some(&t0), &[ce(b"before")]);
    // A name that is not UTF-8 beside a good ce_id, then one in place of ce_id's.
    raw_produce::produce(
        &bootstrap,
        &topic,
        0,
        None,
        Some(&t1),
        &[(b"\xff\xfename", Some(b"x")), ce(b"bad-name")],
    );
    raw_produce::produce(
        &bootstrap,
        &topic,
        0,
        None,
        Some(&t2),
        &[(b"ce_id\xff", Some(b"bad-ce"))],
    );
    raw_produce::produce(&bootstrap, &topic, 0, None, Some(&t3), &[ce(b"after")]);
    let memory = Arc::new(Memory::default());
    consume(&memory, &bootstrap, &topic, &group, 4).await;
    let seen = memory.seen.lock().expect("lock");
    assert_eq!(
        seen.applied,
        [("before".to_owned(), 0), ("after".to_owned(), 3)]
    );
    let dead: Vec<(i64, Reason)> = seen.dead.iter().map(|(o, r, _)| (*o, r.clone())).collect();
    assert_eq!(
        dead,
        [
            (1, Reason::HeaderNameNotUtf8 { count: 1 }),
            (2, Reason::HeaderNameNotUtf8 { count: 1 })
        ]
    );
}
