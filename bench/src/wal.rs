//! Phase 6: WAL mode (`source = "wal"`) beside the polling relay: publish overhead (a
//! logical message vs a row) and the drain rate of a backlog held in the slot. Its
//! end-to-end latency is measured in phase 4, interleaved with the other modes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_relay::metrics::Metrics;
use outbox_relay::settings::Settings;
use outbox_relay::wal::{PgWireStream, WalEvent, WalStream};
use outbox_sqlx::postgres::PgOutbox;
use sqlx::PgPool;

use crate::cpu::CpuTimes;
use crate::events::Payload;
use crate::fixture::{Broker, drop_tables, fresh_names, outbox};
use crate::report::{Report, ms, percentile};

pub(crate) async fn wal_mode(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    options: &crate::Options,
) -> anyhow::Result<()> {
    let (publishes, backlog) = if options.quick {
        (200, 5_000)
    } else {
        (2_000, 100_000)
    };
    println!(
        "\n6. WAL mode (logical replication slot, {}), {} drain run(s), each on a fresh slot \
         and an emptied topic",
        broker.name, options.runs
    );
    let fresh = Fresh::new(pool, pg_url, broker).await?;
    let result = publish_overhead(pool, &fresh, report, publishes).await;
    fresh.drop(pool).await?;
    result?;
    for _ in 0..options.runs {
        let fresh = Fresh::new(pool, pg_url, broker).await?;
        // The benchmark event's topic is fixed: emptied, so an earlier run's records (or
        // another phase's) do not sit in the partitions this run appends to.
        broker.delete(<Payload as outbox_core::Event>::TOPIC).await;
        broker
            .create(<Payload as outbox_core::Event>::TOPIC)
            .await?;
        // As the polling drain's: the relay's producer produces one record to the topic
        // and waits for it before the timed drain (see `start`), so the broker's first-use
        // costs of a new topic and the producer's own start fall outside it.
        let result = drain(pool, &fresh, report, backlog).await;
        fresh.drop(pool).await?;
        result?;
    }
    Ok(())
}

/// Fresh outbox tables, WAL slot and relay settings, with a row writer and a WAL writer.
struct Fresh {
    config: Settings,
    table: PgOutbox,
    wal: PgOutbox,
}

impl Fresh {
    async fn new(pool: &PgPool, pg_url: &str, broker: &Broker) -> anyhow::Result<Self> {
        let names = fresh_names("wal")?;
        let table = outbox(pool, &names, false).await?;
        let mut config = broker.config(pg_url, &names, "")?;
        config.source = EventSource::Wal;
        outbox_relay::commands::migrate(pool, &config).await?;
        let wal = PgOutbox::builder(pool.clone())
            .table_names(names)
            .register::<Payload>()
            .wal(true)
            .build()
            .await?;
        Ok(Self { config, table, wal })
    }

    async fn drop(self, pool: &PgPool) -> anyhow::Result<()> {
        outbox_sqlx::postgres::drop_wal_slot(pool, &self.config.tables).await?;
        drop_tables(pool, &self.config.tables).await
    }
}

fn event(i: usize) -> Payload {
    Payload {
        key: format!("key-{}", i % 1000),
        seq: i as i64,
        blob: "x".repeat(70),
    }
}

/// One event per transaction, a logical message vs a row, alternating per pair.
async fn publish_overhead(
    pool: &PgPool,
    fresh: &Fresh,
    report: &mut Report,
    publishes: usize,
) -> anyhow::Result<()> {
    let (mut wal, mut row) = (Vec::with_capacity(publishes), Vec::with_capacity(publishes));
    for i in 0..publishes {
        let order = if i % 2 == 0 {
            [(&fresh.wal, true), (&fresh.table, false)]
        } else {
            [(&fresh.table, false), (&fresh.wal, true)]
        };
        for (outbox, is_wal) in order {
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            outbox.publish(&mut *tx, &event(i)).await?;
            tx.commit().await?;
            let took = started.elapsed();
            if is_wal {
                wal.push(took);
            } else {
                row.push(took);
            }
        }
    }
    let (wal50, row50) = (percentile(&mut wal, 0.5), percentile(&mut row, 0.5));
    report.row(
        &format!(
            "publish + commit, one event, {publishes} each, alternating: WAL message vs row (p50)"
        ),
        format!("{:.3} ms", ms(wal50)),
        format!("{:.3} ms with a row", ms(row50)),
    );
    report.result("wal_publish_ms", ms(wal50));
    Ok(())
}

/// A backlog waits in the slot (written as 500-event transactions), then the relay starts:
/// events acknowledged by Kafka per second.
async fn drain(
    pool: &PgPool,
    fresh: &Fresh,
    report: &mut Report,
    backlog: usize,
) -> anyhow::Result<()> {
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(500) {
        let events: Vec<_> = chunk.iter().map(|&i| event(i)).collect();
        let mut tx = pool.begin().await?;
        fresh.wal.publish_all(&mut *tx, &events).await?;
        tx.commit().await?;
    }
    let end = current_lsn(pool).await?;
    let names = outbox_core::wal::WalNames::new(&fresh.config.tables);
    let url = fresh.config.database_url();
    // The limits, before the relay confirms anything: the same backlog read from the slot by
    // the relay's replication client with nothing else to do, over the relay's connection
    // (TLS when the server offers it) and over one without TLS.
    let alone = stream_alone(pool, url, &names, backlog).await?;
    let plain = stream_alone(pool, &without_tls(url)?, &names, backlog).await?;
    let slot = names.slot;
    let (stop, relay, metrics) = start(&fresh.config).await?;
    let (started, cpu) = (Instant::now(), CpuTimes::now());
    let deadline = started + Duration::from_secs(300);
    // Acknowledged by Kafka, as the relay counts it; the slot's confirmed LSN follows on the
    // client's status beat (1 s). Timed from the relay's start, its start-up included (the
    // topic was warmed up, as the polling drain's is); the time to the first acknowledged
    // transaction is given beside it.
    let mut first = None;
    loop {
        let (published, now) = (metrics.published.get(), Instant::now());
        if first.is_none() && published > 0 {
            first = Some(now);
        }
        if published >= backlog as u64 {
            break;
        }
        anyhow::ensure!(now < deadline, "the WAL relay did not drain the backlog");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain = backlog as f64 / started.elapsed().as_secs_f64();
    let busy = cpu.and_then(CpuTimes::busy_since);
    let start_up = first.map_or(Duration::ZERO, |t| t.duration_since(started));
    while !confirmed_past(pool, &slot, &end).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the slot's LSN did not pass the backlog"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let percent = |busy: Option<f64>| busy.map_or("?".to_owned(), |b| format!("{:.0}%", b * 100.0));
    report.row(
        &format!("WAL relay drain, {backlog} events of 100 B"),
        format!("{drain:.0} ev/s"),
        format!(
            "slot to Kafka acknowledged, from the relay's start ({:.2} s to the first \
             acknowledged transaction); the stream alone {:.0} ev/s (over TLS as the relay), \
             {:.0} without TLS; machine CPU busy: relay {}, stream alone {} / {}",
            start_up.as_secs_f64(),
            alone.eps,
            plain.eps,
            percent(busy),
            percent(alone.busy),
            percent(plain.busy)
        ),
    );
    report.result("wal_drain_events_per_s", drain);
    report.result("wal_relay_start_up_s", start_up.as_secs_f64());
    report.result("wal_stream_alone_eps", alone.eps);
    report.result("wal_stream_alone_eps_without_tls", plain.eps);
    report.result("wal_relay_stream_ratio", drain / alone.eps);
    if let Some(busy) = busy {
        report.result("wal_relay_cpu_busy", busy);
    }
    let _ = stop.send(());
    relay.await??;
    Ok(())
}

/// The replication stream read alone.
struct StreamRun {
    eps: f64,
    /// The machine's CPU busy share meanwhile.
    busy: Option<f64>,
}

/// The relay's replication client reading `backlog` messages from the slot with nothing else
/// to do (no Kafka, nothing confirmed: the slot still holds them after), then gone.
async fn stream_alone(
    pool: &PgPool,
    url: &str,
    names: &WalNames,
    backlog: usize,
) -> anyhow::Result<StreamRun> {
    let mut stream = PgWireStream::connect(url, names).await?;
    let (started, cpu) = (Instant::now(), CpuTimes::now());
    let mut messages = 0;
    while messages < backlog {
        let event = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .context("the stream went quiet")??;
        match event {
            Some(WalEvent::Message { .. }) => messages += 1,
            Some(_) => {}
            None => anyhow::bail!("the stream ended after {messages} of {backlog} messages"),
        }
    }
    let run = StreamRun {
        eps: backlog as f64 / started.elapsed().as_secs_f64(),
        busy: cpu.and_then(CpuTimes::busy_since),
    };
    drop(stream);
    // The slot takes one reader at a time: the next waits for this one's server to let go.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (active,): (Option<bool>,) =
            sqlx::query_as("SELECT (SELECT active FROM pg_replication_slots WHERE slot_name = $1)")
                .bind(&names.slot)
                .fetch_one(pool)
                .await?;
        if active != Some(true) {
            return Ok(run);
        }
        anyhow::ensure!(Instant::now() < deadline, "the slot stayed in use");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `url` with `sslmode=disable` in place of any `sslmode` it had.
fn without_tls(url: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(url)?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("sslmode", "disable");
    Ok(url.into())
}

type Relay = tokio::task::JoinHandle<outbox_core::Result<outbox_relay::RunSummary>>;

/// The WAL relay as `outbox-relay run` builds it, its producer connected and the topic's
/// metadata known (as the polling drain's relay is handed a warmed-up producer), then
/// started: the timed part begins at the start.
async fn start(
    config: &Settings,
) -> anyhow::Result<(tokio::sync::oneshot::Sender<()>, Relay, Arc<Metrics>)> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::new());
    let relay = outbox_relay::wal::command::relay(config, Arc::clone(&metrics)).await?;
    crate::drain::warm_up(relay.producer(), <Payload as outbox_core::Event>::TOPIC).await?;
    let relay = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((stop, relay, metrics))
}

async fn current_lsn(pool: &PgPool) -> anyhow::Result<String> {
    let (lsn,): (String,) = sqlx::query_as("SELECT CAST(pg_current_wal_lsn() AS TEXT)")
        .fetch_one(pool)
        .await?;
    Ok(lsn)
}

async fn confirmed_past(pool: &PgPool, slot: &str, lsn: &str) -> anyhow::Result<bool> {
    let (done,): (Option<bool>,) = sqlx::query_as(
        "SELECT (SELECT confirmed_flush_lsn >= CAST($2 AS PG_LSN) FROM pg_replication_slots WHERE slot_name = $1)",
    )
    .bind(slot)
    .bind(lsn)
    .fetch_one(pool)
    .await?;
    Ok(done == Some(true))
}
