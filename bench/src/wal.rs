//! Phase 6: WAL mode (`source = "wal"`) beside the polling relay: publish overhead (a
//! logical message vs a row) and the drain rate of a backlog held in the slot. Its
//! end-to-end latency is measured in phase 4, interleaved with the other modes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_relay::config::EventSource;
use outbox_relay::metrics::Metrics;
use outbox_relay::settings::Settings;
use outbox_sqlx::postgres::PgOutbox;
use sqlx::PgPool;

use crate::events::Payload;
use crate::fixture::{Broker, drop_tables, fresh_names, outbox};
use crate::report::{Report, ms};

pub(crate) async fn wal_mode(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    let (publishes, backlog) = if quick {
        (200, 5_000)
    } else {
        (2_000, 100_000)
    };
    println!("\n6. WAL mode (logical replication slot, {})", broker.name);
    let names = fresh_names("wal")?;
    let table = outbox(pool, &names, false).await?;
    let mut config = broker.config(pg_url, &names, "")?;
    config.source = EventSource::Wal;
    outbox_relay::commands::migrate(pool, &config).await?;
    let wal = PgOutbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<Payload>()
        .wal(true)
        .build()
        .await?;
    broker.create("bench").await?;
    let result = phases(pool, &config, &table, &wal, report, (publishes, backlog)).await;
    outbox_sqlx::postgres::drop_wal_slot(pool, &names).await?;
    drop_tables(pool, &names).await?;
    result
}

async fn phases(
    pool: &PgPool,
    config: &Settings,
    table: &PgOutbox,
    wal: &PgOutbox,
    report: &mut Report,
    (publishes, backlog): (usize, usize),
) -> anyhow::Result<()> {
    // Publish overhead: one event per transaction, a message vs a row.
    let event = |i: usize| Payload {
        key: format!("key-{}", i % 1000),
        seq: i as i64,
        blob: "x".repeat(70),
    };
    let mut per_publish = Vec::new();
    for outbox in [wal, table] {
        let started = Instant::now();
        for i in 0..publishes {
            let mut tx = pool.begin().await?;
            outbox.publish(&mut *tx, &event(i)).await?;
            tx.commit().await?;
        }
        per_publish.push(started.elapsed() / publishes as u32);
    }
    report.row(
        "publish + commit, one event: WAL message vs row",
        format!("{:.3} ms", ms(per_publish[0])),
        format!("{:.3} ms with a row", ms(per_publish[1])),
    );
    report.result("wal_publish_ms", ms(per_publish[0]));

    // Drain: a backlog waits in the slot (the rows above stay in the table, unread here).
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(500) {
        let events: Vec<_> = chunk.iter().map(|&i| event(i)).collect();
        let mut tx = pool.begin().await?;
        wal.publish_all(&mut *tx, &events).await?;
        tx.commit().await?;
    }
    let end = current_lsn(pool).await?;
    let slot = outbox_core::wal::WalNames::new(&config.tables).slot;
    let (stop, relay, metrics) = start(config);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    // Acknowledged by Kafka, as the relay counts it; the slot's confirmed LSN follows on the
    // client's status beat (1 s).
    while metrics.published.get() < backlog as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the WAL relay did not drain the backlog"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain = backlog as f64 / started.elapsed().as_secs_f64();
    while !confirmed_past(pool, &slot, &end).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the slot's LSN did not pass the backlog"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.row(
        &format!("WAL relay drain, {backlog} events of 100 B"),
        format!("{drain:.0} ev/s"),
        "slot to Kafka acknowledged".to_owned(),
    );
    report.result("wal_drain_events_per_s", drain);

    let _ = stop.send(());
    relay.await??;
    Ok(())
}

type Relay = tokio::task::JoinHandle<outbox_core::Result<outbox_relay::RunSummary>>;

fn start(config: &Settings) -> (tokio::sync::oneshot::Sender<()>, Relay, Arc<Metrics>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = config.clone();
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::clone(&metrics);
    let relay = tokio::spawn(async move {
        outbox_relay::wal::command::run(&config, shared, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, relay, metrics)
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
