//! What the blocking and the async diesel tests share: the events, their table names, the
//! databases' URLs and the consumer that reads what the relay produced.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::time::Duration;

use diesel::Connection;
use outbox_core::Event;
use outbox_core::avro::{AvroSchema, Schema as AvroSchemaDef};
use outbox_core::relay::OutboxRecord;
use outbox_core::table::TableNames;
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event the tests publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
pub struct OrderPlaced {
    pub order_id: String,
    pub total_cents: i64,
    pub tags: std::collections::HashMap<String, String>,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// Order `n`, with a few tags.
pub fn order(n: usize) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("order-{n}"),
        total_cents: n as i64 * 10,
        tags: [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

/// An event whose Rust type does not match its schema: publishing it is a schema violation.
#[derive(Debug, Serialize)]
pub struct Mismatched {
    pub order_id: i64,
}

impl AvroSchema for Mismatched {
    fn get_schema() -> AvroSchemaDef {
        AvroSchemaDef::parse_str(r#"{"type":"record","name":"Mismatched","fields":[{"name":"order_id","type":"string"}]}"#)
            .expect("valid")
    }
}

impl Event for Mismatched {
    const TOPIC: &'static str = "mismatched";
}

/// An event no outbox registers.
#[derive(Debug, Serialize, AvroSchema)]
pub struct Unregistered {
    pub id: String,
}

impl Event for Unregistered {
    const TOPIC: &'static str = "other";
}

/// Table names of their own for one test.
pub fn names() -> TableNames {
    TableNames::with_prefix(&format!("d{}", &Uuid::now_v7().simple().to_string()[20..]))
        .expect("prefix")
}

/// Whether this is CI, where a missing database fails the test.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The PostgreSQL test database.
pub fn pg_url() -> String {
    std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into())
}

/// The MariaDB test database.
pub fn mysql_url() -> String {
    std::env::var("OUTBOX_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A blocking connection to `url`, or `None` to skip (outside CI).
pub fn establish<C: Connection>(url: &str) -> Option<C> {
    match C::establish(url) {
        Ok(conn) => Some(conn),
        Err(e) if !ci() => {
            eprintln!("skipping: {url}: {e}");
            None
        }
        Err(e) => panic!("CI=true and {url} is unreachable: {e}"),
    }
}

/// The records' `ce_id` and value on topic `orders`, up to `n` of them (30 s at most).
pub fn read_values(bootstrap: &str, n: usize) -> Vec<(Uuid, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "diesel-test")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, rdkafka::Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("message");
        let id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
            .map(|v| Uuid::parse_str(&String::from_utf8_lossy(v)).expect("uuid"))
            .expect("ce_id");
        out.push((id, message.payload().unwrap_or_default().to_vec()));
    }
    out
}

/// An async connection to `url`, or `None` to skip (outside CI).
#[cfg(feature = "async")]
pub async fn establish_async<C: diesel_async::AsyncConnection>(url: &str) -> Option<C> {
    match C::establish(url).await {
        Ok(conn) => Some(conn),
        Err(e) if !ci() => {
            eprintln!("skipping: {url}: {e}");
            None
        }
        Err(e) => panic!("CI=true and {url} is unreachable: {e}"),
    }
}

/// Two rows written for the same event by different writers agree column by column, but for
/// their ids and times.
pub fn assert_same_columns(a: &OutboxRecord, b: &OutboxRecord) {
    assert_eq!(a.topic, b.topic);
    assert_eq!(a.event_key, b.event_key);
    assert_eq!(a.event_type, b.event_type);
    assert_eq!(a.schema_id, b.schema_id, "one registry: the same schema id");
    assert_eq!(a.content_type, b.content_type);
    assert_eq!(a.payload, b.payload, "byte-identical payloads");
    assert_eq!(a.headers, b.headers);
}

/// The library relay drains `store` (holding exactly the rows of `ids`, each for `event`) to a
/// mock cluster; a consumer then reads topic `orders`: each id once, each value decoding to
/// `event`.
pub async fn drain_and_read_back<DB: OutboxDatabase>(
    store: SqlxRelayStore<DB>,
    ids: &[Uuid],
    event: &OrderPlaced,
) {
    let kafka = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    kafka.create_topic("orders", 1, 1).expect("topic");
    let kafka_config = outbox_relay::config::KafkaConfig {
        bootstrap_servers: Some(kafka.bootstrap_servers()),
        ..Default::default()
    };
    let relay = outbox_relay::Relay::builder(
        store,
        outbox_relay::producer::producer(&kafka_config).expect("producer"),
    )
    .with_settings(outbox_relay::config::RelayConfig::default().relay)
    .with_instance("diesel-test")
    .build();
    let mut published = 0;
    while published < ids.len() {
        if let outbox_relay::Step::Drained { published: p, .. } =
            relay.drain_once().await.expect("step")
        {
            published += p;
            assert!(p > 0 || published == ids.len(), "the relay makes progress");
        }
    }
    let (bootstrap, n) = (kafka.bootstrap_servers(), ids.len());
    let values = tokio::task::spawn_blocking(move || read_values(&bootstrap, n))
        .await
        .expect("consumer");
    let schema = OrderPlaced::schema().expect("schema");
    assert_eq!(values.len(), ids.len(), "each event once");
    let got: HashSet<Uuid> = values.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, ids.iter().copied().collect::<HashSet<_>>());
    for (_, value) in values {
        let decoded: OrderPlaced =
            outbox_core::encode::wire::decode(&value, |_| Ok(schema.clone()), None)
                .expect("decodes");
        assert_eq!(&decoded, event);
    }
}
