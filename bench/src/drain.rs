//! Phase 3: relay drain beside baselines that do the relay's own work.
//!
//! Four contenders per payload, each on a fresh table (preloaded, then `VACUUM ANALYZE`d so
//! autovacuum does not land in one contender's run and not another's) and a fresh topic:
//!
//! - the relay (`drain_once` until the backlog is gone);
//! - the database alone: the relay's store calls in the relay's pattern (`read_after` a
//!   cursor, the relay's batch size, strict order as configured, `ack` fenced by a lease);
//! - librdkafka alone: the records the relay would produce (`record::to_record` of the rows
//!   as the store reads them: keys, CloudEvents and stored headers, timestamps), with the
//!   relay's producer configuration, all enqueued then all awaited;
//! - the naive relay: one row, produce, wait, delete.
//!
//! They run in rounds, the order reversed every other round, so a machine that gets busier
//! moves every contender. Each round records every figure once (the RESULT line gives the
//! median and spread over rounds); `relay_limit_ratio` is computed per round, relay against
//! the smaller of that round's two limits, and its RESULT is the median of those ratios.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use outbox_core::NewOutboxRow;
use outbox_core::encode::EventCodec;
use outbox_core::relay::{
    AdminStore, FailureStore, Fence, LeaseStore, OutboxRecord, RelayStore, RelayStoreExt,
};
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_relay::producer::KafkaProducer;
use outbox_relay::record::to_record;
use outbox_relay::{Relay, Step};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use sqlx::PgPool;

use crate::Options;
use crate::cpu::CpuTimes;
use crate::fixture::{Broker, Fixture, drop_tables, fixture, preload, random_rows, rows};
use crate::profile::{StoreTimes, TimedStore};
use crate::report::{Plot, Report, Spread};

/// What one measured run drains.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) payload: usize,
    pub(crate) n: usize,
    pub(crate) partitions: i32,
    /// Pseudo-random payload letters instead of one repeated letter (see
    /// [`crate::fixture::random_rows`]).
    pub(crate) random: bool,
}

impl Load {
    fn rows(&self, codec: &EventCodec, topic: &str) -> anyhow::Result<Vec<NewOutboxRow>> {
        if self.random {
            random_rows(codec, topic, self.n, self.payload)
        } else {
            rows(codec, topic, self.n, self.payload)
        }
    }
}

/// A payload size as the figures name it.
pub(crate) fn size_label(payload: usize) -> String {
    match payload {
        p if p >= 1024 && p % 1024 == 0 => format!("{} KiB", p / 1024),
        p => format!("{p} B"),
    }
}

/// The suffix RESULT names carry for a broker: none for the mock cluster.
pub(crate) fn broker_suffix(broker: &Broker) -> &'static str {
    if broker.mock.is_some() { "" } else { "_tansu" }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Relay,
    Db,
    Kafka,
    Naive,
}

/// One round's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Round {
    relay: Option<RelayRun>,
    db: Option<DbRun>,
    kafka: Option<KafkaRun>,
    naive_eps: f64,
}

pub(crate) async fn relay_drain(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    options: &Options,
) -> anyhow::Result<()> {
    let (quick, rounds) = (options.quick, options.runs.max(1));
    println!(
        "\n3. relay drain on {} ({} partitions), {rounds} round(s) of relay / db alone / kafka alone / naive",
        broker.name, broker.partitions
    );
    let b = broker_suffix(broker);
    for payload in [100, 1024] {
        let load = Load {
            payload,
            n: if quick { 2_000 } else { 100_000 },
            partitions: broker.partitions,
            random: false,
        };
        let naive = Load {
            n: if quick { 200 } else { 2_000 },
            ..load
        };
        let label = size_label(payload);
        let suffix = if payload == 100 { "" } else { "_1kib" };
        let mut done = Vec::new();
        for round in 0..rounds {
            let mut order = [
                Contender::Relay,
                Contender::Db,
                Contender::Kafka,
                Contender::Naive,
            ];
            if round % 2 == 1 {
                order.reverse();
            }
            let mut r = Round::default();
            for contender in order {
                match contender {
                    Contender::Relay => {
                        r.relay = Some(relay_run(pool, pg_url, broker, &load).await?);
                    }
                    Contender::Db => {
                        r.db = Some(db_alone(pool, pg_url, broker, &load).await?);
                    }
                    Contender::Kafka => {
                        r.kafka = Some(kafka_alone(pool, pg_url, broker, &load).await?);
                    }
                    Contender::Naive => {
                        r.naive_eps = naive_relay(pool, pg_url, broker, &naive).await?;
                    }
                }
            }
            let (Some(relay), Some(db), Some(kafka)) = (r.relay, r.db, r.kafka) else {
                anyhow::bail!("a contender of round {} did not run", round + 1);
            };
            let ratio = relay.eps / db.eps.min(kafka.eps);
            println!(
                "  round {} ({order:?}): relay {:.0}, db alone {:.0}, kafka alone {:.0}, naive {:.0} ev/s; ratio {ratio:.3}",
                round + 1,
                relay.eps,
                db.eps,
                kafka.eps,
                r.naive_eps
            );
            report.result(&format!("relay_eps{suffix}{b}"), relay.eps);
            report.result(&format!("db_limit_eps{suffix}{b}"), db.eps);
            report.result(&format!("kafka_limit_eps{suffix}{b}"), kafka.eps);
            report.result(&format!("relay_limit_ratio{suffix}{b}"), ratio);
            report.result(&format!("naive_eps{suffix}{b}"), r.naive_eps);
            report.result(
                &format!("relay_vs_naive{suffix}{b}"),
                relay.eps / r.naive_eps,
            );
            report.result(&format!("relay_db_time_share{suffix}{b}"), relay.db_share());
            report.result(
                &format!("relay_serial_ratio{suffix}{b}"),
                relay.eps * (1.0 / db.eps + 1.0 / kafka.eps),
            );
            if let Some(busy) = relay.cpu_busy {
                report.result(&format!("relay_cpu_busy{suffix}{b}"), busy);
            }
            if let Some(ceiling) = cpu_ceiling(&db, &kafka) {
                report.result(&format!("cpu_ceiling_eps{suffix}{b}"), ceiling);
                report.result(
                    &format!("ceiling_of_relay_limit_ratio{suffix}{b}"),
                    ceiling / db.eps.min(kafka.eps),
                );
                report.result(
                    &format!("relay_cpu_ceiling_ratio{suffix}{b}"),
                    relay.eps / ceiling,
                );
            }
            done.push(r);
        }
        report_payload(report, broker, &label, &load, naive.n, &done);
    }
    Ok(())
}

/// The table rows and the picture of one payload's rounds.
fn report_payload(
    report: &mut Report,
    broker: &Broker,
    label: &str,
    load: &Load,
    naive_n: usize,
    rounds: &[Round],
) {
    let relays: Vec<RelayRun> = rounds.iter().filter_map(|r| r.relay).collect();
    let dbs: Vec<DbRun> = rounds.iter().filter_map(|r| r.db).collect();
    let kafkas: Vec<KafkaRun> = rounds.iter().filter_map(|r| r.kafka).collect();
    let spread = |values: Vec<f64>| Spread::of(&values);
    let relay = spread(relays.iter().map(|r| r.eps).collect());
    let db = spread(dbs.iter().map(|r| r.eps).collect());
    let kafka = spread(kafkas.iter().map(|r| r.eps).collect());
    let naive = spread(rounds.iter().map(|r| r.naive_eps).collect());
    let ratios: Vec<f64> = relays
        .iter()
        .zip(&dbs)
        .zip(&kafkas)
        .map(|((r, d), k)| r.eps / d.eps.min(k.eps))
        .collect();
    let ratio = spread(ratios);
    let runs = rounds.len();
    let name = broker.name;
    report.row(
        &format!("relay drain {label}, {} events ({name})", load.n),
        format!("{:.0} ev/s", relay.median),
        format!(
            "db alone {:.0}, kafka alone {:.0} ev/s (medians of {runs}; relay {:.0}-{:.0})",
            db.median, kafka.median, relay.min, relay.max
        ),
    );
    report.row(
        &format!("relay / min(limits), {label} ({name})"),
        format!("{:.3}", ratio.median),
        format!(
            "median of per-round ratios ({:.3}-{:.3}); target >= 0.9",
            ratio.min, ratio.max
        ),
    );
    // On a machine the relay shares with its database and broker, the two limits compete for
    // the same cores: doing both jobs one after the other is the rate with no overlap at all.
    let serial: Vec<f64> = relays
        .iter()
        .zip(&dbs)
        .zip(&kafkas)
        .map(|((r, d), k)| r.eps * (1.0 / d.eps + 1.0 / k.eps))
        .collect();
    let serial = spread(serial);
    let busy = |values: Vec<Option<f64>>| {
        let values: Vec<f64> = values.into_iter().flatten().collect();
        (!values.is_empty()).then(|| Spread::of(&values).median * 100.0)
    };
    let cpu = (
        busy(relays.iter().map(|r| r.cpu_busy).collect()),
        busy(dbs.iter().map(|r| r.cpu_busy).collect()),
        busy(kafkas.iter().map(|r| r.cpu_busy).collect()),
    );
    report.row(
        &format!("relay / (db then kafka, no overlap), {label} ({name})"),
        format!("{:.3}", serial.median),
        format!(
            "above 1: the relay overlaps the two jobs ({:.3}-{:.3})",
            serial.min, serial.max
        ),
    );
    if let (Some(relay_cpu), Some(db_cpu), Some(kafka_cpu)) = cpu {
        report.row(
            &format!("machine CPU busy, {label} ({name})"),
            format!("relay {relay_cpu:.0}%"),
            format!("db alone {db_cpu:.0}%, kafka alone {kafka_cpu:.0}% (medians)"),
        );
    }
    let ceilings: Vec<(f64, f64)> = relays
        .iter()
        .zip(&dbs)
        .zip(&kafkas)
        .filter_map(|((r, d), k)| cpu_ceiling(d, k).map(|c| (c / d.eps.min(k.eps), r.eps / c)))
        .collect();
    if !ceilings.is_empty() {
        let limit = spread(ceilings.iter().map(|c| c.0).collect());
        let relay = spread(ceilings.iter().map(|c| c.1).collect());
        report.row(
            &format!("CPU ceiling of relay / min(limits), {label} ({name})"),
            format!("{:.3}", limit.median),
            format!(
                "both jobs at their CPU cost alone, every core busy ({:.3}-{:.3}); the relay \
                 reaches {:.3} of that rate ({:.3}-{:.3})",
                limit.min, limit.max, relay.median, relay.min, relay.max
            ),
        );
    }
    report.row(
        &format!("naive relay {label}, {naive_n} events ({name})"),
        format!("{:.0} ev/s", naive.median),
        format!("relay is {:.0}x", relay.median / naive.median),
    );
    // The profile of the median relay run.
    let mut by_rate = relays;
    by_rate.sort_by(|a, b| a.eps.total_cmp(&b.eps));
    if let Some(run) = by_rate.get(by_rate.len() / 2) {
        let enqueue_per_record = Spread::of(
            &kafkas
                .iter()
                .map(|k| k.enqueue.as_secs_f64() / load.n as f64)
                .collect::<Vec<_>>(),
        )
        .median;
        let db_alone = Spread::of(
            &dbs.iter()
                .map(|d| d.elapsed.as_secs_f64())
                .collect::<Vec<_>>(),
        )
        .median;
        report.row(
            &format!("relay time, {label} ({name})"),
            run.profile(enqueue_per_record * load.n as f64),
            format!(
                "db alone {:.2} s (read {:.2} + delete {:.2})",
                db_alone,
                median_secs(dbs.iter().map(|d| d.times.read)),
                median_secs(dbs.iter().map(|d| d.times.ack)),
            ),
        );
    }
    report.plot(Plot::Bars {
        file: "drain-vs-baselines".into(),
        title: format!("Relay drain beside its baselines (median of {runs} rounds)"),
        y_label: "events/s".into(),
        bars: vec![
            (format!("relay {label} ({name})"), relay.median),
            (format!("db alone {label} ({name})"), db.median),
            (format!("kafka alone {label} ({name})"), kafka.median),
            (format!("naive {label} ({name})"), naive.median),
        ],
    });
}

/// The rate at which the machine's cores, all busy, would do both jobs at the CPU cost each
/// has alone (busy share over rate, per event): the highest rate a relay sharing these cores
/// with its database and broker could reach, however well it overlaps the jobs.
fn cpu_ceiling(db: &DbRun, kafka: &KafkaRun) -> Option<f64> {
    let per_event = db.cpu_busy? / db.eps + kafka.cpu_busy? / kafka.eps;
    (per_event > 0.0).then(|| 1.0 / per_event)
}

fn median_secs(values: impl Iterator<Item = Duration>) -> f64 {
    Spread::of(&values.map(|d| d.as_secs_f64()).collect::<Vec<_>>()).median
}

/// One relay drain: its rate and where its time went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayRun {
    pub(crate) eps: f64,
    pub(crate) elapsed: Duration,
    pub(crate) times: StoreTimes,
    /// The machine's CPU busy share during the drain.
    pub(crate) cpu_busy: Option<f64>,
}

impl RelayRun {
    /// The share of the drain with a database call outstanding.
    fn db_share(&self) -> f64 {
        self.times.busy.as_secs_f64() / self.elapsed.as_secs_f64()
    }

    /// Where the time went; `enqueue_secs` is librdkafka's enqueue time for as many records
    /// (measured by the kafka-alone baseline), since the relay's own is not observable here.
    fn profile(&self, enqueue_secs: f64) -> String {
        let total = self.elapsed.as_secs_f64();
        let t = &self.times;
        format!(
            "{total:.2} s: a database call outstanding {:.2} (read {:.2} in {} calls, delete \
             {:.2}, lease/status {:.2}), enqueue ~{enqueue_secs:.2} (beside the delete)",
            t.busy.as_secs_f64(),
            t.read.as_secs_f64(),
            t.reads,
            t.ack.as_secs_f64(),
            t.other.as_secs_f64(),
        )
    }
}

/// A fresh table holding `load`'s rows, `VACUUM ANALYZE`d, and a fresh topic (created on the
/// broker when `create_topic`).
async fn prepare(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    load: &Load,
    tag: &str,
    create_topic: bool,
) -> anyhow::Result<(Fixture, String)> {
    let fx = fixture(pool, pg_url, broker, "drain").await?;
    let topic = if create_topic {
        broker.topic_with(tag, load.partitions).await?
    } else {
        format!("{tag}-{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
    };
    preload(&fx.store, &load.rows(&fx.codec, &topic)?).await?;
    vacuum(pool, &fx.names).await?;
    Ok((fx, topic))
}

async fn vacuum(pool: &PgPool, names: &TableNames) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM ANALYZE {}",
        names.qualified(Dialect::Postgres, Table::Events)
    )))
    .execute(pool)
    .await?;
    Ok(())
}

async fn clean_up(pool: &PgPool, broker: &Broker, fx: &Fixture, topic: Option<&str>) {
    if let Err(e) = drop_tables(pool, &fx.names).await {
        eprintln!("  (could not drop the bench tables: {e})");
    }
    if let Some(topic) = topic {
        broker.delete(topic).await;
    }
}

/// Produces one record to `topic` and waits for it, so the timed part starts with the
/// producer connected and the topic's metadata known.
pub(crate) async fn warm_up(producer: &KafkaProducer, topic: &str) -> anyhow::Result<()> {
    producer
        .send(
            FutureRecord::to(topic).key("warm-up").payload("warm-up"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// The relay draining `load` from a fresh table to a fresh topic.
pub(crate) async fn relay_run(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    load: &Load,
) -> anyhow::Result<RelayRun> {
    let (fx, topic) = prepare(pool, pg_url, broker, load, "bench-relay", true).await?;
    let store = TimedStore::new(fx.store.clone());
    let producer = outbox_relay::producer::producer(&fx.config.kafka)?;
    warm_up(&producer, &topic).await?;
    let relay = Relay::builder(store.clone(), producer)
        .with_settings(fx.config.relay.clone())
        .with_instance("bench")
        .build();
    let (started, cpu) = (Instant::now(), CpuTimes::now());
    drain_all(&relay, load.n).await?;
    let elapsed = started.elapsed();
    let cpu_busy = cpu.and_then(CpuTimes::busy_since);
    drop(relay);
    clean_up(pool, broker, &fx, Some(&topic)).await;
    Ok(RelayRun {
        eps: load.n as f64 / elapsed.as_secs_f64(),
        elapsed,
        times: store.times(),
        cpu_busy,
    })
}

/// The database alone.
#[derive(Debug, Clone, Copy)]
struct DbRun {
    eps: f64,
    elapsed: Duration,
    times: StoreTimes,
    cpu_busy: Option<f64>,
}

/// The relay's database work alone: the same store, its calls in the relay's pattern.
async fn db_alone(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    load: &Load,
) -> anyhow::Result<DbRun> {
    let (fx, _topic) = prepare(pool, pg_url, broker, load, "bench-db", false).await?;
    let settings = &fx.config.relay;
    let store = TimedStore::new(fx.store.clone());
    let token = store
        .try_acquire_lease(&settings.lease_name, "bench-db", settings.lease_ttl)
        .await?
        .context("the db-alone baseline's lease is held")?;
    let fence = Fence {
        lease: settings.lease_name.clone(),
        holder: "bench-db".into(),
        token,
    };
    let before = store.times();
    let (started, cpu) = (Instant::now(), CpuTimes::now());
    let mut cursor = i64::MIN;
    let mut deleted = 0;
    loop {
        let rows = store.read_after(cursor, settings.batch_size).await?;
        let Some(last) = rows.last() else { break };
        cursor = last.id();
        let ids: Vec<i64> = rows.iter().map(|r| r.id()).collect();
        deleted += store.ack(&ids, Some(&fence)).await?;
    }
    let elapsed = started.elapsed();
    let cpu_busy = cpu.and_then(CpuTimes::busy_since);
    anyhow::ensure!(
        deleted == load.n as u64,
        "db alone deleted {deleted} of {} rows",
        load.n
    );
    let after = store.times();
    clean_up(pool, broker, &fx, None).await;
    Ok(DbRun {
        eps: load.n as f64 / elapsed.as_secs_f64(),
        elapsed,
        times: after - before,
        cpu_busy,
    })
}

/// librdkafka alone.
#[derive(Debug, Clone, Copy)]
struct KafkaRun {
    eps: f64,
    /// Time to hand every record to the producer (the rest is awaiting acknowledgements).
    enqueue: Duration,
    cpu_busy: Option<f64>,
}

/// librdkafka producing what the relay would, with its configuration: the rows are read
/// (untimed) as the relay reads them and turned into records by the relay's `to_record`.
async fn kafka_alone(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    load: &Load,
) -> anyhow::Result<KafkaRun> {
    let (fx, topic) = prepare(pool, pg_url, broker, load, "bench-kafka", true).await?;
    let mut records: Vec<OutboxRecord> = Vec::with_capacity(load.n);
    let mut cursor = i64::MIN;
    loop {
        let batch = fx.store.read_records_after(cursor, 10_000).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.id;
        records.extend(batch);
    }
    anyhow::ensure!(records.len() == load.n, "read {} rows", records.len());
    let source = &fx.config.relay.source;
    let producer = outbox_relay::producer::producer(&fx.config.kafka)?;
    warm_up(&producer, &topic).await?;
    let (started, cpu) = (Instant::now(), CpuTimes::now());
    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        // As the relay enqueues: the record built from the row, a full queue waited out.
        let mut kafka_record = to_record(record, source);
        loop {
            match producer.send_result(kafka_record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    kafka_record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let enqueue = started.elapsed();
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let elapsed = started.elapsed();
    let cpu_busy = cpu.and_then(CpuTimes::busy_since);
    drop(producer);
    clean_up(pool, broker, &fx, Some(&topic)).await;
    Ok(KafkaRun {
        eps: load.n as f64 / elapsed.as_secs_f64(),
        enqueue,
        cpu_busy,
    })
}

/// The naive relay most teams write first: one row, produce, wait, delete.
async fn naive_relay(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    load: &Load,
) -> anyhow::Result<f64> {
    let (fx, topic) = prepare(pool, pg_url, broker, load, "bench-naive", true).await?;
    let source = &fx.config.relay.source;
    let producer = outbox_relay::producer::producer(&fx.config.kafka)?;
    warm_up(&producer, &topic).await?;
    let started = Instant::now();
    let mut sent = 0;
    loop {
        let batch = fx.store.read_batch(1).await?;
        let Some(row) = batch.first() else { break };
        producer
            .send(to_record(row, source), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        fx.store.ack(&[row.id], None).await?;
        sent += 1;
    }
    let eps = sent as f64 / started.elapsed().as_secs_f64();
    drop(producer);
    clean_up(pool, broker, &fx, Some(&topic)).await;
    Ok(eps)
}

/// Runs `relay` until it has published `n` records.
pub(crate) async fn drain_all<S>(relay: &Relay<S>, n: usize) -> anyhow::Result<()>
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore,
{
    let mut published = 0;
    while published < n {
        match relay.drain_once().await? {
            Step::Drained { published: p, .. } => published += p,
            Step::StandingBy => anyhow::bail!("the bench relay lost its lease"),
        }
    }
    Ok(())
}
