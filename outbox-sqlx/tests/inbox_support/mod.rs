//! The inbox's shared test: events published through an outbox and drained by the relay to
//! the test broker, produced a second time on purpose, plus hostile records; an inbox on the
//! database under test must apply each event exactly once and set the hostile ones aside.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::relay::InsertRows as _;
use outbox_core::table::{Table, TableNames};
use outbox_core::{Event, NewOutboxRow, PoisonPolicy};
use outbox_inbox::{BoxError, ClientConfig, Inbox, InboxEvent, InboxSettings};
use outbox_sqlx::{InboxHandler, OutboxDatabase, SqlxInbox};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Pool, Sqlite, Transaction};
use uuid::Uuid;

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
    order_id: String,
    total_cents: i64,
}

/// The test's effect: one row per call, no unique key, so a second application shows.
pub(crate) struct Effects {
    table: String,
    /// Handler calls that fail on purpose (the first call for order `o-3`).
    failures_left: AtomicU32,
}

impl<DB: OutboxDatabase> InboxHandler<DB> for Effects
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    type Event = OrderPlacedV1;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: OrderPlacedV1,
        meta: &InboxEvent,
    ) -> Result<(), BoxError> {
        if event.order_id == "o-3"
            && self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err("a passing failure, on purpose".into());
        }
        let sql = format!(
            "INSERT INTO {} (ce_id, order_id, total_cents) VALUES ('{}', '{}', {})",
            self.table, meta.ce_id, event.order_id, event.total_cents
        );
        sqlx::query::<DB>(AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The test broker, or a skip (a failure under `CI=true`).
pub(crate) fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.is_empty() => Some(servers),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but KAFKA_BOOTSTRAP_SERVERS is not set (.ci/run starts the broker)")
        }
        _ => {
            eprintln!("skipping: KAFKA_BOOTSTRAP_SERVERS is not set");
            None
        }
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in results {
        result.expect("topic created");
    }
}

/// The upstream: an outbox on SQLite drained by the relay to `topic`. Returns the registry
/// the consumer decodes with (the upstream's embedded one).
async fn publish_through_relay(
    bootstrap: &str,
    topic: &str,
    n: usize,
    dir: &std::path::Path,
) -> outbox_core::registry::Registry<outbox_sqlx::SqlxSchemaStore<Sqlite>> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("upstream.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .build()
        .await
        .expect("outbox");
    let codec = outbox.register::<OrderPlaced>().await.expect("register");
    let rows: Vec<NewOutboxRow> = (0..n)
        .map(|i| {
            let event = OrderPlaced {
                order_id: format!("o-{i}"),
                total_cents: i as i64 * 100,
                currency: "EUR".into(),
            };
            let mut row = NewOutboxRow::from_event(&codec, &event).expect("row");
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
/// schema id, a value over the limit, a `ce_id` that is not UTF-8.
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
    let hostile: [(Option<OwnedHeaders>, &[u8]); 5] = [
        (None, b"\0\0\0\0\x01no ce_id"),
        (Some(ce(b"garbage-1")), b"not avro at all"),
        (Some(ce(b"unknown-schema-1")), b"\0\x7f\xff\xff\xf0\x02"),
        (Some(ce(b"huge-1")), &huge),
        (Some(ce(b"\xff\xfe")), b"\0\0\0\0\x01"),
    ];
    for (headers, value) in hostile {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .key(b"poison")
            .payload(value);
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

/// The whole scenario on `pool`: every event applied once, duplicates skipped (counted),
/// hostile records dead-lettered with their reason, the partition moving on.
pub(crate) async fn exactly_once<DB: OutboxDatabase>(pool: Pool<DB>)
where
    Effects: InboxHandler<DB>,
{
    let Some(bootstrap) = broker() else { return };
    let n = 20;
    let id = Uuid::now_v7().simple().to_string();
    let topic = format!("inbox-{id}");
    let names = TableNames::with_prefix(&format!("i{}", &id[20..])).expect("names");
    let effects = format!("{}_effects", names.name(Table::Inbox));
    create_topic(&bootstrap, &topic, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = publish_through_relay(&bootstrap, &topic, n, dir.path()).await;
    duplicate_and_poison(&bootstrap, &topic, n).await;

    let mut conn = pool.acquire().await.expect("connection");
    let text = if DB::DIALECT == outbox_core::table::Dialect::MySql {
        "VARCHAR(255)"
    } else {
        "TEXT"
    };
    DB::run(&mut conn, &format!("CREATE TABLE {effects} (ce_id {text} NOT NULL, order_id {text} NOT NULL, total_cents BIGINT NOT NULL)"), vec![]).await.expect("effects table");
    let handler = Effects {
        table: effects.clone(),
        failures_left: AtomicU32::new(1),
    };
    let backend = SqlxInbox::new(pool.clone(), &names, handler);
    backend.migrate(&names).await.expect("migrate inbox");
    let mut settings = InboxSettings::new(format!("g-{id}"), [topic.clone()]);
    settings.backoff = Duration::from_millis(10);
    settings.max_value_bytes = 64 * 1024;
    settings.poison_policy = PoisonPolicy::Skip;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap);
    let inbox = Inbox::new(backend, registry, config, settings).expect("inbox");
    let metrics = inbox.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move { drop(stopped.await) }));
    let total = 2 * n as u64 + 5;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = metrics.processed.get() + metrics.duplicates.get() + metrics.dead_lettered.get();
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

    assert_eq!(metrics.processed.get(), n as u64, "each event applied once");
    assert!(
        metrics.duplicates.get() > 0,
        "the copies were skipped as duplicates"
    );
    assert_eq!(metrics.duplicates.get(), n as u64);
    assert_eq!(
        metrics.dead_lettered.get(),
        5,
        "the hostile records were set aside"
    );
    assert!(
        metrics.handler_failures.get() >= 1,
        "the failing handler was retried"
    );
    let count = |sql: String| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.expect("connection");
            let rows = DB::rows(&mut conn, &sql, vec![], &[outbox_sqlx::Column::I64])
                .await
                .expect("count");
            match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
                Some(outbox_sqlx::Value::I64(v)) => v,
                other => panic!("count: {other:?}"),
            }
        }
    };
    assert_eq!(
        count(format!("SELECT COUNT(*) FROM {effects}")).await,
        n as i64,
        "rows downstream exactly once"
    );
    assert_eq!(
        count(format!("SELECT COUNT(DISTINCT order_id) FROM {effects}")).await,
        n as i64
    );
    let int = if DB::DIALECT == outbox_core::table::Dialect::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    assert_eq!(
        count(format!(
            "SELECT CAST(SUM(total_cents) AS {int}) FROM {effects}"
        ))
        .await
        .max(0),
        (0..n as i64).map(|i| i * 100).sum::<i64>()
    );
    let inbox_table = names.qualified(DB::DIALECT, Table::Inbox);
    assert_eq!(
        count(format!("SELECT COUNT(*) FROM {inbox_table}")).await,
        n as i64
    );
    let dead = names.qualified(DB::DIALECT, Table::InboxDeadLetters);
    let reasons = DB::rows(
        &mut conn,
        &format!("SELECT reason FROM {dead} ORDER BY record_offset"),
        vec![],
        &[outbox_sqlx::Column::Text],
    )
    .await
    .expect("reasons");
    let reasons: Vec<String> = reasons
        .into_iter()
        .flatten()
        .map(|v| match v {
            outbox_sqlx::Value::Text(t) => t,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
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
    for table in [effects, inbox_table, dead] {
        DB::run(&mut conn, &format!("DROP TABLE {table}"), vec![])
            .await
            .expect("drop");
    }
}
