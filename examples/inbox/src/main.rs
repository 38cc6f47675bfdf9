//! An idempotent consumer with the inbox.
//!
//! `cargo run -p inbox` (the demo): an orders service publishes 5 events through its outbox
//! (SQLite), the relay drains them to Kafka (the test broker at `KAFKA_BOOTSTRAP_SERVERS`, else
//! an in-process one), every record is produced a second time, as a relay crash would, and a
//! shipping service consumes them with the inbox: each order is shipped once, the copies are
//! skipped.
//!
//! `inbox consume` runs the shipping service alone until SIGTERM, configured by the
//! environment (`INBOX_DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `INBOX_TOPIC`, `INBOX_GROUP`,
//! `INBOX_TABLE_PREFIX`, `INBOX_REGISTRY_DB`, `INBOX_HANDLER_DELAY_MS`,
//! `INBOX_KAFKA_PROPERTIES`): the process the
//! crash and rebalance tests start and kill.

use std::time::Duration;

use anyhow::Context as _;
use apache_avro::AvroSchema;
use outbox_core::Event;
use outbox_core::registry::Registry;
use outbox_core::table::TableNames;
use outbox_inbox::{BoxError, ClientConfig, Inbox, InboxEvent, InboxSettings};
use outbox_sqlx::{InboxHandler, OutboxDatabase, SqlxInbox, SqlxSchemaStore};
use serde::{Deserialize, Serialize};
use sqlx::Transaction;

/// What the orders service publishes (its v2, with a currency).
#[derive(Debug, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
    currency: String,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "inbox-example-orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// What the shipping service reads: v1, without the currency (Avro resolution drops it).
#[derive(Debug, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
#[serde(rename = "OrderPlaced")]
struct OrderToShip {
    order_id: String,
}

/// Ships an order: one row in `<prefix>_shipments`, in the inbox's transaction.
struct Shipping {
    table: String,
    delay: Duration,
}

impl<DB: OutboxDatabase> InboxHandler<DB> for Shipping {
    type Event = OrderToShip;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, DB>,
        order: OrderToShip,
        meta: &InboxEvent,
    ) -> Result<(), BoxError> {
        tokio::time::sleep(self.delay).await;
        let (p1, p2) = (DB::DIALECT.placeholder(1), DB::DIALECT.placeholder(2));
        let sql = format!(
            "INSERT INTO {} (ce_id, order_id) VALUES ({p1}, {p2})",
            self.table
        );
        let params = vec![
            outbox_sqlx::Value::Text(meta.ce_id.clone()),
            outbox_sqlx::Value::Text(order.order_id),
        ];
        DB::run(&mut **tx, &sql, params).await?;
        Ok(())
    }
}

/// Creates the shipping service's table and the inbox tables.
async fn prepare<DB: OutboxDatabase>(
    pool: &sqlx::Pool<DB>,
    names: &TableNames,
    table: &str,
) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {table} (ce_id VARCHAR(64) NOT NULL, order_id VARCHAR(64) NOT NULL)"
    );
    DB::run(&mut conn, &sql, vec![]).await?;
    let stmts = outbox_core::table::Statements::new(DB::DIALECT, names);
    outbox_sqlx::migrate_inbox(pool, &stmts).await?;
    Ok(())
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

/// The shipping service alone, until SIGTERM.
async fn consume() -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&var("INBOX_DATABASE_URL")?).await?;
    let names = TableNames::with_prefix(&var("INBOX_TABLE_PREFIX")?)?;
    let table = format!("{}_shipments", names.name(outbox_core::table::Table::Inbox));
    prepare(&pool, &names, &table).await?;
    let delay = Duration::from_millis(
        var("INBOX_HANDLER_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let upstream =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", var("INBOX_REGISTRY_DB")?)).await?;
    let registry = Registry::new(SqlxSchemaStore::new(
        upstream,
        std::sync::Arc::new(outbox_core::table::Statements::new(
            outbox_core::table::Dialect::Sqlite,
            &TableNames::default(),
        )),
    ));
    let backend = SqlxInbox::new(pool, &names, Shipping { table, delay });
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", var("KAFKA_BOOTSTRAP_SERVERS")?);
    // Any librdkafka consumer property (TLS, SASL, timeouts), as `key=value,key=value`.
    for pair in var("INBOX_KAFKA_PROPERTIES")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .context("INBOX_KAFKA_PROPERTIES: expected key=value")?;
        config.set(key, value);
    }
    let mut settings = InboxSettings::new(var("INBOX_GROUP")?, [var("INBOX_TOPIC")?]);
    settings.commit_interval = Duration::from_millis(200);
    settings.poison_policy = outbox_core::PoisonPolicy::Skip;
    let inbox = Inbox::new(backend, registry, config, settings)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    inbox
        .run(async move {
            let _ = term.recv().await;
        })
        .await?;
    Ok(())
}

/// The whole story in one process.
async fn demo() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let orders = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("orders.db").display()
    ))
    .await?;
    let outbox = outbox_sqlx::Outbox::builder(orders.clone())
        .register::<OrderPlaced>()
        .build()
        .await?;
    // Order ids carry this run's tag, so the copies are this run's records even on a broker
    // topic that earlier runs wrote to.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    for i in 1..=5 {
        let mut tx = orders.begin().await?;
        outbox
            .publish(
                &mut *tx,
                &OrderPlaced {
                    order_id: format!("o-{i}-{run}"),
                    total_cents: 100 * i,
                    currency: "EUR".into(),
                },
            )
            .await?;
        tx.commit().await?;
    }
    let mock;
    let bootstrap = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.is_empty() => {
            create_topic(&servers).await?;
            servers
        }
        _ => {
            mock = rdkafka::mocking::MockCluster::new(1)?;
            mock.create_topic(OrderPlaced::TOPIC, 1, 1)?;
            mock.bootstrap_servers()
        }
    };
    let kafka = outbox_relay::config::KafkaConfig {
        bootstrap_servers: Some(bootstrap.clone()),
        ..Default::default()
    };
    let relay = outbox_relay::Relay::builder(
        outbox.relay_store(),
        outbox_relay::producer::producer(&kafka)?,
    )
    .with_instance("orders-service")
    .build();
    let mut published = 0;
    while published < 5 {
        if let outbox_relay::Step::Drained { published: p, .. } = relay.drain_once().await? {
            published += p;
        }
    }
    let shipping = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shipping.db").display()
    ))
    .await?;
    let names = TableNames::with_prefix("shipping")?;
    let table = "shipping_shipments".to_owned();
    prepare(&shipping, &names, &table).await?;
    let registry = Registry::new(SqlxSchemaStore::new(
        orders.clone(),
        std::sync::Arc::new(outbox.statements().clone()),
    ));
    let backend = SqlxInbox::new(
        shipping.clone(),
        &names,
        Shipping {
            table: table.clone(),
            delay: Duration::ZERO,
        },
    );
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap);
    let group = format!("shipping-{}", std::process::id());
    let inbox = Inbox::new(
        backend,
        registry,
        config.clone(),
        InboxSettings::new(group, [OrderPlaced::TOPIC]),
    )?;
    let metrics = inbox.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move { drop(stopped.await) }));
    // The same 5 records once more, as a relay that crashed before deleting them would send.
    republish(&bootstrap, &run, 5).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metrics.duplicates.get() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    runner.await??;
    let shipped: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&shipping)
            .await?;
    let distinct: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(DISTINCT ce_id) FROM {table}"
    )))
    .fetch_one(&shipping)
    .await?;
    println!(
        "processed {}, duplicates skipped {}, shipments {shipped}",
        metrics.processed.get(),
        metrics.duplicates.get()
    );
    anyhow::ensure!(
        metrics.duplicates.get() >= 5,
        "the copies were not all seen"
    );
    anyhow::ensure!(
        shipped == distinct && shipped as u64 == metrics.processed.get(),
        "an order was shipped twice"
    );
    println!("inbox example: ok (each order shipped once)");
    Ok(())
}

/// Creates the orders topic on a real broker (one partition), unless it exists.
async fn create_topic(bootstrap: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let topic = NewTopic::new(OrderPlaced::TOPIC, 1, TopicReplication::Fixed(1));
    for result in admin.create_topics(&[topic], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => anyhow::bail!("create topic: {code}"),
        }
    }
    // A topic just created may not be in every metadata answer yet: wait until it is.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for _ in 0..50 {
        let metadata = probe.fetch_metadata(Some(OrderPlaced::TOPIC), Duration::from_secs(5))?;
        if metadata
            .topics()
            .iter()
            .any(|t| t.error().is_none() && !t.partitions().is_empty())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the orders topic did not appear")
}

/// Produces again, unchanged, the `n` records of this run (their key ends with `run`), read
/// from the start of the orders topic. Matching by key rather than counting back from the high
/// watermark keeps the copy right on a topic that earlier runs wrote to and on a broker whose
/// offsets answer lags behind what it has acknowledged.
async fn republish(bootstrap: &str, run: &str, n: usize) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("copier-{run}"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(OrderPlaced::TOPIC, 0, rdkafka::Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut copied = 0;
    while copied < n {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "only {copied} of this run's {n} records came back from {}",
            OrderPlaced::TOPIC
        );
        let Some(message) = consumer.poll(Duration::from_secs(1)) else {
            continue;
        };
        let m = message?.detach();
        if !m.key().is_some_and(|k| k.ends_with(run.as_bytes())) {
            continue;
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(OrderPlaced::TOPIC).partition(0);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(v) = m.payload() {
            record = record.payload(v);
        }
        if let Some(h) = m.headers() {
            record = record.headers(h.clone());
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
        copied += 1;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("consume") => consume().await,
        _ => demo().await,
    }
}
