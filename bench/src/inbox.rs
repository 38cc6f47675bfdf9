//! Phase 6: consuming with the inbox (decode, one PostgreSQL transaction recording each
//! `ce_id`, offsets committed after it) beside a bare consumer loop reading the same records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::registry::Registry;
use outbox_core::table::{Dialect, Statements};
use outbox_inbox::{BoxError, Inbox, InboxEvent, InboxSettings};
use outbox_relay::Relay;
use outbox_sqlx::{InboxHandler, SqlxInbox, SqlxSchemaStore};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::fixture::{Broker, Fixture, drop_tables, fixture, preload, rows};
use crate::report::Report;

/// The consumer's view of the bench payload.
#[derive(Deserialize, AvroSchema)]
#[avro(namespace = "bench")]
#[serde(rename = "Payload")]
struct PayloadIn {
    #[allow(dead_code)]
    seq: i64,
}

/// A handler with no effect of its own: what is measured is the inbox's work.
struct Nothing;

impl InboxHandler<Postgres> for Nothing {
    type Event = PayloadIn;

    async fn handle(
        &self,
        _: &mut Transaction<'static, Postgres>,
        _: PayloadIn,
        _: &InboxEvent,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

pub(crate) async fn inbox_consume(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    println!(
        "\n6. consuming with the inbox on {} ({} partitions)",
        broker.name, broker.partitions
    );
    // Quick mode (CI) checks the phase runs, not its numbers: few events, and the only
    // consumer-group join is the inbox's own (the bare loop is assigned its partitions).
    let n = if quick { 500 } else { 100_000 };
    let Fixture {
        names,
        codec,
        config,
        store,
    } = fixture(pool, pg_url, broker, "inbox").await?;
    let topic = broker.topic("bench-inbox").await?;
    preload(&store, &rows(&codec, &topic, n, 100)?).await?;
    let relay = Relay::builder(
        store.clone(),
        outbox_relay::producer::producer(&config.kafka)?,
    )
    .with_settings(config.relay.clone())
    .with_instance("bench")
    .build();
    crate::drain::drain_all(&relay, n).await?;

    // Baseline: a bare consumer loop reading the same records, no database.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", format!("bench-bare-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    if quick {
        let mut partitions = TopicPartitionList::new();
        for p in 0..broker.partitions {
            partitions.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&partitions)?;
    } else {
        consumer.subscribe(&[topic.as_str()])?;
    }
    let (mut read, mut started) = (0, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while read < n && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            started.get_or_insert_with(Instant::now);
            read += 1;
        }
    }
    anyhow::ensure!(read == n, "the bare consumer read {read} of {n}");
    let bare_eps = (n - 1) as f64 / started.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
    drop(consumer);

    // The inbox, from its first record to the last one committed in the database.
    let stmts = Statements::new(Dialect::Postgres, &names);
    outbox_sqlx::migrate_inbox(pool, &stmts).await?;
    let registry = Registry::new(SqlxSchemaStore::new(pool.clone(), Arc::new(stmts)));
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &broker.bootstrap);
    let inbox = Inbox::new(
        SqlxInbox::new(pool.clone(), &names, Nothing),
        registry,
        kafka,
        InboxSettings::new(format!("bench-inbox-{topic}"), [topic.clone()]),
    )?;
    let metrics = inbox.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move {
        let _ = stopped.await;
    }));
    let mut started = None;
    while metrics.processed.get() < n as u64 && Instant::now() < deadline {
        if metrics.processed.get() > 0 {
            started.get_or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
    let _ = stop.send(());
    runner.await??;
    anyhow::ensure!(
        metrics.processed.get() == n as u64,
        "the inbox processed {} of {n}",
        metrics.processed.get()
    );
    let inbox_eps = (n - 1) as f64 / elapsed;
    // Baseline 2: the database alone: the same one-insert transactions, 16 at a time.
    let insert = outbox_core::table::InboxStatements::new(Dialect::Postgres, &names)
        .insert_processed
        .sql()
        .to_owned();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let (pool, insert) = (pool.clone(), insert.clone());
        tasks.spawn(async move {
            for i in (task..n).step_by(16) {
                let mut tx = pool.begin().await?;
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind("db-only")
                    .bind(i.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let db_eps = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "   {n} events: inbox {inbox_eps:.0}/s | bare consumer {bare_eps:.0}/s ({:.0}% of it) \
         | database alone {db_eps:.0} tx/s",
        100.0 * inbox_eps / bare_eps
    );
    report.row(
        "inbox consume, 100 B (events/s)",
        format!("{inbox_eps:.0}"),
        format!(
            "bare loop {bare_eps:.0}; db alone {db_eps:.0} ({:.0}%)",
            100.0 * inbox_eps / db_eps
        ),
    );
    report.result(&format!("inbox_consume_eps_{}", broker.name), inbox_eps);
    report.result(&format!("bare_consume_eps_{}", broker.name), bare_eps);
    report.result(&format!("inbox_db_only_tx_per_s_{}", broker.name), db_eps);
    for table in outbox_core::table::Table::INBOX {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(Dialect::Postgres, table)
        )))
        .execute(pool)
        .await?;
    }
    drop_tables(pool, &names).await
}
