//! Phase 4: end-to-end latency (commit to consumer) at a fixed rate, polling, with
//! LISTEN/NOTIFY and in WAL mode, beside the broker's own floor (produce to consume, no
//! database), on each broker: the mock cluster shows what the relay costs on a fast broker,
//! the test broker what a real network protocol adds.
//!
//! Each run starts from a fresh table (and slot) and a fresh topic, so what an earlier run or
//! phase left behind (dead rows, a long partition) cannot move it. Runs of the modes are
//! interleaved, so a noisy machine moves them alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

use crate::cpu::CpuTimes;
use crate::events::{Payload, WAL_RUN_TOPICS, WalRun0, WalRun1, WalRun2};
use crate::fixture::{Broker, drop_tables, fresh_names, outbox};
use crate::report::{Plot, Report, ms, percentile};
use crate::stages::{Path, Stamps, breakdown};

/// Commit instants by event id, filled by the writers, read by the consumer.
pub(crate) type Committed = Arc<Mutex<HashMap<uuid::Uuid, Instant>>>;

/// A finished run's commit (or send) instants by event id.
type Sent = HashMap<uuid::Uuid, Instant>;

/// What the consumer received: each event's id and arrival instant.
type Received = Vec<(uuid::Uuid, Instant)>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// librdkafka producing straight to the topic (the relay's producer settings), consumed
    /// like the relay's records: what the broker and the consumer cost alone.
    Floor,
    Poll,
    /// Polling without PostgreSQL's strict order (diagnostic: the horizon's share).
    PollUnordered,
    Notify,
    /// `source = "wal"`: the relay streams the outbox's replication slot.
    Wal,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Floor => "broker alone (produce -> consume)",
            Self::Poll => "polling",
            Self::PollUnordered => "polling, strict_order = false",
            Self::Notify => "LISTEN/NOTIFY wake-up",
            Self::Wal => "WAL mode",
        }
    }

    /// `(p99, p50)` result names.
    fn results(self) -> (&'static str, &'static str) {
        match self {
            Self::Floor => ("e2e_broker_floor_p99_ms", "e2e_broker_floor_p50_ms"),
            Self::Poll => ("e2e_poll_p99_ms", "e2e_poll_p50_ms"),
            Self::PollUnordered => ("e2e_poll_unordered_p99_ms", "e2e_poll_unordered_p50_ms"),
            Self::Notify => ("e2e_p99_ms", "e2e_p50_ms"),
            Self::Wal => ("wal_e2e_p99_ms", "wal_e2e_p50_ms"),
        }
    }
}

/// One run's latencies (ms) and, for the relay, each event's path.
struct Run {
    latencies_ms: Vec<f64>,
    p50: f64,
    p99: f64,
    max: f64,
    received: usize,
    paths: Vec<Path>,
    /// The machine's CPU busy share while the events were written and received.
    cpu_busy: Option<f64>,
}

pub(crate) async fn e2e_latency(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    // Short runs, each on a fresh topic: the test broker's in-memory storage slows as a topic
    // grows (its own produce -> consume p99 climbs from a few ms to hundreds within 40,000
    // records at this rate; the long floor run below shows it), so a long run would measure
    // the broker's slowdown, not the relay. More rounds keep the samples.
    let (rate, secs, rounds) = if quick { (200, 2, 1) } else { (2000, 5, 5) };
    println!(
        "\n4. end-to-end latency at {rate} events/s (4 writers, one event per transaction) for \
         {secs} s, {rounds} run(s) per mode, fresh table and topic per run ({})",
        broker.name
    );
    // The test broker's figures keep the plain names the targets were set on; the mock
    // cluster's carry its name.
    let suffix = if broker.mock.is_some() { "_mock" } else { "" };
    let mut runs: Vec<(Mode, Run)> = Vec::new();
    for round in 0..rounds {
        let mut modes = vec![Mode::Floor, Mode::Poll, Mode::Notify, Mode::Wal];
        if round == 0 {
            modes.insert(2, Mode::PollUnordered);
        }
        for mode in modes {
            let total = rate * secs;
            let run = match mode {
                Mode::Floor => floor(broker, rate, total).await?,
                Mode::Wal => wal_run(pool, pg_url, broker, round, rate, total).await?,
                mode => table_run(pool, pg_url, broker, mode, rate, total).await?,
            };
            report.row(
                &format!(
                    "commit -> consumer, {} ({}): p50 / p99 past 0.5 s / max of all",
                    mode.label(),
                    broker.name
                ),
                format!("{:.1} / {:.1} / {:.1} ms", run.p50, run.p99, run.max),
                format!(
                    "{} of {total} received; machine CPU busy {}",
                    run.received,
                    run.cpu_busy
                        .map_or("?".to_owned(), |b| format!("{:.0}%", b * 100.0))
                ),
            );
            let (p99, p50) = mode.results();
            report.result(&format!("{p99}{suffix}"), run.p99);
            report.result(&format!("{p50}{suffix}"), run.p50);
            runs.push((mode, run));
        }
    }
    if !quick {
        long_floor(broker, rate, secs, suffix, report).await?;
    }
    let mut series = Vec::new();
    for mode in [
        Mode::Floor,
        Mode::Poll,
        Mode::PollUnordered,
        Mode::Notify,
        Mode::Wal,
    ] {
        let mut of_mode: Vec<&Run> = runs
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, r)| r)
            .collect();
        if of_mode.is_empty() {
            continue;
        }
        of_mode.sort_by(|a, b| a.p99.total_cmp(&b.p99));
        let median = of_mode[of_mode.len() / 2];
        if !median.paths.is_empty() {
            println!(
                "  where the time goes, {} on {} (median run by p99):",
                mode.label(),
                broker.name
            );
            for (what, ours, tail) in breakdown(&median.paths) {
                report.row(
                    &format!("  {what} ({}, {}): p50 / p99", mode.label(), broker.name),
                    ours,
                    tail,
                );
            }
        }
        series.push((mode.label().to_owned(), median.latencies_ms.clone()));
    }
    report.plot(Plot::Distribution {
        file: format!("e2e-latency-{}", broker.name),
        title: format!(
            "Commit to consumer at {rate} events/s on {} (median run of each mode)",
            broker.name
        ),
        series,
    });
    Ok(())
}

/// One polling (or NOTIFY) run on a fresh table and topic: writers at `rate`, the relay, a
/// consumer.
async fn table_run(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    mode: Mode,
    rate: usize,
    total: usize,
) -> anyhow::Result<Run> {
    let notify = mode == Mode::Notify;
    let names = fresh_names("e2e")?;
    let outbox = outbox(pool, &names, notify).await?;
    let topic = broker.topic("e2e").await?;
    route_to(pool, &names, &topic).await?;
    let extra = match mode {
        Mode::Notify => "listen_notify = true",
        Mode::PollUnordered => "strict_order = false",
        _ => "",
    };
    let config = broker.config(pg_url, &names, extra)?;
    let run = measure::<Payload>(pool, &config, &outbox, broker, &topic, rate, total).await;
    // The routing function stays: it is shared by every run's trigger (CREATE OR REPLACE
    // keeps it one), and dropping it fails while another run's table, or one a killed run
    // left behind, still uses it.
    drop_tables(pool, &names).await?;
    broker.delete(&topic).await;
    run
}

/// One WAL-mode run on fresh tables, a fresh slot and an empty topic (the event type names
/// the topic: see [`WalRun0`]).
async fn wal_run(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    round: usize,
    rate: usize,
    total: usize,
) -> anyhow::Result<Run> {
    let names = fresh_names("e2ewal")?;
    outbox(pool, &names, false).await?; // the tables
    let mut config = broker.config(pg_url, &names, "")?;
    config.source = outbox_relay::config::EventSource::Wal;
    outbox_relay::commands::migrate(pool, &config).await?;
    let run = match round % WAL_RUN_TOPICS {
        0 => wal_measure::<WalRun0>(pool, &config, broker, rate, total).await,
        1 => wal_measure::<WalRun1>(pool, &config, broker, rate, total).await,
        _ => wal_measure::<WalRun2>(pool, &config, broker, rate, total).await,
    };
    outbox_sqlx::postgres::drop_wal_slot(pool, &names).await?;
    drop_tables(pool, &names).await?;
    run
}

async fn wal_measure<E>(
    pool: &PgPool,
    config: &outbox_relay::settings::Settings,
    broker: &Broker,
    rate: usize,
    total: usize,
) -> anyhow::Result<Run>
where
    E: outbox_core::Event + From<Payload> + Send + Sync + 'static,
{
    let outbox = outbox_sqlx::postgres::PgOutbox::builder(pool.clone())
        .table_names(config.tables.clone())
        .register::<E>()
        .wal(true)
        .build()
        .await?;
    // Empty: a topic an earlier bench left on the test broker is deleted first.
    broker.delete(E::TOPIC).await;
    broker.create(E::TOPIC).await?;
    let run = measure::<E>(pool, config, &outbox, broker, E::TOPIC, rate, total).await;
    broker.delete(E::TOPIC).await;
    run
}

/// Runs the relay of `config` while writers publish `total` events at `rate` through
/// `outbox` and a consumer reads `topic`: each event's latency and path.
async fn measure<E>(
    pool: &PgPool,
    config: &outbox_relay::settings::Settings,
    outbox: &outbox_sqlx::postgres::PgOutbox,
    broker: &Broker,
    topic: &str,
    rate: usize,
    total: usize,
) -> anyhow::Result<Run>
where
    E: outbox_core::Event + From<Payload> + Send + Sync + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn({
        let (pool, config) = (pool.clone(), config.clone());
        async move {
            outbox_relay::commands::run(pool, &config, async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    let committed: Committed = Arc::default();
    let consumer = std::thread::spawn({
        let (bootstrap, committed, topic) = (
            broker.bootstrap.clone(),
            Arc::clone(&committed),
            topic.to_owned(),
        );
        move || receive_at(&bootstrap, &topic, total, &committed)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await; // consumer assigned, relay leading
    let stamps = Stamps::global();
    let cpu = CpuTimes::now();
    stamps.start();
    let written = write_at_rate::<E>(pool, outbox, rate, total, &committed).await;
    let received = tokio::task::spawn_blocking(move || consumer.join().expect("consumer")).await?;
    let cpu_busy = cpu.and_then(CpuTimes::busy_since);
    let stages = stamps.stop();
    let _ = stop_tx.send(());
    relay.await??;
    written?;
    let received = received?;
    let committed = std::mem::take(&mut *committed.lock().expect("lock"));
    let paths = received
        .iter()
        .filter_map(|(id, at)| {
            Some(Path {
                committed: *committed.get(id)?,
                stages: stages.get(id).copied().unwrap_or_default(),
                received: *at,
            })
        })
        .collect();
    Ok(summarize(&committed, &received, paths, cpu_busy))
}

/// Points the fresh table's rows at `topic` (the benchmark event's topic is a constant):
/// a trigger, so the writers still call the real `publish`.
async fn route_to(
    pool: &PgPool,
    names: &outbox_core::table::TableNames,
    topic: &str,
) -> anyhow::Result<()> {
    let events = names.qualified(
        outbox_core::table::Dialect::Postgres,
        outbox_core::table::Table::Events,
    );
    sqlx::query(
        "CREATE OR REPLACE FUNCTION bench_e2e_route() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.topic := TG_ARGV[0]; RETURN NEW; END $$",
    )
    .execute(pool)
    .await?;
    // The topic name is ours (a prefix and hex digits): safe to splice.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER route BEFORE INSERT ON {events} FOR EACH ROW \
         EXECUTE FUNCTION bench_e2e_route('{topic}')"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// The broker's floor: the relay's producer settings, records like the relay's (key, about
/// 100 B of value, seven headers), one at a time at `rate`, to a fresh topic.
async fn floor(broker: &Broker, rate: usize, total: usize) -> anyhow::Result<Run> {
    let (committed, received, cpu_busy) = floor_samples(broker, rate, total).await?;
    Ok(summarize(&committed, &received, Vec::new(), cpu_busy))
}

/// The floor's send instants by id, what the consumer received, and the machine's CPU busy
/// share meanwhile.
async fn floor_samples(
    broker: &Broker,
    rate: usize,
    total: usize,
) -> anyhow::Result<(Sent, Received, Option<f64>)> {
    let topic = broker.topic("e2e-floor").await?;
    let kafka = outbox_relay::config::KafkaConfig {
        bootstrap_servers: Some(broker.bootstrap.clone()),
        ..Default::default()
    };
    let producer: FutureProducer = outbox_relay::producer::client_config(&kafka)?.create()?;
    let committed: Committed = Arc::default();
    let consumer = std::thread::spawn({
        let (bootstrap, committed, topic) = (
            broker.bootstrap.clone(),
            Arc::clone(&committed),
            topic.clone(),
        );
        move || receive_at(&bootstrap, &topic, total, &committed)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = CpuTimes::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let value = "x".repeat(100);
    let mut deliveries = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let id = uuid::Uuid::now_v7();
        let key = format!("key-{}", i % 1000);
        let id_text = id.to_string();
        let headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", id_text.as_str()),
            ("ce_source", "outbox-bench"),
            ("ce_type", "bench.Payload"),
            ("ce_time", "2026-01-01T00:00:00Z"),
            ("content-type", "avro/binary"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ]
        .iter()
        .fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(*v),
            })
        });
        committed.lock().expect("lock").insert(id, Instant::now());
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => anyhow::bail!("producing the floor's records: {e}"),
        }
    }
    for delivery in deliveries {
        let _ = delivery.await;
    }
    let received =
        tokio::task::spawn_blocking(move || consumer.join().expect("consumer")).await??;
    let cpu_busy = cpu.and_then(CpuTimes::busy_since);
    broker.delete(&topic).await;
    let committed = std::mem::take(&mut *committed.lock().expect("lock"));
    Ok((committed, received, cpu_busy))
}

/// The broker alone for [`LONG_FLOOR_SECS`] on one topic, its p99 by quarter of the run (by
/// send order): how the broker's own latency moves as the topic grows, which is why the
/// measured runs are short.
async fn long_floor(
    broker: &Broker,
    rate: usize,
    secs: usize,
    suffix: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let total = rate * LONG_FLOOR_SECS;
    let (committed, received, _) = floor_samples(broker, rate, total).await?;
    let mut by_commit: Vec<(Instant, Duration)> = received
        .iter()
        .filter_map(|(id, at)| {
            let sent = *committed.get(id)?;
            Some((sent, at.saturating_duration_since(sent)))
        })
        .collect();
    by_commit.sort_by_key(|(sent, _)| *sent);
    let quarter = by_commit.len().div_ceil(4).max(1);
    let p99s: Vec<f64> = by_commit
        .chunks(quarter)
        .map(|chunk| {
            let mut took: Vec<Duration> = chunk.iter().map(|(_, d)| *d).collect();
            ms(percentile(&mut took, 0.99))
        })
        .collect();
    report.row(
        &format!(
            "broker alone, one {LONG_FLOOR_SECS} s run on one topic ({}): p99 by quarter",
            broker.name
        ),
        p99s.iter()
            .map(|p| format!("{p:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
            + " ms",
        format!(
            "{} of {total} received; the measured runs are {secs} s each, on fresh topics",
            by_commit.len(),
        ),
    );
    if let (Some(first), Some(last)) = (p99s.first(), p99s.last()) {
        report.result(
            &format!("e2e_broker_floor_long_first_quarter_p99_ms{suffix}"),
            *first,
        );
        report.result(
            &format!("e2e_broker_floor_long_last_quarter_p99_ms{suffix}"),
            *last,
        );
    }
    Ok(())
}

/// How long the long floor run lasts (the measured runs' length before they were shortened).
const LONG_FLOOR_SECS: usize = 20;

/// Events committed in a run's first half second are left out of its percentiles and stage
/// rows (not out of its max): the rate is the figure's condition, and the relay, idle before
/// the writers start, notices their first events only at its next poll (up to
/// `poll_interval`, 100 ms here; at once with LISTEN/NOTIFY). In a 5 s run those are 2% of the
/// events, enough to make the p99 the start-up's. Every mode, the floor too, is cut alike.
const WARM_UP: Duration = Duration::from_millis(500);

/// One run's figures.
fn summarize(
    committed: &HashMap<uuid::Uuid, Instant>,
    received: &[(uuid::Uuid, Instant)],
    mut paths: Vec<Path>,
    cpu_busy: Option<f64>,
) -> Run {
    let steady_from = committed.values().min().map(|first| *first + WARM_UP);
    let steady = |at: &Instant| steady_from.is_none_or(|from| *at >= from);
    let mut all = Vec::with_capacity(received.len());
    let mut latencies = Vec::with_capacity(received.len());
    for (id, at) in received {
        let Some(sent) = committed.get(id) else {
            continue;
        };
        let took = at.saturating_duration_since(*sent);
        all.push(took);
        if steady(sent) {
            latencies.push(took);
        }
    }
    paths.retain(|path| steady(&path.committed));
    let (p50, p99) = (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99),
    );
    let max = all.iter().max().copied().unwrap_or_default();
    Run {
        latencies_ms: latencies.iter().map(|d| ms(*d)).collect(),
        p50: ms(p50),
        p99: ms(p99),
        max: ms(max),
        received: all.len(),
        paths,
        cpu_busy,
    }
}

/// Publishes `total` events, one per transaction, at `rate` per second from 4 writers,
/// recording each commit instant in `committed`.
pub(crate) async fn write_at_rate<E>(
    pool: &PgPool,
    outbox: &outbox_sqlx::postgres::PgOutbox,
    rate: usize,
    total: usize,
    committed: &Committed,
) -> anyhow::Result<()>
where
    E: outbox_core::Event + From<Payload> + Send + Sync + 'static,
{
    let writers = 4;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (pool, outbox, committed) = (pool.clone(), outbox.clone(), Arc::clone(committed));
            tokio::spawn(async move {
                let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
                let mut tick = tokio::time::interval(interval);
                for i in 0..total / writers {
                    tick.tick().await;
                    let mut tx = pool.begin().await?;
                    let event = E::from(Payload {
                        key: format!("key-{}", (w * 1000 + i) % 1000),
                        seq: i as i64,
                        blob: "x".repeat(70),
                    });
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
    Ok(())
}

/// Reads `topic` from its end until `total` of the committed events arrived (or 120 s pass):
/// each event's id and receipt instant. The consumer is tuned for latency, as a fair reader
/// would be: a fetch returns as soon as one byte is there, and waits at most 5 ms otherwise.
fn receive_at(
    bootstrap: &str,
    topic: &str,
    total: usize,
    committed: &Mutex<HashMap<uuid::Uuid, Instant>>,
) -> anyhow::Result<Vec<(uuid::Uuid, Instant)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("outbox-bench-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(t.name(), p.id(), rdkafka::Offset::End)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut received = Vec::with_capacity(total);
    let mut pending: Vec<(uuid::Uuid, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.len() < total && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.context("consume")?;
            let at = Instant::now();
            let id = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
                .and_then(|v| uuid::Uuid::parse_str(&String::from_utf8_lossy(v)).ok());
            if let Some(id) = id {
                pending.push((id, at));
            }
        }
        // The writer records the commit instant just after commit returns; match later.
        let committed = committed.lock().expect("lock");
        pending.retain(|(id, at)| {
            if committed.contains_key(id) {
                received.push((*id, *at));
                false
            } else {
                true
            }
        });
    }
    Ok(received)
}
