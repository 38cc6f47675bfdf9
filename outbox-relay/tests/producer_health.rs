//! A fatal producer error (an idempotence sequence failure injected into librdkafka's mock
//! cluster) makes the relay build a new producer and produce every unacknowledged row again:
//! nothing lost, per-key order intact. Without the settings to rebuild, `/healthz` reports
//! the dead producer. A broker outage shows on `/readyz`, not on `/healthz`, through the
//! `outbox-relay run` binary.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::AdminStore;
use outbox_core::table::Table;
use outbox_relay::{Relay, Step, producer};
use outbox_sqlx::OutboxDatabase;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sqlx::Pool;
use uuid::Uuid;

const EVENTS: usize = 600;

async fn publish<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    names: &outbox_core::table::TableNames,
    events: usize,
) -> Vec<Uuid> {
    let outbox = common::order_outbox(pool, names).await;
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox
        .publish_all(
            &mut *tx,
            &(0..events).map(|i| order(i % 20, i)).collect::<Vec<_>>(),
        )
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    ids
}

fn assert_order(records: &[Received], ids: &[Uuid]) {
    let position: std::collections::HashMap<Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let got: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(
        got,
        ids.iter().copied().collect::<HashSet<_>>(),
        "nothing lost"
    );
    for (key, seen) in common::first_occurrences_by_key(records) {
        let positions: Vec<usize> = seen.iter().map(|id| position[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {} out of order",
            String::from_utf8_lossy(&key)
        );
    }
}

/// Drains with single steps, injecting an out-of-order-sequence error (fatal for the
/// idempotent producer) once the first batches went through.
async fn drain_through_a_fatal_error<DB: OutboxDatabase>(
    pool: Pool<DB>,
    url: &str,
    rebuild: bool,
) -> Relay<outbox_sqlx::SqlxRelayStore<DB>> {
    let kafka = common::cluster(1, "orders", 2);
    let names = common::fresh_names();
    let ids = publish(&pool, &names, EVENTS).await;
    let mut config = common::config(url, &kafka.bootstrap_servers(), &names, "");
    config.relay.batch_size = 50;
    let mut builder = Relay::builder(
        config.relay_store(pool.clone()).expect("store"),
        producer::producer(&config.kafka).expect("producer"),
    )
    .with_settings(config.relay.clone())
    .with_instance("solo");
    if rebuild {
        builder = builder
            .with_producer_config(config.kafka.clone())
            .expect("kafka config");
    }
    let relay = builder.build();
    for _ in 0..3 {
        relay.drain_once().await.expect("step");
    }
    kafka.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let step = relay.drain_once().await.expect("step");
        if relay
            .metrics()
            .unhealthy(Duration::from_secs(3600))
            .is_some()
        {
            assert!(!rebuild, "a relay that can rebuild stays healthy");
            return relay;
        }
        let backlog = relay.store().status("x").await.expect("status").backlog;
        if backlog == 0 && matches!(step, Step::Drained { read: 0, .. }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained after the fatal error"
        );
    }
    assert!(rebuild, "without the settings the relay cannot recover");
    assert!(
        relay.metrics().producer_rebuilds.get() >= 1,
        "the fatal error happened and the producer was rebuilt"
    );
    let bootstrap = kafka.bootstrap_servers();
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 2, EVENTS, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_order(&records, &ids);
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fatal_producer_error_rebuilds_and_loses_nothing_on_postgres() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    drain_through_a_fatal_error(pool, &url, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fatal_producer_error_rebuilds_and_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    drain_through_a_fatal_error(pool, &url, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_producer_without_settings_fails_healthz() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let relay = drain_through_a_fatal_error(pool, &url, false).await;
    assert_eq!(
        relay.metrics().unhealthy(Duration::from_secs(3600)),
        Some("producer failed fatally")
    );
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// Polls `path` until it answers `status` (hang guard: 30 s).
fn wait_for(addr: &str, path: &str, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = http_get(addr, path);
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not answer {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The broker goes down for longer than `stuck_after` while rows wait: `/readyz` says
/// Kafka is the problem, `/healthz` stays 200 (a restart would not help), and the relay
/// drains everything once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_shows_on_readyz_not_healthz() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 2);
    let names = common::fresh_names();
    let mut ids = publish(&pool, &names, 100).await;
    let prefix = names.name(Table::Events).to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\nstuck_after = \"30s\"\n\
             [http]\nlisten = \"{addr}\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            kafka.bootstrap_servers()
        ),
    )
    .expect("config file");
    let mut child = common::spawn_relay(&file);
    let config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("x").await.expect("status").backlog > 0 {
        assert!(Instant::now() < deadline, "first events not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = addr.clone();
    tokio::task::spawn_blocking(move || wait_for(&a, "/readyz", 200))
        .await
        .expect("ready");

    kafka.broker_down(1).expect("broker down");
    ids.extend(publish(&pool, &names, 100).await);
    let a = addr.clone();
    let (readyz, healthz) = tokio::task::spawn_blocking(move || {
        let readyz = wait_for(&a, "/readyz", 503);
        // Past stuck_after (30 s, its minimum) with rows waiting: still healthy.
        std::thread::sleep(Duration::from_secs(33));
        (readyz, http_get(&a, "/healthz"))
    })
    .await
    .expect("probe");
    assert!(readyz.contains("kafka"), "{readyz}");
    assert_eq!(
        healthz.0, 200,
        "an outage is not a reason to restart: {}",
        healthz.1
    );
    assert!(
        store.status("x").await.expect("status").backlog > 0,
        "rows waited"
    );

    kafka.broker_up(1).expect("broker up");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("x").await.expect("status").backlog > 0 {
        assert!(Instant::now() < deadline, "not drained after the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = addr.clone();
    tokio::task::spawn_blocking(move || wait_for(&a, "/readyz", 200))
        .await
        .expect("ready again");
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(common::stop(&mut child), Some(0));
    let bootstrap = kafka.bootstrap_servers();
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 2, 200, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_order(&records, &ids);
}
