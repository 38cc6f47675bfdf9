//! Phase 3: relay drain beside the database alone, librdkafka alone and the naive relay.

use std::time::{Duration, Instant};

use outbox_core::NewOutboxRow;
use outbox_core::relay::{AdminStore, FailureStore, LeaseStore, RelayStore, RelayStoreExt};
use outbox_relay::{Relay, Step};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

use crate::fixture::{Broker, Fixture, drop_tables, fixture, preload, rows};
use crate::report::Report;

pub(crate) async fn relay_drain(
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
            let batch = store.read_batch(1000).await?;
            if batch.is_empty() {
                break;
            }
            store
                .ack(&batch.iter().map(|r| r.id).collect::<Vec<_>>(), None)
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
        let relay = Relay::builder(store.clone(), relay_producer)
            .with_settings(config.relay.clone())
            .with_instance("bench")
            .build();
        let started = Instant::now();
        drain_all(&relay, n).await?;
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
                let batch = store.read_batch(1).await?;
                let Some(row) = batch.first() else { break };
                let record = outbox_relay::record::to_record(row, "urn:naive");
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)?;
                store.ack(&[row.id], None).await?;
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

pub(crate) async fn produce_all<C: rdkafka::ClientContext + 'static>(
    producer: &FutureProducer<C>,
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
