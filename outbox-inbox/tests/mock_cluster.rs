//! The runner on rdkafka's mock cluster, with an in-memory backend: offsets are committed only
//! after `apply` succeeded, and hostile records are dead-lettered with their reason while the
//! partition moves on.
//!
//! The handover at a revoke is not tested here: the mock group coordinator refuses every
//! OffsetCommit while it waits for members to rejoin (REBALANCE_IN_PROGRESS, where a real
//! broker accepts the current generation's commits), so the commit a revoke makes cannot
//! land on it. `examples/inbox/tests/processes.rs` runs two consumers in one group on the
//! test broker instead.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outbox_core::encode::EventCodec;
use outbox_core::registry::{MemorySchemaStore, Registry};
use outbox_core::{PoisonPolicy, Schema};
use outbox_inbox::{
    Applied, ApplyError, ClientConfig, DeadLetter, Inbox, InboxBackend, InboxEvent, InboxSettings,
    Reason,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const SCHEMA: &str = r#"{"type":"record","name":"Tick","fields":[{"name":"n","type":"long"}]}"#;

/// What the backend saw, in order.
#[derive(Default)]
struct Seen {
    applied: Vec<(String, i64)>,
    calls: Vec<String>,
    dead: Vec<(i64, Reason)>,
}

/// An in-memory backend: `fail` store errors for `fail_id` before it applies.
#[derive(Default)]
struct Memory {
    seen: Mutex<Seen>,
    ids: Mutex<HashSet<String>>,
    fail_id: String,
    fail: AtomicU32,
}

struct Backend(Arc<Memory>);

impl InboxBackend for Backend {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Ok(None)
    }

    async fn apply(&self, _: &str, event: &InboxEvent) -> Result<Applied, ApplyError> {
        let m = &self.0;
        m.seen.lock().expect("lock").calls.push(event.ce_id.clone());
        let failing = event.ce_id == m.fail_id
            && m.fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failing {
            return Err(ApplyError::Store(outbox_core::Error::Store {
                operation: "test: apply",
                retryable: true,
                source: "the test's database is down".into(),
            }));
        }
        if !m.ids.lock().expect("lock").insert(event.ce_id.clone()) {
            return Ok(Applied::Duplicate);
        }
        let mut seen = m.seen.lock().expect("lock");
        seen.applied.push((event.ce_id.clone(), event.offset));
        Ok(Applied::Processed)
    }

    async fn dead_letter(&self, _: &str, letter: DeadLetter<'_>) -> outbox_core::Result<()> {
        let mut seen = self.0.seen.lock().expect("lock");
        seen.dead.push((letter.offset, letter.reason.clone()));
        Ok(())
    }

    async fn dead_letter_keys(&self, _: &str) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }

    async fn purge(&self, _: &str, _: Duration) -> outbox_core::Result<u64> {
        Ok(0)
    }
}

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
    let (_, id) = registry().await;
    let codec = EventCodec::new(
        "ticks-value",
        id,
        Schema::parse_str(SCHEMA).expect("schema"),
    );
    Fixture {
        _cluster: cluster,
        bootstrap,
        producer,
        codec,
    }
}

/// A registry holding the test schema (the same id every time: the first registered), and
/// that id.
async fn registry() -> (Registry<MemorySchemaStore>, outbox_core::SchemaId) {
    let registry = Registry::new(MemorySchemaStore::default());
    let schema = Schema::parse_str(SCHEMA).expect("schema");
    let registered = registry
        .register("ticks-value", &schema)
        .await
        .expect("register");
    (registry, registered.id)
}

impl Fixture {
    fn tick(&self, n: i64) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Tick {
            n: i64,
        }
        self.codec.encode(&Tick { n }).expect("encode")
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

fn settings(group: &str, topic: &str) -> InboxSettings {
    let mut settings = InboxSettings::new(group, [topic]);
    settings.commit_interval = Duration::from_millis(50);
    settings.backoff = Duration::from_millis(50);
    settings.max_backoff = Duration::from_millis(100);
    settings.poison_policy = PoisonPolicy::Skip;
    settings
}

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<outbox_inbox::Result<()>>,
);

async fn start(memory: &Arc<Memory>, f: &Fixture, settings: InboxSettings) -> Running {
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &f.bootstrap);
    let backend = Backend(Arc::clone(memory));
    let inbox = Inbox::new(backend, registry().await.0, kafka, settings).expect("inbox");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move {
        let _ = stopped.await;
    }));
    (stop, runner)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let offsets: Vec<i64> = seen.dead.iter().map(|(o, _)| *o).collect();
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
