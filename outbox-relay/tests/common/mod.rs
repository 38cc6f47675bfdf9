//! Shared pieces of the relay tests: a mock Kafka cluster, a consumer that reads a topic
//! back, events, database pools, relay settings.

#![allow(dead_code, unreachable_pub)]

pub mod broker;
pub mod http;
pub mod isolated;
mod process;

// Each test crate uses some of them.
#[allow(unused_imports)]
pub use process::{relay_command, relay_output, spawn_relay, stop, stop_gracefully};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use outbox_core::table::TableNames;
use outbox_relay::config::RelayConfig;
use outbox_relay::settings::Settings;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A record read back from the topic, owned (holding borrowed messages hangs teardown).
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub timestamp: Option<i64>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn ce_id(&self) -> Uuid {
        Uuid::parse_str(self.header("ce_id").expect("ce_id header")).expect("ce_id is a UUID")
    }
}

/// A mock cluster with `topic` created.
pub fn cluster(
    brokers: i32,
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(brokers).expect("mock cluster");
    cluster
        .create_topic(topic, partitions, brokers.min(3))
        .expect("topic");
    cluster
}

/// A topic name no other test uses.
pub fn fresh_topic(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// Reads `topic` from the beginning until `expected` distinct `ce_id`s arrived (or the
/// timeout), in partition order.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    consume_with(&[], bootstrap, topic, partitions, expected, timeout)
}

/// [`consume`] with extra client properties (TLS, SASL).
pub fn consume_with(
    properties: &[(&str, &str)],
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-tests")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (key, value) in properties {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut ids = std::collections::HashSet::new();
    while Instant::now() < deadline && ids.len() < expected {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consume");
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = Received {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp: message.timestamp().to_millis(),
        };
        drop(message);
        if let Some(id) = record.header("ce_id") {
            ids.insert(id.to_owned());
        }
        received.push(record);
    }
    received
}

/// Per key, the `ce_id`s in partition order, first occurrences only (consumer dedup).
pub fn first_occurrences_by_key(records: &[Received]) -> HashMap<Vec<u8>, Vec<Uuid>> {
    let mut sorted: Vec<&Received> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut seen = std::collections::HashSet::new();
    let mut by_key: HashMap<Vec<u8>, Vec<Uuid>> = HashMap::new();
    for r in sorted {
        let id = r.ce_id();
        if seen.insert(id) {
            by_key
                .entry(r.key.clone().unwrap_or_default())
                .or_default()
                .push(id);
        }
    }
    by_key
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
pub struct OrderPlaced {
    pub order_id: String,
    pub seq: i64,
    pub note: String,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

pub fn order(key: usize, seq: usize) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("order-{key}"),
        seq: seq as i64,
        note: String::new(),
    }
}

/// Table names no other test uses.
pub fn fresh_names() -> TableNames {
    TableNames::with_prefix(&format!("r{}", &Uuid::now_v7().simple().to_string()[20..]))
        .expect("prefix")
}

/// The table prefix of `names` (`r1a2b` for `r1a2b_events`), for `--table-prefix`.
pub fn prefix(names: &TableNames) -> String {
    names
        .name(outbox_core::table::Table::Events)
        .to_string()
        .trim_end_matches("_events")
        .to_owned()
}

pub const PG_URL: &str = "postgres://postgres@localhost:5432/test";
pub const MYSQL_URL: &str = "mysql://root@localhost:3306/test";

pub fn pg_url() -> String {
    std::env::var("OUTBOX_TEST_PG_URL").unwrap_or_else(|_| PG_URL.to_owned())
}

pub fn mysql_url() -> String {
    std::env::var("OUTBOX_TEST_MYSQL_URL").unwrap_or_else(|_| MYSQL_URL.to_owned())
}

/// A pool, or (outside CI) `None` to skip.
pub async fn pool<DB: outbox_sqlx::OutboxDatabase>(url: &str) -> Option<sqlx::Pool<DB>> {
    match outbox_relay::database::connect::<DB>(url).await {
        Ok(pool) => Some(pool),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: {url} unreachable: {e}");
            None
        }
        Err(e) => panic!("CI=true and {url} is unreachable: {e}"),
    }
}

/// PostgreSQL and its URL, or (outside CI) `None` to skip.
pub async fn postgres() -> Option<(sqlx::Pool<sqlx::Postgres>, String)> {
    let url = pg_url();
    Some((pool(&url).await?, url))
}

/// MariaDB/MySQL and its URL, or (outside CI) `None` to skip.
pub async fn mariadb() -> Option<(sqlx::Pool<sqlx::MySql>, String)> {
    let url = mysql_url();
    Some((pool(&url).await?, url))
}

/// A SQLite file in `dir`, and its URL.
pub async fn sqlite(dir: &tempfile::TempDir) -> (sqlx::Pool<sqlx::Sqlite>, String) {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    (pool(&url).await.expect("sqlite"), url)
}

/// Relay settings for tests: fast polling, short leases.
pub fn config(url: &str, bootstrap: &str, names: &TableNames, extra: &str) -> Settings {
    let prefix = prefix(names);
    let text = format!(
        r#"
database_url = "{url}"
table_prefix = "{prefix}"
[kafka]
bootstrap_servers = "{bootstrap}"
[relay]
batch_size = 500
poll_interval = "20ms"
lease_ttl = "2s"
shutdown_timeout = "10s"
{extra}
[http]
listen = ""
[registry]
listen = ""
"#
    );
    Settings::new(RelayConfig::from_toml(&text).expect("test config")).expect("valid config")
}

/// A service's setting from the environment, or (outside CI) `None` to skip.
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but {var} is not set (.ci/setup sets it)")
        }
        _ => {
            eprintln!("skipping: {var} is not set (run .ci/test)");
            None
        }
    }
}

/// The test TLS material `.ci/tls.sh` makes: a CA, server and client certificates, a second
/// (untrusted) CA, and the password of the TLS-only database users.
#[derive(Debug, Clone)]
pub struct Tls {
    pub dir: std::path::PathBuf,
}

impl Tls {
    /// `OUTBOX_TEST_TLS_DIR`, or (outside CI) `None` to skip.
    pub fn from_env() -> Option<Self> {
        service_env("OUTBOX_TEST_TLS_DIR").map(|dir| Self { dir: dir.into() })
    }

    /// The path of `name` (`ca.crt`, `other-ca.crt`, `client.crt`, `client.key`, `password`).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The password of the database users `outbox_tls`.
    pub fn password(&self) -> String {
        std::fs::read_to_string(self.dir.join("password"))
            .expect("password file")
            .trim()
            .to_owned()
    }
}

/// A port free at the time of asking (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Three tests of one body, one per database: `on_each_database! { #[tokio::test] body:
/// postgres => name_on_postgres, mariadb => name_on_mariadb, sqlite => name_on_sqlite }`
/// calls `body(pool, &url).await` on each (PostgreSQL and MariaDB skipped when unreachable
/// outside CI, SQLite in a temporary directory). Any subset of the three may be named.
#[macro_export]
macro_rules! on_each_database {
    (#[$test:meta] $body:ident: $($db:ident => $name:ident),+ $(,)?) => {
        $( $crate::on_each_database!(@one #[$test] $body $db $name); )+
    };
    (@one #[$test:meta] $body:ident sqlite $name:ident) => {
        #[$test]
        async fn $name() {
            let dir = tempfile::tempdir().expect("dir");
            let (pool, url) = $crate::common::sqlite(&dir).await;
            $body(pool, &url).await;
        }
    };
    (@one #[$test:meta] $body:ident $db:ident $name:ident) => {
        #[$test]
        async fn $name() {
            let Some((pool, url)) = $crate::common::$db().await else {
                return;
            };
            $body(pool, &url).await;
        }
    };
}

/// Asserts that `records` hold every event of `ids_by_writer` (each writer's ids in publish
/// order, one writer per key set) and nothing else, and that, per key, the first occurrences
/// are in publish order: at-least-once, duplicates allowed, loss and reordering not.
pub fn assert_every_event_in_key_order(records: &[Received], ids_by_writer: &[Vec<Uuid>]) {
    let ids: HashSet<Uuid> = ids_by_writer.iter().flatten().copied().collect();
    let got: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(
        got.len(),
        ids.len(),
        "every event reached Kafka ({} records read)",
        records.len()
    );
    assert_eq!(got, ids, "every event, nothing else");
    let position: HashMap<Uuid, usize> = ids_by_writer
        .iter()
        .flat_map(|ids| ids.iter().enumerate().map(|(i, id)| (*id, i)))
        .collect();
    for (key, seen) in first_occurrences_by_key(records) {
        let positions: Vec<usize> = seen.iter().map(|id| position[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {} out of order",
            String::from_utf8_lossy(&key)
        );
    }
}

/// An outbox on `pool` over the tables `names`, with [`OrderPlaced`] registered.
pub async fn order_outbox<DB: outbox_sqlx::OutboxDatabase>(
    pool: &sqlx::Pool<DB>,
    names: &TableNames,
) -> outbox_sqlx::Outbox<DB> {
    outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .build()
        .await
        .expect("outbox")
}

/// A relay over `config`'s store on `pool` and its producer, as the instance `solo`.
pub fn solo_relay<DB: outbox_sqlx::OutboxDatabase>(
    config: &Settings,
    pool: &sqlx::Pool<DB>,
) -> outbox_relay::Relay<outbox_sqlx::SqlxRelayStore<DB>> {
    outbox_relay::Relay::builder(
        config.relay_store(pool.clone()).expect("store"),
        outbox_relay::producer::producer(&config.kafka).expect("producer"),
    )
    .with_settings(config.relay.clone())
    .with_instance("solo")
    .build()
}
