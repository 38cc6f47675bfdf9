//! End to end on a real Kafka-protocol broker (tansu, started by `.ci/run`): the
//! `outbox-relay` binary drains PostgreSQL to the broker, and a client we did not write
//! (confluent-kafka for Python, with fastavro) decodes every record with our registry's
//! schema. Runs when `KAFKA_BOOTSTRAP_SERVERS` is set (always in CI).

mod common;

use common::broker::{broker, create_topic};

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use outbox_core::encode::EventCodec;
use outbox_core::registry::Registry;
use outbox_core::relay::{AdminStore, InsertRows};
use outbox_core::{Event, NewOutboxRow};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_binary_to_a_real_broker_read_by_confluent_kafka() {
    let Some(bootstrap) = broker() else { return };
    let Some(pool) = common::pool::<sqlx::Postgres>(&common::pg_url()).await else {
        return;
    };
    let topic = common::fresh_topic("orders-e2e");
    create_topic(&bootstrap, &topic, 3).await;
    let names = common::fresh_names();
    let config = common::config(&common::pg_url(), &bootstrap, &names, "");
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate");

    // Register the schema in the embedded registry, then write rows for the fresh topic.
    let stmts = std::sync::Arc::new(outbox_core::table::Statements::new(
        outbox_core::table::Dialect::Postgres,
        &names,
    ));
    let registry = Registry::new(outbox_sqlx::SqlxSchemaStore::new(pool.clone(), stmts));
    let schema = common::OrderPlaced::schema().expect("schema");
    let subject = format!("{topic}-value");
    let registered = registry
        .register(&subject, &schema)
        .await
        .expect("register");
    let codec = EventCodec::new(subject, registered.id, schema);
    let events: Vec<_> = (0..300).map(|i| common::order(i % 30, i)).collect();
    let rows: Vec<NewOutboxRow> = events
        .iter()
        .map(|e| {
            let mut row = NewOutboxRow::from_event(&codec, e).expect("valid");
            row.topic.clone_from(&topic);
            row
        })
        .collect();
    let store = config.relay_store(pool.clone()).expect("store");
    store.insert_rows(&rows).await.expect("insert");

    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    let registry_addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    );
    let mut relay = common::relay_command()
        .args([
            "--database-url",
            &common::pg_url(),
            "--bootstrap-servers",
            &bootstrap,
        ])
        .args([
            "--table-prefix",
            prefix.trim_end_matches("_events"),
            "--http-listen",
            "",
            "--registry-listen",
            &registry_addr,
            "run",
        ])
        .spawn()
        .expect("relay starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        assert!(
            Instant::now() < deadline,
            "the relay did not drain to the broker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Our own consumer: every record, keyed, in per-key order.
    let (b, t) = (bootstrap.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&b, &t, 3, 300, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let expected: Vec<uuid::Uuid> = rows.iter().map(|r| r.event_id).collect();
    let got: HashSet<uuid::Uuid> = records.iter().map(common::Received::ce_id).collect();
    assert_eq!(got, expected.iter().copied().collect());

    // A client we did not write, decoding with the registry's schema.
    let Ok(python) = std::env::var("OUTBOX_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but OUTBOX_PYTHON is not set"
        );
        eprintln!("skipping the confluent-kafka check: OUTBOX_PYTHON is not set");
        let _ = relay.kill();
        let _ = relay.wait();
        return;
    };
    let stored = registry
        .schema_by_id(registered.id)
        .await
        .expect("schema by id");
    let dir = tempfile::tempdir().expect("dir");
    let schema_file = dir.path().join("schema.avsc");
    std::fs::write(&schema_file, stored.canonical_json()).expect("write schema");
    let schema_path = schema_file.display().to_string();
    let lines = python_consumer(&python, &[&bootstrap, &topic, "300", &schema_path]);
    assert_eq!(lines.len(), 300, "confluent-kafka read every record");
    let by_id: std::collections::HashMap<String, &common::OrderPlaced> = rows
        .iter()
        .zip(&events)
        .map(|(row, event)| (row.event_id.hyphenated().to_string(), event))
        .collect();
    for line in &lines {
        let event = by_id[line["ce_id"].as_str().expect("ce_id")];
        assert_eq!(line["schema_id"], registered.id.get());
        assert_eq!(line["ce_type"], "com.acme.orders.OrderPlaced");
        assert_eq!(line["key"], event.order_id.as_str());
        assert_eq!(line["value"]["order_id"], event.order_id.as_str());
        assert_eq!(line["value"]["seq"], event.seq);
    }

    // confluent-kafka's SchemaRegistryClient + AvroDeserializer, pointed at the relay.
    let url = format!("http://{registry_addr}");
    let decoded = python_consumer(&python, &[&bootstrap, &topic, "300", &url]);
    assert_eq!(
        decoded.len(),
        300,
        "AvroDeserializer read every record through our registry"
    );
    for line in &decoded {
        let event = by_id[line["ce_id"].as_str().expect("ce_id")];
        assert_eq!(line["value"]["order_id"], event.order_id.as_str());
        assert_eq!(line["value"]["seq"], event.seq);
    }

    tokio::time::sleep(Duration::from_secs(3)).await; // let the relay take the lease and settle
    assert_eq!(common::stop(&mut relay), Some(0));
}

/// Runs `consume_confluent.py` with `args`; its JSON lines.
fn python_consumer(python: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/consume_confluent.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}
