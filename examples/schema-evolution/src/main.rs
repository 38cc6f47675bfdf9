//! # Schema evolution
//!
//! An event schema over time, in the embedded registry (a SQLite file here; the same tables
//! live in your PostgreSQL or MariaDB):
//!
//! 1. v1 is registered;
//! 2. v2 adds an optional field with a default: compatible under FULL_TRANSITIVE (the
//!    default), so a consumer still on v1 reads v2 data;
//! 3. v3 turns `total_cents` into a string: refused, with every incompatibility listed;
//! 4. the breaking change ships instead as a new stream, `orders.v2` (the name
//!    `registry::next_stream` and the refusal's hint give), with its own subject, after the
//!    schema linter has passed it;
//! 5. during the migration, the producer publishes each order to both streams in one
//!    transaction (both or neither), so consumers move from `orders` to `orders.v2` at their
//!    own pace;
//! 6. once they have, the producer stops writing `orders`; the relay drains what is left of it
//!    (here its store side: claim, then acknowledge as it does after Kafka's acknowledgement),
//!    and the old stream is retired when its backlog is zero.
//!
//! Guarantee it relies on: consumers can trust the schema: a change that would break a reader
//! of any earlier version never reaches the topic.
//!
//! ```sh
//! cargo run -p schema-evolution
//! ```

use outbox_core::avro::AvroSchema;
use outbox_core::compat::CompatibilityMode;
use outbox_core::encode::{EventCodec, wire};
use outbox_core::lint::{LintConfig, LintContext, lint};
use outbox_core::registry::{Registry, next_stream};
use outbox_core::relay::{RelayStore, RelayStoreExt};
use outbox_core::table::{Dialect, Statements, TableNames};
use outbox_core::{Error, Event, Schema};
use outbox_sqlx::{Outbox, SqlxRelayStore, SqlxSchemaStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const V1: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme.orders","fields":[
    {"name":"order_id","type":"string"},{"name":"total_cents","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme.orders","fields":[
    {"name":"order_id","type":"string"},{"name":"total_cents","type":"long"},
    {"name":"coupon","type":["null","string"],"default":null}]}"#;
const V3: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme.orders","fields":[
    {"name":"order_id","type":"string"},{"name":"total_cents","type":"string"},
    {"name":"coupon","type":["null","string"],"default":null}]}"#;

/// What a producer on v2 writes to `orders` (its derived schema is `V2`).
#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
#[serde(rename = "OrderPlaced")]
struct OrderPlacedV2 {
    order_id: String,
    total_cents: i64,
    coupon: Option<String>,
}

impl Event for OrderPlacedV2 {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// The breaking change, on the next stream: the total as a decimal string, documented so the
/// schema linter passes it.
#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "An order was placed")]
#[serde(rename = "OrderPlaced")]
struct OrderPlacedNext {
    /// The order's reference.
    order_ref: String,
    /// The total as a decimal string, in the order's currency.
    total: String,
    /// The coupon applied, if any.
    coupon: Option<String>,
}

impl Event for OrderPlacedNext {
    const TOPIC: &'static str = "orders.v2";
    fn key(&self) -> Option<String> {
        Some(self.order_ref.clone())
    }
}

/// What a consumer still on v1 reads.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct OrderPlacedV1 {
    order_id: String,
    total_cents: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file =
        std::env::temp_dir().join(format!("outbox-schema-evolution-{}.db", std::process::id()));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", file.display())).await?;
    let stmts = Arc::new(Statements::new(Dialect::Sqlite, &TableNames::default()));
    outbox_sqlx::migrate(&pool, &stmts).await?;
    let registry = Registry::new(SqlxSchemaStore::new(pool.clone(), Arc::clone(&stmts)));
    let subject = "orders-value";
    println!(
        "mode: {} (the default: every version reads every other)",
        CompatibilityMode::default()
    );

    let v1 = registry.register(subject, &Schema::parse_str(V1)?).await?;
    println!("v1 registered: version {}, id {}", v1.version, v1.id);

    let v2_schema = Schema::parse_str(V2)?;
    let v2 = registry.register(subject, &v2_schema).await?;
    println!(
        "v2 (adds optional `coupon`) is compatible: version {}, id {}",
        v2.version, v2.id
    );
    let bytes = EventCodec::new(subject, v2.id, v2_schema.clone()).encode(&OrderPlacedV2 {
        order_id: "o-1".into(),
        total_cents: 1250,
        coupon: Some("SPRING".into()),
    })?;
    let read: OrderPlacedV1 = wire::decode(&bytes, |_| Ok(v2_schema.clone()), Some(&v1.schema))?;
    println!("a consumer on v1 reads v2 data: {read:?}");

    match registry.register(subject, &Schema::parse_str(V3)?).await {
        Err(Error::IncompatibleSchema { problems, mode, .. }) => {
            println!("v3 (total_cents becomes a string) is refused under {mode}:");
            for p in &problems {
                println!(
                    "  - against version {}: {} ({})",
                    p.existing + 1,
                    p.incompatibility,
                    p.direction.as_str()
                );
            }
        }
        other => anyhow::bail!("v3 should have been refused, got {other:?}"),
    }

    // 4. The next stream, its schema linted first (the one-definition-per-stream, doc and
    // type rules), then registered under its own subject.
    let next = next_stream("orders");
    assert_eq!(next, OrderPlacedNext::TOPIC);
    let next_schema = OrderPlacedNext::schema()?;
    let report = lint(
        &next_schema,
        &LintContext::for_topic(&next),
        &LintConfig::default(),
    );
    for v in &report.violations {
        println!("  lint: {v}");
    }
    anyhow::ensure!(
        !report.has_errors(),
        "the new stream's schema breaks design rules"
    );
    let stream = registry
        .register(&format!("{next}-value"), &next_schema)
        .await?;
    println!(
        "the breaking change ships as a new stream: {next}-value version {}, id {} (lint: {} warnings)",
        stream.version,
        stream.id,
        report.violations.len()
    );

    // 5. The migration window: every order goes to both streams, atomically.
    let outbox = Outbox::builder(pool.clone())
        .register::<OrderPlacedV2>()
        .register::<OrderPlacedNext>()
        .build()
        .await?;
    for n in 1..=3 {
        let mut tx = pool.begin().await?;
        outbox
            .publish(
                &mut *tx,
                &OrderPlacedV2 {
                    order_id: format!("o-{n}"),
                    total_cents: 1250,
                    coupon: None,
                },
            )
            .await?;
        outbox
            .publish(
                &mut *tx,
                &OrderPlacedNext {
                    order_ref: format!("o-{n}"),
                    total: "12.50".into(),
                    coupon: None,
                },
            )
            .await?;
        tx.commit().await?;
    }
    let store = SqlxRelayStore::new(pool.clone(), stmts);
    println!("migration window: {}", backlog(&store).await?);

    // 6. Consumers have moved: the producer writes only the new stream; the relay drains the
    // old one. (The relay claims a batch, produces it, and acknowledges what Kafka
    // acknowledged; here the acknowledgement stands in for Kafka's.)
    let mut tx = pool.begin().await?;
    outbox
        .publish(
            &mut *tx,
            &OrderPlacedNext {
                order_ref: "o-4".into(),
                total: "3.00".into(),
                coupon: Some("SPRING".into()),
            },
        )
        .await?;
    tx.commit().await?;
    let drained: Vec<i64> = store.read_batch(100).await?.iter().map(|r| r.id).collect();
    store.ack(&drained, None).await?;
    println!(
        "after the switch and one relay batch: {}",
        backlog(&store).await?
    );
    println!("`orders` has no backlog and no producer: retire it once its retention has passed");
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// Outbox rows not yet published, per topic (claiming reads them without removing them).
async fn backlog(store: &SqlxRelayStore<sqlx::Sqlite>) -> anyhow::Result<String> {
    let mut per_topic = std::collections::BTreeMap::<String, usize>::new();
    for record in store.read_batch(10_000).await? {
        *per_topic.entry(record.topic).or_default() += 1;
    }
    for topic in ["orders", "orders.v2"] {
        per_topic.entry(topic.to_owned()).or_default();
    }
    Ok(per_topic
        .iter()
        .map(|(topic, n)| format!("{topic}: {n} waiting"))
        .collect::<Vec<_>>()
        .join(", "))
}
