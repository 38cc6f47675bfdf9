//! WAL mode's `dead-letters retry` against a relay that is SIGKILLed right after the retry
//! is emitted, again and again: afterwards every event of the key reached Kafka, the first
//! occurrences are in the key's order, and no dead letter is left listed for an event that
//! reached Kafka.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_sqlx::Outbox;
use sqlx::PgPool;

async fn dead_letter_count(pool: &PgPool, names: &TableNames) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        names.qualified(Dialect::Postgres, Table::DeadLetters)
    )))
    .fetch_one(pool)
    .await
    .expect("dead letters");
    n
}

/// Waits until the slot's confirmed LSN passes everything written so far.
async fn confirmed_now(pool: &PgPool, names: &TableNames) {
    let (end,): (String,) = sqlx::query_as("SELECT CAST(pg_current_wal_lsn() AS TEXT)")
        .fetch_one(pool)
        .await
        .expect("lsn");
    let slot = WalNames::new(names).slot;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (done,): (Option<bool>,) = sqlx::query_as(
            "SELECT (SELECT confirmed_flush_lsn >= CAST($2 AS PG_LSN) FROM pg_replication_slots WHERE slot_name = $1)",
        )
        .bind(&slot)
        .bind(&end)
        .fetch_one(pool)
        .await
        .expect("slot");
        if done == Some(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slot's confirmed LSN never passed {end}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config_file(
    dir: &Path,
    name: &str,
    url: &str,
    prefix: &str,
    bootstrap: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "source = \"wal\"\ndatabase_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n{extra}\n\
             [relay]\nbatch_size = 500\npoll_interval = \"20ms\"\nretry_backoff = \"200ms\"\npoison_policy = \"block\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n"
        ),
    )
    .expect("config file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_right_after_a_retry_loses_nothing_in_wal_mode() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 1);
    let bootstrap = kafka.bootstrap_servers();
    let names = common::fresh_names();
    let mut config = common::config(&url, &bootstrap, &names, "");
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
    let publish = async |event: common::OrderPlaced| {
        let mut tx = pool.begin().await.expect("begin");
        let id = outbox.publish(&mut *tx, &event).await.expect("publish");
        tx.commit().await.expect("commit");
        id
    };
    let dir = tempfile::tempdir().expect("dir");
    let prefix = common::prefix(&names);
    // The first relay refuses records over 3,000 bytes; the others do not.
    let strict = config_file(
        dir.path(),
        "strict.toml",
        &url,
        &prefix,
        &bootstrap,
        "[kafka.properties]\n\"message.max.bytes\" = \"3000\"",
    );
    let lenient = config_file(dir.path(), "relay.toml", &url, &prefix, &bootstrap, "");

    let mut poison = order(7, 0);
    poison.note = "x".repeat(5_000);
    let mut key7 = vec![publish(poison).await];
    key7.push(publish(order(7, 1)).await);
    key7.push(publish(order(7, 2)).await);
    let other = vec![publish(order(8, 0)).await];
    let mut child = common::spawn_relay(&strict);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_letter_count(&pool, &names).await < 3 {
        assert!(
            Instant::now() < deadline,
            "the key's events were never parked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    confirmed_now(&pool, &names).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    // The operator retries the key; relays are killed at once, sooner or later, while the
    // key gets more events.
    let retry = common::relay_output(&[
        "--config",
        lenient.to_str().expect("utf-8"),
        "dead-letters",
        "retry",
        "--key",
        "order-7",
    ]);
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    key7.push(publish(order(7, 3)).await);
    for (round, delay_ms) in [20u64, 150, 400, 900, 1500].into_iter().enumerate() {
        let mut child = common::spawn_relay(&lenient);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        key7.push(publish(order(7, 4 + round)).await);
    }
    let mut last = common::spawn_relay(&lenient);
    // Only the last relay can confirm past this one.
    let marker = vec![publish(order(9, 0)).await];
    confirmed_now(&pool, &names).await;
    common::stop_gracefully(&mut last);

    assert_eq!(
        dead_letter_count(&pool, &names).await,
        0,
        "no dead letter left listed for an event that reached Kafka"
    );
    let ids_by_writer = [key7, other, marker];
    let expected = ids_by_writer.iter().map(Vec::len).sum::<usize>();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, expected, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    common::assert_every_event_in_key_order(&records, &ids_by_writer);
    eprintln!(
        "{} records for {expected} events ({} duplicates after 5 kills)",
        records.len(),
        records.len() - expected
    );
    outbox_sqlx::postgres::drop_wal_slot(&pool, &names)
        .await
        .expect("drop slot");
}
