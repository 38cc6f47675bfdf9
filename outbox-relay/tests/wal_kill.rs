//! WAL mode under faults: the relay binary (`source = "wal"`) is SIGKILLed again and again
//! during a drain while writers publish, and the broker goes down for a while; afterwards
//! every committed event is on the topic and, per key, the first occurrences are in publish
//! order (at-least-once: duplicates allowed, loss and reordering not); the last relay, once it
//! has confirmed an event of its own, stops on SIGTERM with exit code 0.

mod common;

use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_sqlx::Outbox;
use uuid::Uuid;

const KEYS: usize = 100;
const WRITERS: usize = 4;
const EVENTS: usize = 8_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_broker_outage_lose_nothing_in_wal_mode() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 8);
    let names = common::fresh_names();
    let mut config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    config.source = EventSource::Wal;
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate creates the slot");
    let outbox = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .wal(true)
        .build()
        .await
        .expect("outbox");
    let dir = tempfile::tempdir().expect("dir");
    let config_file = dir.path().join("relay.toml");
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    std::fs::write(
        &config_file,
        format!(
            "source = \"wal\"\ndatabase_url = \"{url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\nbatch_size = 500\npoll_interval = \"20ms\"\nretry_backoff = \"200ms\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            kafka.bootstrap_servers()
        ),
    )
    .expect("config file");

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            tokio::spawn(async move {
                let keys: Vec<usize> = (0..KEYS).filter(|k| k % WRITERS == w).collect();
                let mut ids = Vec::new();
                for chunk in (0..EVENTS / WRITERS).collect::<Vec<_>>().chunks(20) {
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
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ids
            })
        })
        .collect();

    for round in 0..4u64 {
        let mut child = common::spawn_relay(&config_file);
        tokio::time::sleep(Duration::from_millis(1500 + 300 * round)).await;
        if round == 1 {
            kafka.broker_down(1).expect("broker down");
            tokio::time::sleep(Duration::from_secs(2)).await;
            kafka.broker_up(1).expect("broker up");
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    let mut ids_by_writer = Vec::new();
    for writer in writers {
        ids_by_writer.push(writer.await.expect("writer"));
    }
    assert_eq!(ids_by_writer.iter().map(Vec::len).sum::<usize>(), EVENTS);
    let mut last = common::spawn_relay(&config_file);
    // The killed relays may already have confirmed every write, so the wait below would end
    // at once and SIGTERM land before the last relay has set up its handler (it would die of
    // the signal, as any process would). One more event, on a key of its own, published after
    // the spawn, can only pass the slot's confirmed LSN through the last relay.
    let mut tx = pool.begin().await.expect("begin");
    let marker = outbox
        .publish_all(&mut *tx, &[order(KEYS, 0)])
        .await
        .expect("publish the marker");
    tx.commit().await.expect("commit");
    ids_by_writer.push(marker);
    let (end,): (String,) = sqlx::query_as("SELECT CAST(pg_current_wal_lsn() AS TEXT)")
        .fetch_one(&pool)
        .await
        .expect("lsn");
    let slot = WalNames::new(&names).slot;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (done,): (Option<bool>,) = sqlx::query_as(
            "SELECT (SELECT confirmed_flush_lsn >= CAST($2 AS PG_LSN) FROM pg_replication_slots WHERE slot_name = $1)",
        )
        .bind(&slot)
        .bind(&end)
        .fetch_one(&pool)
        .await
        .expect("slot");
        if done == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot's confirmed LSN never passed the writes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last relay has streamed and confirmed the marker, so it is past start-up: SIGTERM
    // stops it gracefully.
    common::stop_gracefully(&mut last);

    let ids: Vec<Uuid> = ids_by_writer.iter().flatten().copied().collect();
    assert_eq!(ids.len(), EVENTS + 1);
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(
            &bootstrap,
            "orders",
            8,
            EVENTS + 1,
            Duration::from_secs(120),
        )
    })
    .await
    .expect("consumer");
    common::assert_every_event_in_key_order(&records, &ids_by_writer);
    eprintln!(
        "{} records for {} events ({} duplicates after 4 kills and a broker outage)",
        records.len(),
        EVENTS + 1,
        records.len() - EVENTS - 1
    );
    outbox_sqlx::postgres::drop_wal_slot(&pool, &names)
        .await
        .expect("drop slot");
}
