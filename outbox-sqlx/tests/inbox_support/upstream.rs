//! The inbox tests' upstream, shared by `outbox-sqlx` and `outbox-diesel` (the latter
//! includes this file): events published through an outbox and drained by the relay to the test
//! broker, produced a second time on purpose, plus hostile records; then an inbox runs over the
//! backend under test until every record is handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::relay::InsertRows as _;
use outbox_core::table::{Table, TableNames};
use outbox_core::{Event, NewOutboxRow, PoisonPolicy};
use outbox_inbox::{ClientConfig, Inbox, InboxBackend, InboxMetrics, InboxSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// One copy of the broker helpers, shared with outbox-relay's tests.
#[path = "../../../outbox-relay/tests/common/broker.rs"]
mod broker;
pub(crate) use broker::{broker, create_topic};

/// Events published (each delivered twice).
pub(crate) const N: usize = 20;

/// Hostile records produced after them, each dead-lettered.
pub(crate) const HOSTILE: usize = 7;

/// What the producer writes: v2, with a field the consumer's v1 does not know.
#[derive(Debug, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
    currency: String,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "inbox-test-orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// What the consumer reads: v1.
#[derive(Debug, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
#[serde(rename = "OrderPlaced")]
pub(crate) struct OrderPlacedV1 {
    pub(crate) order_id: String,
    pub(crate) total_cents: i64,
}

/// The test effect's statement: one row per call (no unique key, so a second application
/// shows), with the event's own values. `ce_id`s and order ids are the test's own, no quoting.
pub(crate) fn effect_sql(table: &str, ce_id: &str, event: &OrderPlacedV1) -> String {
    format!(
        "INSERT INTO {table} (ce_id, order_id, total_cents) VALUES ('{ce_id}', '{}', {})",
        event.order_id, event.total_cents
    )
}

/// Whether the handler fails this call on purpose: the first call for order `o-3`.
pub(crate) fn fail_once(event: &OrderPlacedV1, failures_left: &AtomicU32) -> bool {
    event.order_id == "o-3"
        && failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
}

/// The upstream: an outbox on SQLite drained by the relay to `topic`. Returns the registry
/// the consumer decodes with (the upstream's embedded one).
pub(crate) async fn publish_through_relay<E: Event + 'static>(
    bootstrap: &str,
    topic: &str,
    events: &[E],
    dir: &std::path::Path,
) -> outbox_core::registry::Registry<outbox_sqlx::SqlxSchemaStore<sqlx::Sqlite>> {
    let n = events.len();
    let url = format!("sqlite://{}?mode=rwc", dir.join("upstream.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .build()
        .await
        .expect("outbox");
    let codec = outbox.register::<E>().await.expect("register");
    let rows: Vec<NewOutboxRow> = events
        .iter()
        .map(|event| {
            let mut row = NewOutboxRow::from_event(&codec, event).expect("row");
            row.topic = topic.to_owned();
            row
        })
        .collect();
    let store = outbox.relay_store();
    store.insert_rows(&rows).await.expect("insert");
    let kafka = outbox_relay::config::KafkaConfig {
        bootstrap_servers: Some(bootstrap.to_owned()),
        ..Default::default()
    };
    let relay = outbox_relay::Relay::builder(
        store,
        outbox_relay::producer::producer(&kafka).expect("producer"),
    )
    .with_instance("inbox-test")
    .build();
    let mut published = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while published < n {
        assert!(Instant::now() < deadline, "the relay drains the outbox");
        if let outbox_relay::Step::Drained { published: p, .. } =
            relay.drain_once().await.expect("step")
        {
            published += p;
        }
    }
    outbox_core::registry::Registry::new(outbox_sqlx::SqlxSchemaStore::new(
        pool,
        Arc::new(outbox.statements().clone()),
    ))
}

/// Reads `n` records of `topic` and produces each again, unchanged: the duplicates a relay
/// crash would cause, on purpose. Adds hostile records: no `ce_id`, garbage bytes, an unknown
/// schema id, a value over the limit, a `ce_id` that is not UTF-8, one with a NUL, a tombstone
/// (a handler needs a value).
async fn duplicate_and_poison(bootstrap: &str, topic: &str, n: usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("copy-{}", Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut copies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while copies.len() < n {
        assert!(Instant::now() < deadline, "read the relay's records back");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            copies.push(m.detach());
        }
    }
    drop(consumer);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for m in &copies {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).partition(m.partition());
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(value) = m.payload() {
            record = record.payload(value);
        }
        if let Some(headers) = m.headers() {
            record = record.headers(headers.clone());
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("duplicate");
    }
    let ce = |id: &[u8]| {
        OwnedHeaders::new().insert(Header {
            key: "ce_id",
            value: Some(id),
        })
    };
    let huge = vec![0u8; 100 * 1024];
    // A copy of a good event under a ce_id with a NUL, which PostgreSQL cannot store.
    let good = copies[0].payload().expect("a value");
    let hostile: [(Option<OwnedHeaders>, Option<&[u8]>); HOSTILE] = [
        (None, Some(b"\0\0\0\0\x01no ce_id")),
        (Some(ce(b"garbage-1")), Some(b"not avro at all")),
        (
            Some(ce(b"unknown-schema-1")),
            Some(b"\0\x7f\xff\xff\xf0\x02"),
        ),
        (Some(ce(b"huge-1")), Some(&huge)),
        (Some(ce(b"\xff\xfe")), Some(b"\0\0\0\0\x01")),
        (Some(ce(b"nul\0id")), Some(good)),
        (Some(ce(b"tombstone-1")), None),
    ];
    for (headers, value) in hostile {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .key(b"poison");
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("hostile record");
    }
}

/// One test's topic, table names and upstream, ready to consume.
pub(crate) struct Scenario {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) id: String,
    pub(crate) names: TableNames,
    registry: outbox_core::registry::Registry<outbox_sqlx::SqlxSchemaStore<sqlx::Sqlite>>,
    _dir: tempfile::TempDir,
}

impl Scenario {
    /// Publishes [`N`] events through the relay, produces them again and adds [`HOSTILE`]
    /// records; `None` when there is no test broker (outside CI).
    pub(crate) async fn prepare() -> Option<Self> {
        let bootstrap = broker()?;
        let id = Uuid::now_v7().simple().to_string();
        let topic = format!("inbox-{id}");
        let names = TableNames::with_prefix(&format!("i{}", &id[20..])).expect("names");
        create_topic(&bootstrap, &topic, 3).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let events: Vec<OrderPlaced> = (0..N)
            .map(|i| OrderPlaced {
                order_id: format!("o-{i}"),
                total_cents: i as i64 * 100,
                currency: "EUR".into(),
            })
            .collect();
        let registry = publish_through_relay(&bootstrap, &topic, &events, dir.path()).await;
        duplicate_and_poison(&bootstrap, &topic, N).await;
        Some(Self {
            bootstrap,
            topic,
            id,
            names,
            registry,
            _dir: dir,
        })
    }

    /// The table prefix of the test's inbox tables.
    pub(crate) fn prefix(&self) -> String {
        format!("i{}", &self.id[20..])
    }

    /// The upstream's SQLite database, whose embedded registry the consumer decodes with.
    pub(crate) fn upstream_db(&self) -> std::path::PathBuf {
        self._dir.path().join("upstream.db")
    }

    /// The name of the test's effects table.
    pub(crate) fn effects(&self) -> String {
        format!("{}_effects", self.names.name(Table::Inbox))
    }

    /// Runs an inbox over `backend` until every record is handled, stops it, and checks the
    /// counts: each event processed once, each copy skipped, the hostile records set aside,
    /// the failing handler retried.
    pub(crate) async fn consume<B: InboxBackend>(self, backend: B) -> Arc<InboxMetrics> {
        let mut settings = InboxSettings::new(format!("g-{}", self.id), [self.topic.clone()]);
        settings.backoff = Duration::from_millis(10);
        settings.max_value_bytes = 64 * 1024;
        settings.poison_policy = PoisonPolicy::Skip;
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        let inbox = Inbox::new(backend, self.registry, config, settings).expect("inbox");
        let metrics = inbox.metrics();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(inbox.run(async move { drop(stopped.await) }));
        let total = (2 * N + HOSTILE) as u64;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let seen =
                metrics.processed.get() + metrics.duplicates.get() + metrics.dead_lettered.get();
            if seen >= total {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the inbox handled {seen} of {total} records"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop.send(());
        runner.await.expect("join").expect("run");
        assert_eq!(metrics.processed.get(), N as u64, "each event applied once");
        assert!(
            metrics.duplicates.get() > 0,
            "the copies were skipped as duplicates"
        );
        assert_eq!(metrics.duplicates.get(), N as u64);
        assert_eq!(
            metrics.dead_lettered.get(),
            HOSTILE as u64,
            "the hostile records were set aside"
        );
        assert!(
            metrics.handler_failures.get() >= 1,
            "the failing handler was retried"
        );
        metrics
    }
}

/// The dead letters' reasons, in offset order, as the hostile records call for.
pub(crate) fn check_reasons(reasons: &[String]) {
    assert_eq!(reasons.len(), HOSTILE, "{reasons:?}");
    assert_eq!(reasons[0], "missing ce_id header");
    assert!(
        reasons[1].starts_with("undecodable value"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].starts_with("unknown schema id"),
        "{}",
        reasons[2]
    );
    assert_eq!(
        reasons[3],
        "value of 102400 bytes exceeds the limit of 65536 bytes"
    );
    assert_eq!(reasons[4], "ce_id header is not utf-8");
    assert_eq!(reasons[5], "ce_id header contains a control character");
    assert_eq!(
        reasons[6],
        "tombstone (no value) for a handler that needs an event"
    );
}
