//! # Liberating a legacy table
//!
//! A legacy application writes `legacy_customers` with plain SQL and knows nothing of
//! events. Capture publishes its changes anyway (Bellemare, *Building Event-Driven
//! Microservices*, ch. 4): triggers write one outbox row per changed row in the same
//! transaction, the relay encodes them to Avro with the registered change-event schema, and a
//! consumer decodes them through the registry. The internal model stays private: a column
//! is excluded and one renamed. Then the table's DDL goes through `capture migrate`: a new
//! nullable column is compatible and the next events carry it; dropping a column consumers
//! rely on is refused with nothing changed.
//!
//! With nothing configured it uses a SQLite file and librdkafka's in-process mock cluster.
//! Set `DATABASE_URL` (PostgreSQL or MariaDB/MySQL) and `KAFKA_BOOTSTRAP_SERVERS` to run it
//! against real servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apache_avro::types::Value;
use outbox_core::capture::CaptureSpec;
use outbox_core::registry::{Decoder, Registry};
use outbox_core::relay::AdminStore;
use outbox_core::table::{Identifier, Statements, TableNames};
use outbox_relay::config::RelayConfig;
use outbox_relay::{Relay, Step, producer, with_database};
use outbox_sqlx::capture::Capture;
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore, SqlxSchemaStore};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = std::env::temp_dir().join(format!("outbox-liberate-{}.db", std::process::id()));
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", temp.display()));
    let run = &uuid::Uuid::now_v7().simple().to_string()[24..];
    let topic = format!("legacy.customers.{run}");
    let (bootstrap, _mock) = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) => {
            create_topic(&servers, &topic).await?;
            (servers, None)
        }
        Err(_) => {
            let mock = MockCluster::new(1).context("starting the in-process Kafka")?;
            mock.create_topic(&topic, 1, 1)
                .context("creating the topic")?;
            (mock.bootstrap_servers(), Some(mock))
        }
    };
    let summary = with_database!(&url, |pool: DB| liberate::<DB>(pool, &bootstrap, &topic)
        .await)?;
    let _ = std::fs::remove_file(&temp);
    println!("\nsummary: {summary}");
    Ok(())
}

async fn create_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await?
    {
        result.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// The legacy application's own SQL.
async fn sql<DB: OutboxDatabase>(pool: &sqlx::Pool<DB>, text: &str) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    DB::run(&mut *conn, text, vec![])
        .await
        .with_context(|| text.to_owned())?;
    Ok(())
}

async fn liberate<DB: OutboxDatabase>(
    pool: sqlx::Pool<DB>,
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<String> {
    let names = TableNames::with_prefix("liberate")?;
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    outbox_sqlx::migrate(&pool, &stmts).await?;
    let registry = Registry::new(SqlxSchemaStore::new(pool.clone(), Arc::clone(&stmts)));
    let capture = Capture::new(pool.clone(), names.clone());
    let table = "legacy_customers";
    let t = DB::DIALECT.quote(&Identifier::new(table)?);

    println!("1. The legacy table, as it has always been");
    let _ = capture.remove(table).await;
    sql(&pool, &format!("DROP TABLE IF EXISTS {t}")).await?;
    sql(
        &pool,
        &format!(
            "CREATE TABLE {t} (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, \
         balance DECIMAL(10,2) NOT NULL, internal_notes VARCHAR(200))"
        ),
    )
    .await?;

    println!("2. capture add: exclude internal_notes, publish name as full_name");
    let spec = CaptureSpec {
        topic: Some(topic.to_owned()),
        exclude: vec!["internal_notes".to_owned()],
        renames: vec![("name".to_owned(), "full_name".to_owned())],
        ..CaptureSpec::new(table)
    };
    let info = capture.add(&registry, &spec).await?;
    println!(
        "   {table} -> {} (subject {}, schema id {})",
        info.topic, info.subject, info.schema_id
    );

    println!("3. The legacy application writes, unchanged");
    sql(
        &pool,
        &format!(
            "INSERT INTO {t} (id, name, balance, internal_notes) VALUES (1, 'Ada', 10.50, 'vip')"
        ),
    )
    .await?;
    sql(
        &pool,
        &format!("INSERT INTO {t} (id, name, balance) VALUES (2, 'Brian', 0.00)"),
    )
    .await?;
    sql(
        &pool,
        &format!("UPDATE {t} SET balance = 12.75 WHERE id = 1"),
    )
    .await?;
    sql(&pool, &format!("DELETE FROM {t} WHERE id = 2")).await?;
    let mut tx = pool.begin().await?;
    DB::run(
        &mut *tx,
        &format!("INSERT INTO {t} (id, name, balance) VALUES (3, 'Cleo', 1.00)"),
        vec![],
    )
    .await?;
    tx.rollback().await?;
    println!("   4 changes committed, 1 rolled back (no event for it)");

    println!("4. capture migrate: a new nullable column is compatible");
    let added = capture
        .migrate(
            &registry,
            table,
            &format!("ALTER TABLE {t} ADD COLUMN tier VARCHAR(10)"),
        )
        .await?;
    println!("   applied; schema id {}", added.schema_id);
    sql(
        &pool,
        &format!("INSERT INTO {t} (id, name, balance, tier) VALUES (4, 'Dana', 3.00, 'gold')"),
    )
    .await?;
    let mut refused = 0;
    match capture
        .migrate(
            &registry,
            table,
            &format!("ALTER TABLE {t} DROP COLUMN name"),
        )
        .await
    {
        Err(e @ outbox_core::Error::IncompatibleSchema { .. }) => {
            println!("   refused: dropping name: {e}");
            refused += 1;
        }
        other => bail!("expected the drop to be refused, got {other:?}"),
    }

    println!("5. The relay encodes each captured row to Avro and produces it");
    let mut config = RelayConfig::default();
    config.kafka.bootstrap_servers = Some(bootstrap.to_owned());
    config.relay.source = "urn:outbox-liberate-legacy".to_owned();
    let relay = Relay::builder(
        SqlxRelayStore::new(pool.clone(), stmts),
        producer::producer(&config.kafka)?,
    )
    .with_settings(config.relay)
    .with_instance("liberate")
    .with_producer_config(config.kafka)?
    .with_capture_schemas(Registry::new(SqlxSchemaStore::new(
        pool.clone(),
        Arc::new(Statements::new(DB::DIALECT, &names)),
    )))
    .build();
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay.store().status("outbox-relay").await?.backlog > 0 {
        if Instant::now() > deadline {
            bail!("the relay did not drain the outbox within 30 s");
        }
        if relay.drain_once().await? == Step::StandingBy {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    println!("6. A consumer decodes the change events through the registry");
    let records = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        move || consume(&bootstrap, &topic, 5)
    })
    .await??;
    let decoder = Decoder::new(registry);
    for (key, value) in &records {
        let event = decoder.decode_value(value).await?;
        println!("   key={key} {}", render(&event));
    }
    capture.remove(table).await?;
    sql(&pool, &format!("DROP TABLE {t}")).await?;
    Ok(format!(
        "captured 5, consumed {}, rolled back 1, refused DDL {refused}",
        records.len()
    ))
}

/// A decoded value as compact text (decimals with their scale of 2).
fn render(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) | Value::TimestampMicros(n) => n.to_string(),
        Value::String(s) | Value::Enum(_, s) => format!("{s:?}"),
        Value::Union(_, inner) => render(inner),
        Value::Decimal(d) => Vec::<u8>::try_from(d).map_or_else(
            |_| "?".to_owned(),
            |bytes| {
                let n = bigdecimal::num_bigint::BigInt::from_signed_bytes_be(&bytes);
                bigdecimal::BigDecimal::new(n, 2).to_string()
            },
        ),
        Value::Record(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", render(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// Reads `topic` from the beginning until `count` records arrived: (key, value).
fn consume(bootstrap: &str, topic: &str, count: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-liberate-legacy")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = Vec::new();
    while found.len() < count && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        found.push((key, message.payload().unwrap_or_default().to_vec()));
    }
    Ok(found)
}
