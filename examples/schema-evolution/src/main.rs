//! # Schema evolution
//!
//! An event schema over time, in the embedded registry (a SQLite file here; the same tables
//! live in your PostgreSQL or MariaDB):
//!
//! 1. v1 is registered;
//! 2. v2 adds an optional field with a default: compatible under FULL_TRANSITIVE (the
//!    default), so a consumer still on v1 reads v2 data;
//! 3. v3 turns `total_cents` into a string: refused, with every incompatibility listed;
//! 4. the breaking change ships instead as a new stream, `orders.v2`, with its own subject.
//!
//! Guarantee it relies on: consumers can trust the schema: a change that would break a reader
//! of any earlier version never reaches the topic.
//!
//! ```sh
//! cargo run -p schema-evolution
//! ```

use outbox_core::compat::CompatibilityMode;
use outbox_core::encode::{EventCodec, wire};
use outbox_core::registry::Registry;
use outbox_core::table::{Dialect, Statements, TableNames};
use outbox_core::{Error, Schema};
use outbox_sqlx::SqlxSchemaStore;
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

/// What a producer on v2 writes.
#[derive(Serialize)]
struct OrderPlacedV2 {
    order_id: String,
    total_cents: i64,
    coupon: Option<String>,
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
    let registry = Registry::new(SqlxSchemaStore::new(pool, stmts));
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

    let stream = registry
        .register("orders.v2-value", &Schema::parse_str(V3)?)
        .await?;
    println!(
        "the breaking change ships as a new stream: orders.v2-value version {}, id {}",
        stream.version, stream.id
    );
    let _ = std::fs::remove_file(&file);
    Ok(())
}
