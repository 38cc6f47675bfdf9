//! # outbox benchmarks
//!
//! Every figure beside its baseline, measured in the same run on the same database and broker:
//!
//! 1. publish overhead: a one-row business transaction with and without one `publish`
//!    (sequential and 8 concurrent writers), and `publish_all` of 100 vs 100 publishes;
//! 2. encode + validate of a 10-field record vs `apache_avro`'s own encoder;
//! 3. relay drain (100 B and 1 KiB payloads, 1,000 keys) vs the raw limits: the database's
//!    claim+delete loop alone and librdkafka producing the same records alone; and the naive
//!    relay (one row at a time);
//! 4. end-to-end latency (commit → consumer) at a fixed rate, polling vs LISTEN/NOTIFY;
//! 5. backlog scaling: draining a large backlog, rate at the start vs the end, peak RSS.
//!
//! ```sh
//! cargo run --release -p outbox-bench                 # full run (see BENCHMARKS.md)
//! cargo run -p outbox-bench -- --quick                # small counts, as CI runs it
//! ```
//!
//! PostgreSQL from `OUTBOX_TEST_PG_URL` (default the local `test` database); Kafka is
//! librdkafka's in-process mock cluster, and also the broker at `KAFKA_BOOTSTRAP_SERVERS` when
//! set. Ends with one `RESULT name=value` line per figure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use outbox_core::avro::AvroSchema;
use outbox_core::encode::EventCodec;
use outbox_core::relay::{InsertRows, RelayStore};
use outbox_core::table::TableNames;
use outbox_core::{Event, NewOutboxRow};
use outbox_relay::config::RelayConfig;
use outbox_relay::{Relay, Step};
use outbox_sqlx::postgres::PgOutbox;
use outbox_sqlx::{Configure as _, SqlxRelayStore};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Parser)]
struct Args {
    /// Small counts and short runs (CI keeps the harness from rotting; no targets).
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (publish, encode, drain, e2e, backlog); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Internal: run the relay for the backlog scenario in this process.
    #[arg(long, hide = true)]
    relay_child: Option<String>,
}

#[derive(Serialize, AvroSchema, Clone)]
#[avro(namespace = "bench")]
struct Payload {
    key: String,
    seq: i64,
    blob: String,
}

impl Event for Payload {
    const TOPIC: &'static str = "bench";
    fn key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

#[derive(Serialize, AvroSchema, Clone)]
#[avro(namespace = "bench")]
struct TenFields {
    order_id: String,
    customer: String,
    total_cents: i64,
    quantity: i32,
    ratio: f64,
    paid: bool,
    coupon: Option<String>,
    lines: Vec<i32>,
    currency: String,
    created_ms: i64,
}

/// The figures, in order, for the table and the RESULT lines.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
    results: Vec<(String, f64)>,
}

impl Report {
    fn row(&mut self, what: &str, ours: String, baseline: String) {
        println!("  {what:<46} {ours:>22}   {baseline}");
        self.rows.push((what.to_owned(), ours, baseline));
    }

    fn result(&mut self, name: &str, value: f64) {
        self.results.push((name.to_owned(), value));
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Broker {
    name: &'static str,
    bootstrap: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    partitions: i32,
}

impl Broker {
    fn mock() -> anyhow::Result<Self> {
        let mock = MockCluster::new(1)?;
        Ok(Self {
            name: "mock",
            bootstrap: mock.bootstrap_servers(),
            mock: Some(mock),
            partitions: 64,
        })
    }

    fn real(bootstrap: String) -> Self {
        Self {
            name: "tansu",
            bootstrap,
            mock: None,
            partitions: 16,
        }
    }

    async fn topic(&self, prefix: &str) -> anyhow::Result<String> {
        let topic = format!(
            "{prefix}-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        self.create(&topic).await?;
        Ok(topic)
    }

    async fn create(&self, topic: &str) -> anyhow::Result<()> {
        match &self.mock {
            Some(mock) => match mock.create_topic(topic, self.partitions, 1) {
                Ok(())
                | Err(rdkafka::error::KafkaError::MockCluster(
                    rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                )) => {}
                Err(e) => return Err(e.into()),
            },
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()?;
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                for result in admin
                    .create_topics(
                        &[NewTopic::new(
                            topic,
                            self.partitions,
                            TopicReplication::Fixed(1),
                        )],
                        &options,
                    )
                    .await?
                {
                    match result {
                        Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, e)) => anyhow::bail!("creating {t}: {e}"),
                    }
                }
            }
        }
        Ok(())
    }

    fn config(&self, pg_url: &str, names: &TableNames, extra: &str) -> anyhow::Result<RelayConfig> {
        let prefix = names.name(outbox_core::table::Table::Events).to_string();
        let text = format!(
            "database_url = \"{pg_url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\nbatch_size = 1000\npoll_interval = \"100ms\"\n{extra}\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            self.bootstrap
        );
        Ok(RelayConfig::from_toml(&text)?)
    }
}

fn fresh_names(tag: &str) -> anyhow::Result<TableNames> {
    Ok(TableNames::with_prefix(&format!(
        "bench_{tag}_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    ))?)
}

async fn outbox(pool: &PgPool, names: &TableNames, notify: bool) -> anyhow::Result<PgOutbox> {
    Ok(PgOutbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<Payload>()
        .notify_relay(notify)
        .build()
        .await?)
}

/// Fresh tables with the payload schema registered, and a relay store over them.
struct Fixture {
    names: TableNames,
    codec: Arc<EventCodec>,
    config: RelayConfig,
    store: SqlxRelayStore<sqlx::Postgres>,
}

async fn fixture(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    tag: &str,
) -> anyhow::Result<Fixture> {
    let names = fresh_names(tag)?;
    let codec = outbox(pool, &names, false)
        .await?
        .register::<Payload>()
        .await?;
    let config = broker.config(pg_url, &names, "")?;
    let store = outbox_relay::ops::relay_store(pool.clone(), &config)?;
    Ok(Fixture {
        names,
        codec,
        config,
        store,
    })
}

/// Rows for `n` events of `payload_bytes` on `topic`, over 1,000 keys.
fn rows(
    codec: &EventCodec,
    topic: &str,
    n: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<NewOutboxRow>> {
    let blob = "x".repeat(payload_bytes.saturating_sub(30));
    (0..n)
        .map(|i| {
            let event = Payload {
                key: format!("key-{}", i % 1000),
                seq: i as i64,
                blob: blob.clone(),
            };
            let mut row = NewOutboxRow::from_event(codec, &event)?;
            row.topic = topic.to_owned();
            Ok(row)
        })
        .collect()
}

async fn preload(
    store: &SqlxRelayStore<sqlx::Postgres>,
    rows: &[NewOutboxRow],
) -> anyhow::Result<()> {
    for chunk in rows.chunks(5000) {
        store.insert_rows(chunk).await?;
    }
    Ok(())
}

async fn drop_tables(pool: &PgPool, names: &TableNames) -> anyhow::Result<()> {
    for table in outbox_core::table::Table::ALL {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(outbox_core::table::Dialect::Postgres, table)
        )))
        .execute(pool)
        .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pg_url = std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into());
    if let Some(config) = args.relay_child {
        return relay_child(&config).await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&pg_url)
        .await?;
    let mut report = Report::default();
    let mode = if args.quick {
        "quick (small counts, no targets)"
    } else {
        "full"
    };
    println!("outbox benchmarks, {mode}; PostgreSQL at {pg_url}");
    println!("  {:<46} {:>22}   baseline", "figure", "outbox");

    let run = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if run("publish") {
        publish_overhead(&pool, &mut report, args.quick).await?;
    }
    if run("encode") {
        encode(&mut report, args.quick)?;
    }
    let mock = Broker::mock()?;
    let real = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Broker::real);
    if run("drain") {
        relay_drain(&pool, &pg_url, &mock, &mut report, args.quick).await?;
        if let Some(real) = &real {
            relay_drain(&pool, &pg_url, real, &mut report, args.quick).await?;
        }
    }
    let broker = real.as_ref().unwrap_or(&mock);
    if run("e2e") {
        e2e_latency(&pool, &pg_url, broker, &mut report, args.quick).await?;
    }
    if run("backlog") {
        backlog(&pool, &pg_url, broker, &mut report, args.quick).await?;
    }

    println!();
    for (name, value) in &report.results {
        println!("RESULT {name}={value:.3}");
    }
    Ok(())
}

async fn publish_overhead(pool: &PgPool, report: &mut Report, quick: bool) -> anyhow::Result<()> {
    println!("\n1. publish overhead (PostgreSQL)");
    let names = fresh_names("pub")?;
    let outbox = outbox(pool, &names, false).await?;
    let table = format!(
        "{}_business",
        names
            .name(outbox_core::table::Table::Events)
            .to_string()
            .trim_end_matches("_events")
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(pool)
    .await?;
    let insert = format!("INSERT INTO {table} (body) VALUES ($1)");
    let event = Payload {
        key: "k".into(),
        seq: 1,
        blob: "x".repeat(70),
    };
    let n = if quick { 200 } else { 5000 };
    let one = |with_event: bool| {
        let (pool, outbox, insert, event) =
            (pool.clone(), outbox.clone(), insert.clone(), event.clone());
        async move {
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind("order")
                .execute(&mut *tx)
                .await?;
            if with_event {
                outbox.publish(&mut *tx, &event).await?;
            }
            tx.commit().await?;
            anyhow::Ok(started.elapsed())
        }
    };
    // Alternate blocks so drift hurts both sides alike.
    let (mut base, mut with) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..10 {
        for _ in 0..n / 10 {
            base.push(one(false).await?);
        }
        for _ in 0..n / 10 {
            with.push(one(true).await?);
        }
    }
    let (b50, w50) = (percentile(&mut base, 0.5), percentile(&mut with, 0.5));
    let (b99, w99) = (percentile(&mut base, 0.99), percentile(&mut with, 0.99));
    report.row(
        &format!("tx + publish, sequential, {n} tx: p50 / p99"),
        format!("{:.3} / {:.3} ms", ms(w50), ms(w99)),
        format!("tx alone {:.3} / {:.3} ms", ms(b50), ms(b99)),
    );
    let ratio = w50.as_secs_f64() / b50.as_secs_f64();
    report.row(
        "publish overhead ratio (p50)",
        format!("{ratio:.3}"),
        "target <= 1.15".into(),
    );
    report.result("publish_overhead_ratio", ratio);

    let concurrent = |with_event: bool| {
        let one = &one;
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|_| async move {
                    let mut samples = Vec::new();
                    for _ in 0..n / 8 {
                        samples.push(one(with_event).await?);
                    }
                    anyhow::Ok(samples)
                })
                .collect();
            let mut all = Vec::new();
            for samples in futures_join(tasks).await {
                all.extend(samples?);
            }
            anyhow::Ok(all)
        }
    };
    let (mut base8, mut with8) = (concurrent(false).await?, concurrent(true).await?);
    let (b50, w50, b99, w99) = (
        percentile(&mut base8, 0.5),
        percentile(&mut with8, 0.5),
        percentile(&mut base8, 0.99),
        percentile(&mut with8, 0.99),
    );
    report.row(
        "tx + publish, 8 writers: p50 / p99",
        format!("{:.3} / {:.3} ms", ms(w50), ms(w99)),
        format!("tx alone {:.3} / {:.3} ms", ms(b50), ms(b99)),
    );
    report.result(
        "publish_overhead_ratio_8_writers",
        w50.as_secs_f64() / b50.as_secs_f64(),
    );

    let reps = if quick { 5 } else { 50 };
    let events: Vec<Payload> = (0..100)
        .map(|i| Payload {
            key: format!("k{i}"),
            seq: i,
            blob: "x".repeat(70),
        })
        .collect();
    let (mut batched, mut single) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        outbox.publish_all(&mut *tx, &events).await?;
        tx.commit().await?;
        batched.push(started.elapsed());
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        for e in &events {
            outbox.publish(&mut *tx, e).await?;
        }
        tx.commit().await?;
        single.push(started.elapsed());
    }
    let (b, s) = (percentile(&mut batched, 0.5), percentile(&mut single, 0.5));
    report.row(
        "publish_all of 100 events (p50)",
        format!("{:.3} ms", ms(b)),
        format!("100 publishes {:.3} ms", ms(s)),
    );
    report.result("publish_all_speedup", s.as_secs_f64() / b.as_secs_f64());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(pool)
        .await?;
    drop_tables(pool, &names).await
}

/// Polls futures concurrently on this task (no spawn, so borrowed data can be used).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future completed"))
        .collect()
}

fn encode(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    println!("\n2. encode + validate, 10-field record");
    let schema = outbox_core::Schema::from_avro(&TenFields::get_schema())?;
    let codec = EventCodec::new("bench-value", 1, schema);
    let event = TenFields {
        order_id: "order-123456".into(),
        customer: "customer-42".into(),
        total_cents: 123_456,
        quantity: 3,
        ratio: 0.25,
        paid: true,
        coupon: Some("SPRING".into()),
        lines: vec![1, 2, 3],
        currency: "EUR".into(),
        created_ms: 1_764_300_000_000,
    };
    let n = if quick { 10_000 } else { 300_000 };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(codec.encode(std::hint::black_box(&event))?);
    }
    let ours = started.elapsed().as_nanos() as f64 / n as f64;
    let avro = TenFields::get_schema();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&avro).build()?;
    let started = Instant::now();
    for _ in 0..n {
        let value = apache_avro::to_value(std::hint::black_box(&event))?.resolve(&avro)?;
        std::hint::black_box(writer.write_value_to_vec(value)?);
    }
    let theirs = started.elapsed().as_nanos() as f64 / n as f64;
    report.row(
        "encode + validate, ns/event",
        format!("{ours:.0} ns"),
        format!("apache_avro resolve+encode {theirs:.0} ns"),
    );
    report.result("encode_ns", ours);
    report.result("apache_avro_encode_ns", theirs);
    Ok(())
}

async fn relay_drain(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    println!(
        "\n3. relay drain on {} ({} partitions)",
        broker.name, broker.partitions
    );
    for payload in [100, 1024] {
        let n = if quick { 2_000 } else { 200_000 };
        let Fixture {
            names,
            codec,
            config,
            store,
        } = fixture(pool, pg_url, broker, "drain").await?;

        // Raw limit 1: the database's claim + delete loop alone.
        let topic = broker.topic("bench-db").await?;
        preload(&store, &rows(&codec, &topic, n, payload)?).await?;
        let started = Instant::now();
        loop {
            let batch = store.claim_batch(1000).await?;
            if batch.is_empty() {
                break;
            }
            store
                .ack(&batch.iter().map(|r| r.id).collect::<Vec<_>>())
                .await?;
        }
        let db_eps = n as f64 / started.elapsed().as_secs_f64();

        // Raw limit 2: librdkafka producing the same records alone.
        let topic = broker.topic("bench-kafka").await?;
        let records = rows(&codec, &topic, n, payload)?;
        let producer = outbox_relay::producer::producer(&config.kafka)?;
        produce_all(&producer, &records[..1], &topic).await?; // connect before timing
        let started = Instant::now();
        produce_all(&producer, &records[1..], &topic).await?;
        let kafka_eps = n as f64 / started.elapsed().as_secs_f64();

        // The relay.
        let topic = broker.topic("bench-relay").await?;
        preload(&store, &rows(&codec, &topic, n, payload)?).await?;
        let relay_producer = outbox_relay::producer::producer(&config.kafka)?;
        produce_all(&relay_producer, &rows(&codec, &topic, 1, payload)?, &topic).await?; // connect before timing
        let relay = Relay::new(
            store.clone(),
            relay_producer,
            config.relay.clone(),
            "bench".into(),
        );
        let started = Instant::now();
        let mut published = 0;
        while published < n {
            match relay.drain_once().await? {
                Step::Drained { published: p, .. } => published += p,
                Step::StandingBy => anyhow::bail!("the bench relay lost its lease"),
            }
        }
        let relay_eps = n as f64 / started.elapsed().as_secs_f64();
        let ratio = relay_eps / db_eps.min(kafka_eps);
        let label = format!("{} B", payload);
        report.row(
            &format!("relay drain {label}, {n} events ({})", broker.name),
            format!("{relay_eps:.0} ev/s"),
            format!("db alone {db_eps:.0}, kafka alone {kafka_eps:.0} ev/s"),
        );
        report.row(
            &format!("relay / min(limits), {label} ({})", broker.name),
            format!("{ratio:.3}"),
            "target >= 0.8".into(),
        );
        let suffix = if payload == 100 {
            String::new()
        } else {
            "_1kib".to_owned()
        };
        let broker_suffix = if broker.mock.is_some() { "" } else { "_tansu" };
        report.result(&format!("relay_eps{suffix}{broker_suffix}"), relay_eps);
        report.result(&format!("db_limit_eps{suffix}{broker_suffix}"), db_eps);
        report.result(
            &format!("kafka_limit_eps{suffix}{broker_suffix}"),
            kafka_eps,
        );
        report.result(&format!("relay_limit_ratio{suffix}{broker_suffix}"), ratio);

        if payload == 100 {
            // The naive relay most teams write first: one row, produce, wait, delete.
            let naive_n = if quick { 200 } else { 5_000 };
            let topic = broker.topic("bench-naive").await?;
            preload(&store, &rows(&codec, &topic, naive_n, payload)?).await?;
            let producer = outbox_relay::producer::producer(&config.kafka)?;
            let started = Instant::now();
            loop {
                let batch = store.claim_batch(1).await?;
                let Some(row) = batch.first() else { break };
                let record = outbox_relay::record::to_record(row, "urn:naive");
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)?;
                store.ack(&[row.id]).await?;
            }
            let naive_eps = naive_n as f64 / started.elapsed().as_secs_f64();
            report.row(
                &format!("naive relay, {naive_n} events ({})", broker.name),
                format!("{naive_eps:.0} ev/s"),
                format!("relay is {:.0}x (target >= 50x)", relay_eps / naive_eps),
            );
            report.result(&format!("naive_eps{broker_suffix}"), naive_eps);
            report.result(
                &format!("relay_vs_naive{broker_suffix}"),
                relay_eps / naive_eps,
            );
        }
        drop_tables(pool, &names).await?;
    }
    Ok(())
}

async fn produce_all(
    producer: &FutureProducer,
    records: &[NewOutboxRow],
    topic: &str,
) -> anyhow::Result<()> {
    let mut deliveries = Vec::with_capacity(records.len());
    for row in records {
        let mut record = FutureRecord::to(topic).payload(&row.payload);
        if let Some(key) = &row.event_key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

async fn e2e_latency(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    let (rate, secs) = if quick { (200, 2) } else { (2000, 20) };
    println!(
        "\n4. end-to-end latency at {rate} events/s for {secs} s ({})",
        broker.name
    );
    for notify in [false, true] {
        let names = fresh_names("e2e")?;
        let outbox = outbox(pool, &names, notify).await?;
        let topic = "bench";
        broker.create(topic).await?;
        let config = broker.config(
            pg_url,
            &names,
            if notify { "listen_notify = true" } else { "" },
        )?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn({
            let (pool, config) = (pool.clone(), config.clone());
            async move {
                outbox_relay::ops::run(pool, &config, async {
                    let _ = stop_rx.await;
                })
                .await
            }
        });
        let committed: Arc<Mutex<HashMap<uuid::Uuid, Instant>>> = Arc::default();
        let total = rate * secs;
        let consumer = std::thread::spawn({
            let (bootstrap, committed) = (broker.bootstrap.clone(), Arc::clone(&committed));
            move || receive(&bootstrap, topic, total, &committed)
        });
        tokio::time::sleep(Duration::from_millis(1500)).await; // consumer assigned, relay leading
        let writers = 4;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (pool, outbox, committed) =
                    (pool.clone(), outbox.clone(), Arc::clone(&committed));
                tokio::spawn(async move {
                    let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
                    let mut tick = tokio::time::interval(interval);
                    for i in 0..total / writers {
                        tick.tick().await;
                        let mut tx = pool.begin().await?;
                        let event = Payload {
                            key: format!("key-{}", (w * 1000 + i) % 1000),
                            seq: i as i64,
                            blob: "x".repeat(70),
                        };
                        let id = outbox.publish(&mut *tx, &event).await?;
                        tx.commit().await?;
                        committed.lock().expect("lock").insert(id, Instant::now());
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let mut latencies =
            tokio::task::spawn_blocking(move || consumer.join().expect("consumer")).await??;
        let _ = stop_tx.send(());
        relay.await??;
        let received = latencies.len();
        let (p50, p99) = (
            percentile(&mut latencies, 0.5),
            percentile(&mut latencies, 0.99),
        );
        let max = latencies.last().copied().unwrap_or_default();
        let how = if notify {
            "LISTEN/NOTIFY wake-up"
        } else {
            "polling only"
        };
        report.row(
            &format!("commit -> consumer, {how}: p50 / p99 / max"),
            format!("{:.1} / {:.1} / {:.1} ms", ms(p50), ms(p99), ms(max)),
            format!("{received} of {total} received"),
        );
        report.result(
            if notify {
                "e2e_p99_ms"
            } else {
                "e2e_poll_p99_ms"
            },
            ms(p99),
        );
        report.result(
            if notify {
                "e2e_p50_ms"
            } else {
                "e2e_poll_p50_ms"
            },
            ms(p50),
        );
        drop_tables(pool, &names).await?;
    }
    Ok(())
}

/// Reads `topic` from its end until `total` of the committed events arrived (or 60 s pass):
/// commit-to-receipt latencies.
fn receive(
    bootstrap: &str,
    topic: &str,
    total: usize,
    committed: &Mutex<HashMap<uuid::Uuid, Instant>>,
) -> anyhow::Result<Vec<Duration>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "outbox-bench")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(t.name(), p.id(), rdkafka::Offset::End)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut latencies = Vec::with_capacity(total);
    let mut pending: Vec<(uuid::Uuid, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.len() < total && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.context("consume")?;
            let received = Instant::now();
            let id = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
                .and_then(|v| uuid::Uuid::parse_str(&String::from_utf8_lossy(v)).ok());
            if let Some(id) = id {
                pending.push((id, received));
            }
        }
        // The writer records the commit instant just after commit returns; match later.
        let committed = committed.lock().expect("lock");
        pending.retain(|(id, received)| match committed.get(id) {
            Some(at) => {
                latencies.push(received.saturating_duration_since(*at));
                false
            }
            None => true,
        });
    }
    Ok(latencies)
}

async fn backlog(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    let n = if quick { 5_000 } else { 1_000_000 };
    println!("\n5. backlog of {n} events ({})", broker.name);
    let Fixture {
        names,
        codec,
        config: _,
        store,
    } = fixture(pool, pg_url, broker, "backlog").await?;
    let topic = broker.topic("bench-backlog").await?;
    for start in (0..n).step_by(50_000) {
        let chunk = rows(&codec, &topic, (n - start).min(50_000), 100)?;
        preload(&store, &chunk).await?;
    }
    // The relay in a process of its own, so its peak RSS is its own.
    let config_file =
        std::env::temp_dir().join(format!("outbox-bench-{}.toml", std::process::id()));
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{pg_url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n[relay]\nbatch_size = 1000\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            broker.bootstrap
        ),
    )?;
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--relay-child")
        .arg(&config_file)
        .spawn()?;
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut peak_kb = 0;
    loop {
        let left = store.status("outbox-relay").await?.backlog;
        samples.push((started.elapsed(), left));
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        if left == 0 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the relay exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peak_kb = peak_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&config_file);
    let total = started.elapsed();
    let time_until = |left_at_most: u64| {
        samples
            .iter()
            .find(|(_, left)| *left <= left_at_most)
            .map_or(total, |(t, _)| *t)
    };
    let tenth = n as u64 / 10;
    // From the first row drained (start-up of the relay process is not draining).
    let began = samples
        .iter()
        .rev()
        .find(|(_, left)| *left >= n as u64)
        .map_or(Duration::ZERO, |(t, _)| *t);
    let first = time_until(n as u64 - tenth).saturating_sub(began);
    let last = total.saturating_sub(time_until(tenth));
    let (first_rate, last_rate) = (
        tenth as f64 / first.as_secs_f64(),
        tenth as f64 / last.as_secs_f64().max(0.001),
    );
    report.row(
        &format!("drain {n}: rate first 10% / last 10%"),
        format!("{first_rate:.0} / {last_rate:.0} ev/s"),
        format!("ratio {:.2} (target >= 0.8)", last_rate / first_rate),
    );
    report.row(
        "relay peak RSS",
        format!("{:.1} MB", peak_kb as f64 / 1024.0),
        "target <= 100 MB".into(),
    );
    report.result("backlog_rate_ratio", last_rate / first_rate);
    report.result(
        "backlog_eps",
        n as f64 / total.saturating_sub(began).as_secs_f64(),
    );
    report.result("relay_peak_rss_mb", peak_kb as f64 / 1024.0);
    drop_tables(pool, &names).await
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The relay of the backlog scenario, run as `outbox-bench --relay-child CONFIG`.
async fn relay_child(config_file: &str) -> anyhow::Result<()> {
    let config = RelayConfig::load(Some(std::path::Path::new(config_file)), Default::default())?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(config.database_url()?)
        .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    outbox_relay::ops::run(pool, &config, async move {
        term.recv().await;
    })
    .await?;
    Ok(())
}
