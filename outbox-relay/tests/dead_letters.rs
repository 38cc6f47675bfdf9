//! The block policy and the operator's retry: a key whose event fails permanently at the
//! broker has none of its later events produced (the pipelined batch included), its failed
//! event is retried with backoff before it is dead-lettered, and `dead-letters retry --key`
//! puts everything back in its original place, so the key's events arrive whole and in
//! order, ahead of events still in the outbox, without bouncing back. On PostgreSQL, MariaDB
//! and SQLite (the retry re-inserts original ids, which each dialect does its own way).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::AdminStore;
use outbox_core::table::Table;
use outbox_relay::Step;
use outbox_sqlx::OutboxDatabase;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sqlx::Pool;
use uuid::Uuid;

const EVENTS: usize = 10;

async fn block_backoff_and_retry_keep_the_order<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let prefix = names.name(Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let outbox = common::order_outbox(&pool, &names).await;
    let publish = async |events: Vec<common::OrderPlaced>| {
        let mut tx = pool.begin().await.expect("begin");
        let ids = outbox
            .publish_all(&mut *tx, &events)
            .await
            .expect("publish");
        tx.commit().await.expect("commit");
        ids
    };
    let mut ids: Vec<Uuid> = publish((0..EVENTS).map(|i| order(1, i)).collect()).await;
    // One record per batch, so each produce request carries one event, and the second
    // batch is claimed while the first one is in flight.
    let extra = "max_attempts = 3\nretry_backoff = \"1s\"\npoison_policy = \"block\"";
    let mut config = common::config(url, &kafka.bootstrap_servers(), &names, extra);
    config.relay.batch_size = 1;
    let relay = common::solo_relay(&config, &pool);
    // The broker refuses the next three produce requests: the first event's three attempts.
    kafka.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 3],
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        relay.drain_once().await.expect("step");
        let dead = relay.store().dead_letters(100).await.expect("list");
        if dead.len() == EVENTS {
            assert_eq!(dead[0].record.event_id, ids[0]);
            assert_eq!(dead[0].attempts, 3, "{}", dead[0].error);
            assert!(dead[0].error.contains("authorization"), "{}", dead[0].error);
            assert!(dead[1..].iter().all(|d| d.error.contains("held back")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key was not dead-lettered: {dead:?}"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three attempts back off 1 s then 2 s, not milliseconds apart ({:?})",
        started.elapsed()
    );
    // The operator fixed the cause. (librdkafka may still refuse the topic from its cache for
    // a moment; the backoff outlasts that.)
    kafka.clear_request_errors(RDKafkaApiKey::Produce);
    // A later event of the key, still in the outbox when the operator retries.
    ids.extend(publish(vec![order(1, EVENTS)]).await);

    let retry = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["--database-url", url, "--table-prefix", &prefix])
        .args(["dead-letters", "retry", "--key", "order-1"])
        .output()
        .expect("outbox-relay runs");
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let step = relay.drain_once().await.expect("step");
        let backlog = relay.store().status("x").await.expect("status").backlog;
        if backlog == 0 && matches!(step, Step::Drained { read: 0, .. }) {
            break;
        }
        assert!(Instant::now() < deadline, "retried events not drained");
    }
    let dead = relay.store().dead_letters(100).await.expect("list");
    assert!(dead.is_empty(), "retried events bounced back: {dead:#?}");
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, EVENTS + 1, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let by_key = common::first_occurrences_by_key(&records);
    assert_eq!(
        by_key[&b"order-1".to_vec()],
        ids,
        "the key's events arrive whole and in outbox order"
    );
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    block_backoff_and_retry_keep_the_order:
        postgres => block_backoff_and_retry_on_postgres,
        mariadb => block_backoff_and_retry_on_mariadb,
        sqlite => block_backoff_and_retry_on_sqlite,
}
