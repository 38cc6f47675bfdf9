//! Phase 4: end-to-end latency (commit to consumer) at a fixed rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use sqlx::PgPool;

use crate::events::Payload;
use crate::fixture::{Broker, drop_tables, fresh_names, outbox};
use crate::report::{Report, ms, percentile};

pub(crate) async fn e2e_latency(
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
                outbox_relay::commands::run(pool, &config, async {
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
        write_at_rate(pool, &outbox, rate, total, &committed).await?;
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

/// Publishes `total` events, one per transaction, at `rate` per second from 4 writers,
/// recording each commit instant in `committed`.
pub(crate) async fn write_at_rate(
    pool: &PgPool,
    outbox: &outbox_sqlx::postgres::PgOutbox,
    rate: usize,
    total: usize,
    committed: &Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
) -> anyhow::Result<()> {
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
    Ok(())
}

/// Reads `topic` from its end until `total` of the committed events arrived (or 60 s pass):
/// commit-to-receipt latencies.
pub(crate) fn receive(
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
