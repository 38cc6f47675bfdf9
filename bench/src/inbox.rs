//! Phase 7: consuming with the inbox (decode, one PostgreSQL transaction recording each
//! `ce_id`, offsets committed after it) beside a bare consumer loop reading the same records
//! and the database alone doing the inbox's inserts; each run on fresh tables and a fresh
//! topic, the three in alternating order from run to run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::registry::Registry;
use outbox_core::table::{Dialect, Statements, TableNames};
use outbox_inbox::{BoxError, Inbox, InboxEvent, InboxSettings};
use outbox_relay::Relay;
use outbox_sqlx::{InboxHandler, SqlxInbox, SqlxSchemaStore};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::Options;
use crate::fixture::{Broker, Fixture, drop_tables, fixture, preload, rows};
use crate::report::{Plot, Report, Spread};

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
    options: &Options,
) -> anyhow::Result<()> {
    println!(
        "\n7. consuming with the inbox on {} ({} partitions), {} run(s)",
        broker.name, broker.partitions, options.runs
    );
    // Quick mode (CI) checks the phase runs, not its numbers: few events, and the only
    // consumer-group join is the inbox's own (the bare loop is assigned its partitions).
    let n = if options.quick { 500 } else { 100_000 };
    let (mut inbox, mut bare, mut db) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..options.runs {
        let rates = one_run(pool, pg_url, broker, n, options.quick, run).await?;
        let label = if options.runs > 1 {
            format!(", run {} of {}", run + 1, options.runs)
        } else {
            String::new()
        };
        println!(
            "   {n} events: inbox {:.0}/s | bare consumer {:.0}/s ({:.0}% of it) \
             | database alone {:.0} tx/s",
            rates.inbox,
            rates.bare,
            100.0 * rates.inbox / rates.bare,
            rates.db
        );
        report.row(
            &format!("inbox consume, 100 B{label} (events/s)"),
            format!("{:.0}", rates.inbox),
            format!(
                "bare loop {:.0}; db alone {:.0} ({:.0}%)",
                rates.bare,
                rates.db,
                100.0 * rates.inbox / rates.db
            ),
        );
        report.result(&format!("inbox_consume_eps_{}", broker.name), rates.inbox);
        report.result(&format!("bare_consume_eps_{}", broker.name), rates.bare);
        report.result(&format!("inbox_db_only_tx_per_s_{}", broker.name), rates.db);
        inbox.push(rates.inbox);
        bare.push(rates.bare);
        db.push(rates.db);
    }
    let median = |values: &[f64]| Spread::of(values).median;
    report.plot(Plot::Bars {
        file: "inbox".into(),
        title: format!(
            "Consuming {n} events ({}): the inbox beside its baselines, {}",
            broker.name,
            if options.runs == 1 {
                "one run".to_owned()
            } else {
                format!("median of {} runs", options.runs)
            }
        ),
        y_label: "events/s".into(),
        bars: vec![
            ("inbox (one transaction per event)".into(), median(&inbox)),
            ("bare consumer loop (no database)".into(), median(&bare)),
            ("database alone (the inbox's inserts)".into(), median(&db)),
        ],
    });
    Ok(())
}

/// One run's rates, events/s.
struct Rates {
    inbox: f64,
    bare: f64,
    db: f64,
}

/// Fills a fresh topic through the relay, then measures the bare consumer, the inbox and the
/// database alone, in an order that alternates with `run` so drift on a shared machine does
/// not always favour the same one.
async fn one_run(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    n: usize,
    quick: bool,
    run: usize,
) -> anyhow::Result<Rates> {
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
    let stmts = Statements::new(Dialect::Postgres, &names);
    outbox_sqlx::migrate_inbox(pool, &stmts).await?;

    let mut rates = Rates {
        inbox: f64::NAN,
        bare: f64::NAN,
        db: f64::NAN,
    };
    let result = async {
        if run.is_multiple_of(2) {
            rates.bare = bare_loop(broker, &topic, n, quick)?;
            rates.inbox = with_inbox(pool, &names, stmts, broker, &topic, n).await?;
            rates.db = database_alone(pool, &names, n).await?;
        } else {
            rates.db = database_alone(pool, &names, n).await?;
            rates.inbox = with_inbox(pool, &names, stmts, broker, &topic, n).await?;
            rates.bare = bare_loop(broker, &topic, n, quick)?;
        }
        anyhow::Ok(())
    }
    .await;
    for table in outbox_core::table::Table::INBOX {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(Dialect::Postgres, table)
        )))
        .execute(pool)
        .await?;
    }
    drop_tables(pool, &names).await?;
    result.map(|()| rates)
}

/// Baseline: a bare consumer loop reading the same records, no database; from its first
/// record to its last.
fn bare_loop(broker: &Broker, topic: &str, n: usize, quick: bool) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", format!("bench-bare-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    if quick {
        let mut partitions = TopicPartitionList::new();
        for p in 0..broker.partitions {
            partitions.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&partitions)?;
    } else {
        consumer.subscribe(&[topic])?;
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
    Ok((n - 1) as f64 / started.map_or(f64::NAN, |s| s.elapsed().as_secs_f64()))
}

/// The inbox, from its first record to the last one committed in the database.
async fn with_inbox(
    pool: &PgPool,
    names: &TableNames,
    stmts: Statements,
    broker: &Broker,
    topic: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let registry = Registry::new(SqlxSchemaStore::new(pool.clone(), Arc::new(stmts)));
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &broker.bootstrap);
    let inbox = Inbox::new(
        SqlxInbox::new(pool.clone(), names, Nothing),
        registry,
        kafka,
        InboxSettings::new(format!("bench-inbox-{topic}"), [topic.to_owned()]),
    )?;
    let metrics = inbox.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut started = None;
    // A runner that ended early (an error) ends the wait; its error is reported below.
    while metrics.processed.get() < n as u64 && Instant::now() < deadline && !runner.is_finished() {
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
    Ok((n - 1) as f64 / elapsed)
}

/// Baseline: the database alone, the inbox's one-insert transactions, 16 at a time.
async fn database_alone(pool: &PgPool, names: &TableNames, n: usize) -> anyhow::Result<f64> {
    let insert = outbox_core::table::InboxStatements::new(Dialect::Postgres, names)
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
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
