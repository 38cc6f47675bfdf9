//! The `outbox-relay` binary killed with SIGKILL again and again while 20,000 events from
//! interleaved writers drain, with a broker outage in the middle: every event reaches Kafka,
//! and per key the first occurrences of `ce_id` follow the outbox order. The last run is
//! stopped with SIGTERM and must exit 0. On PostgreSQL, MariaDB and SQLite.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::AdminStore;
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;
use uuid::Uuid;

const KEYS: usize = 200;
const WRITERS: usize = 4;
const EVENTS: usize = 20_000;

async fn no_loss_across_kills<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let kafka = common::cluster(1, "orders", 8);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let config = common::config(url, &kafka.bootstrap_servers(), &names, "");
    let dir = tempfile::tempdir().expect("dir");
    let config_file = dir.path().join("relay.toml");
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\nbatch_size = 500\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            kafka.bootstrap_servers()
        ),
    )
    .expect("config file");

    // Writers own disjoint keys, so per key the publish order is the outbox order.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            tokio::spawn(async move {
                let keys: Vec<usize> = (0..KEYS).filter(|k| k % WRITERS == w).collect();
                let mut ids = Vec::new();
                let per_writer = EVENTS / WRITERS;
                for chunk in (0..per_writer).collect::<Vec<_>>().chunks(50) {
                    let events: Vec<_> = chunk
                        .iter()
                        .map(|&i| order(keys[i % keys.len()], i))
                        .collect();
                    let mut tx = pool.begin().await.expect("begin");
                    ids.extend(
                        outbox
                            .publish_all(&mut *tx, &events)
                            .await
                            .expect("publish"),
                    );
                    tx.commit().await.expect("commit");
                }
                ids
            })
        })
        .collect();

    let store = config.relay_store(pool.clone()).expect("store");
    let backlog = || async { store.status("outbox-relay").await.expect("status").backlog };
    let mut kills = 0;
    for round in 0..5 {
        let mut child = common::spawn_relay(&config_file);
        tokio::time::sleep(Duration::from_millis(2600 + 300 * round)).await;
        if round == 2 {
            kafka.broker_down(1).expect("broker down");
            tokio::time::sleep(Duration::from_secs(3)).await;
            kafka.broker_up(1).expect("broker up");
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
    }
    let mut ids_by_writer = Vec::new();
    for writer in writers {
        ids_by_writer.push(writer.await.expect("writer"));
    }
    let mut last = common::spawn_relay(&config_file);
    // Let it start and take over the lease the last killed relay held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while backlog().await > 0 {
        assert!(
            Instant::now() < deadline,
            "backlog not drained: {}",
            backlog().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &last.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let exit = last.wait().expect("relay exits");
    assert_eq!(exit.code(), Some(0), "graceful shutdown exits 0");
    assert_eq!(kills, 5);

    let ids: Vec<Uuid> = ids_by_writer.iter().flatten().copied().collect();
    assert_eq!(ids.len(), EVENTS);
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 8, EVENTS, Duration::from_secs(120))
    })
    .await
    .expect("consumer");
    common::assert_every_event_in_key_order(&records, &ids_by_writer);
    eprintln!(
        "{} records for {} events ({} duplicates after {kills} kills)",
        records.len(),
        EVENTS,
        records.len() - EVENTS
    );
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    no_loss_across_kills:
        postgres => sigkill_loses_nothing_on_postgres,
        mariadb => sigkill_loses_nothing_on_mariadb,
        sqlite => sigkill_loses_nothing_on_sqlite,
}
