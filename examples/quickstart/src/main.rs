//! # outbox quickstart
//!
//! Shows the whole path of an event, in one command and with nothing installed:
//! a schema contract (`order_placed.avsc`) registered at start-up; business transactions that
//! write an order row and publish an `OrderPlaced` event in the same transaction (three commit,
//! one rolls back, one is refused by schema validation); the relay draining the outbox to
//! Kafka; a consumer decoding what arrived with the registry; and a breaking schema change
//! refused with its incompatibilities.
//!
//! Guarantees it relies on: an event reaches Kafka iff its transaction committed (atomic
//! publish), nothing is written for an invalid event, and a row is deleted only after Kafka
//! acknowledged it.
//!
//! With nothing configured it uses a SQLite file and librdkafka's in-process mock cluster.
//! Set `DATABASE_URL` (PostgreSQL or MariaDB/MySQL) and `KAFKA_BOOTSTRAP_SERVERS` to run it
//! against real servers. `RUST_LOG=info` shows the logs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outbox_core::avro::{AvroSchema, Schema as AvroSchemaDef};
use outbox_core::encode::wire;
use outbox_core::relay::AdminStore;
use outbox_core::table::TableNames;
use outbox_core::{Error, Event, Schema};
use outbox_relay::config::RelayConfig;
use outbox_relay::{Relay, Step, producer, with_database};
use outbox_sqlx::{Outbox, OutboxDatabase};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event, as application code sees it. Its Avro schema is the contract file, which is
/// stricter than the Rust type: `currency` must be one of the enum's symbols.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer: String,
    total_cents: i64,
    currency: String,
}

impl AvroSchema for OrderPlaced {
    fn get_schema() -> AvroSchemaDef {
        AvroSchemaDef::parse_str(include_str!("../order_placed.avsc"))
            .expect("the contract is valid Avro")
    }
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// The application's own SQL, one small impl per database (the outbox itself is generic).
trait Orders: OutboxDatabase {
    async fn create_table(pool: &sqlx::Pool<Self>) -> sqlx::Result<()>;
    async fn insert(conn: &mut Self::Connection, order: &OrderPlaced) -> sqlx::Result<()>;
}

const CREATE_ORDERS: &str = "CREATE TABLE IF NOT EXISTS quickstart_orders \
    (id VARCHAR(64) PRIMARY KEY, customer VARCHAR(255) NOT NULL, total_cents BIGINT NOT NULL)";

macro_rules! orders_impl {
    ($db:ty, $insert:literal) => {
        impl Orders for $db {
            async fn create_table(pool: &sqlx::Pool<Self>) -> sqlx::Result<()> {
                sqlx::query(CREATE_ORDERS).execute(pool).await.map(drop)
            }
            async fn insert(conn: &mut Self::Connection, order: &OrderPlaced) -> sqlx::Result<()> {
                sqlx::query($insert)
                    .bind(&order.order_id)
                    .bind(&order.customer)
                    .bind(order.total_cents)
                    .execute(conn)
                    .await
                    .map(drop)
            }
        }
    };
}
orders_impl!(
    sqlx::Postgres,
    "INSERT INTO quickstart_orders VALUES ($1, $2, $3)"
);
orders_impl!(
    sqlx::MySql,
    "INSERT INTO quickstart_orders VALUES (?, ?, ?)"
);
orders_impl!(
    sqlx::Sqlite,
    "INSERT INTO quickstart_orders VALUES (?, ?, ?)"
);

/// What happened, for the closing line.
#[derive(Debug, Default)]
struct Summary {
    published: usize,
    rolled_back: usize,
    refused: usize,
    consumed: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let temp = std::env::temp_dir().join(format!("outbox-quickstart-{}.db", std::process::id()));
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", temp.display()));
    // Keep the mock cluster alive for the whole run when no broker is configured.
    let (bootstrap, _mock) = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) => (servers, None),
        Err(_) => {
            let mock = MockCluster::new(1).context("starting the in-process Kafka")?;
            mock.create_topic(OrderPlaced::TOPIC, 3, 1)
                .context("creating the topic")?;
            (mock.bootstrap_servers(), Some(mock))
        }
    };
    println!(
        "database: {}",
        if url.starts_with("sqlite") {
            "SQLite file (temporary)"
        } else {
            url.as_str()
        }
    );
    println!(
        "kafka:    {}",
        if _mock.is_some() {
            "in-process mock cluster"
        } else {
            bootstrap.as_str()
        }
    );
    let summary = with_database!(&url, |pool: DB| run::<DB>(pool, &bootstrap).await)?;
    let _ = std::fs::remove_file(&temp);
    println!(
        "\nsummary: published {}, rolled back {}, refused {}, consumed {}",
        summary.published, summary.rolled_back, summary.refused, summary.consumed
    );
    Ok(())
}

async fn run<DB: Orders>(pool: sqlx::Pool<DB>, bootstrap: &str) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let names = TableNames::with_prefix("quickstart")?;

    println!("\n1. Start-up: migrate the outbox tables, register the event schema");
    let outbox = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .build()
        .await?;
    let subject = "orders-value";
    let registered = outbox.registry().version(subject, None).await?;
    println!(
        "   {} registered under {subject}: version {}, id {}",
        registered.schema.full_name().unwrap_or_default(),
        registered.version,
        registered.id
    );
    DB::create_table(&pool).await?;

    println!("\n2. Business transactions: write the order and publish its event, atomically");
    let run_id = &Uuid::now_v7().simple().to_string()[24..];
    let order = |n: usize, customer: &str, cents: i64, currency: &str| OrderPlaced {
        order_id: format!("o-{run_id}-{n}"),
        customer: customer.to_owned(),
        total_cents: cents,
        currency: currency.to_owned(),
    };
    let mut published = Vec::new();
    for o in [
        order(1, "alice", 1250, "EUR"),
        order(2, "bob", 990, "USD"),
        order(3, "carol", 4200, "GBP"),
    ] {
        let mut tx = pool.begin().await?;
        DB::insert(&mut tx, &o).await?;
        published.push(outbox.publish(&mut *tx, &o).await?);
        tx.commit().await?;
        println!(
            "   committed   {} ({} {} {})",
            o.order_id, o.customer, o.total_cents, o.currency
        );
        summary.published += 1;
    }
    let declined = order(4, "dave", 15000, "EUR");
    let mut tx = pool.begin().await?;
    DB::insert(&mut tx, &declined).await?;
    outbox.publish(&mut *tx, &declined).await?;
    tx.rollback().await?; // payment declined: the order row and its event go together
    println!(
        "   rolled back {} (payment declined): its event is gone with it",
        declined.order_id
    );
    summary.rolled_back += 1;
    let invalid = order(5, "erin", 500, "XYZ");
    let mut tx = pool.begin().await?;
    DB::insert(&mut tx, &invalid).await?;
    match outbox.publish(&mut *tx, &invalid).await {
        Err(e @ Error::SchemaViolation { .. }) => {
            println!("   refused     {}: {e}", invalid.order_id);
            tx.rollback().await?;
            summary.refused += 1;
        }
        other => bail!("expected a schema violation, got {other:?}"),
    }

    println!("\n3. The relay drains the outbox to Kafka");
    let mut config = RelayConfig::default();
    config.kafka.bootstrap_servers = Some(bootstrap.to_owned());
    config.relay.source = "urn:outbox-quickstart".to_owned();
    let relay = Relay::builder(outbox.relay_store(), producer::producer(&config.kafka)?)
        .with_settings(config.relay)
        .with_instance("quickstart")
        .with_producer_config(config.kafka)?
        .build();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while sent < published.len() {
        if Instant::now() > deadline {
            bail!("the relay did not drain the outbox within 30 s");
        }
        match relay.drain_once().await? {
            Step::Drained { published, .. } => sent += published,
            Step::StandingBy => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let status = relay.store().status("outbox-relay").await?;
    println!(
        "   {sent} records acknowledged by Kafka; {} rows left in the outbox",
        status.backlog
    );

    println!("\n4. A consumer reads the topic and decodes each record with the registry");
    let wanted: HashSet<Uuid> = published.iter().copied().collect();
    let records = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.to_owned();
        move || consume(&bootstrap, &wanted)
    })
    .await??;
    for (key, ce_id, value) in &records {
        let (schema_id, _) = wire::split_frame(value)?;
        let writer = outbox.registry().schema_by_id(schema_id).await?;
        let event: OrderPlaced = wire::decode(value, |_| Ok(writer.clone()), None)?;
        println!(
            "   key={key} ce_id={ce_id} schema_id={schema_id} {}",
            serde_json::to_string(&event)?
        );
        summary.consumed += 1;
    }

    println!("\n5. A breaking schema change is refused before it ships");
    let v2 = Schema::parse_str(include_str!("../order_placed_v2_breaking.avsc"))?;
    let report = outbox.registry().check(subject, &v2).await?;
    println!(
        "   {subject} is {} under {}:",
        if report.is_compatible() {
            "compatible"
        } else {
            "incompatible"
        },
        report.mode
    );
    for p in &report.problems {
        println!("   - {} ({})", p.incompatibility, p.direction.as_str());
    }
    println!(
        "   fix: give new fields defaults and keep types promotable, or publish to a new stream (orders.v2)"
    );
    Ok(summary)
}

/// Reads the topic from the beginning until every wanted `ce_id` arrived: (key, ce_id, value).
fn consume(
    bootstrap: &str,
    wanted: &HashSet<Uuid>,
) -> anyhow::Result<Vec<(String, Uuid, Vec<u8>)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-quickstart")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(OrderPlaced::TOPIC), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            assignment.add_partition_offset(topic.name(), partition.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = Vec::new();
    while found.len() < wanted.len() && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let ce_id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
            .and_then(|v| Uuid::parse_str(&String::from_utf8_lossy(v)).ok());
        if let Some(ce_id) = ce_id.filter(|id| wanted.contains(id)) {
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            found.push((key, ce_id, message.payload().unwrap_or_default().to_vec()));
        }
    }
    Ok(found)
}
