//! SIGTERM under load: the `outbox-relay run` binary stops in the middle of a backlog, with
//! one batch being acknowledged and the next one (pipelined) in flight, and finishes both
//! before it exits 0. A second run drains the rest: every event is on the topic exactly once
//! (no batch is produced twice by a rolling deploy).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::AdminStore;
use outbox_core::table::Table;

use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;
use uuid::Uuid;

const EVENTS: usize = 6000;

async fn sigterm_under_load_produces_no_duplicates<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let kafka = common::cluster(1, "orders", 4);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let mut ids: Vec<Uuid> = Vec::with_capacity(EVENTS);
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(1000) {
        let events: Vec<_> = chunk.iter().map(|&i| order(i % 50, i)).collect();
        let mut tx = pool.begin().await.expect("begin");
        ids.extend(
            outbox
                .publish_all(&mut *tx, &events)
                .await
                .expect("publish"),
        );
        tx.commit().await.expect("commit");
    }
    let prefix = names.name(Table::Events).to_string();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\nbatch_size = 200\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n\
             shutdown_timeout = \"20s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            kafka.bootstrap_servers()
        ),
    )
    .expect("config file");
    let config = common::config(url, &kafka.bootstrap_servers(), &names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let backlog = async || store.status("outbox-relay").await.expect("status").backlog;

    // Stop the relay three times in the middle of the backlog, then let one finish it.
    let deadline = Instant::now() + Duration::from_secs(120);
    for stop_below in [5000, 3500, 2000] {
        // A relay stopped before it has set up its signal handler dies of SIGTERM, as any
        // process would: stop each one only once it has published something, even when the
        // previous one's last batches already took the backlog below the mark.
        let at_start = backlog().await;
        let mut child = common::spawn_relay(&file);
        while backlog().await > stop_below.min(at_start - 1) {
            assert!(Instant::now() < deadline, "the relay does not drain");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        common::stop_gracefully(&mut child);
        assert!(
            backlog().await > 0,
            "stopped under load, not after the drain"
        );
    }
    let mut child = common::spawn_relay(&file);
    while backlog().await > 0 {
        assert!(Instant::now() < deadline, "the relay does not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::stop_gracefully(&mut child);

    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        // Read past the expected count for a while, so duplicates would be seen.
        common::consume(&bootstrap, "orders", 4, EVENTS + 1, Duration::from_secs(10))
    })
    .await
    .expect("consumer");
    let distinct: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(distinct, ids.iter().copied().collect::<HashSet<_>>());
    assert_eq!(
        records.len() - distinct.len(),
        0,
        "duplicates after three SIGTERMs under load"
    );
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    sigterm_under_load_produces_no_duplicates:
        postgres => sigterm_under_load_on_postgres,
        sqlite => sigterm_under_load_on_sqlite,
}
