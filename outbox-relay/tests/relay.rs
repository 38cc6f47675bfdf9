//! The relay in-process against librdkafka's mock cluster: records as consumers see them,
//! atomicity on every database, late commits, poison events and the dead-letter CLI,
//! a broker outage, and three relays sharing one lease.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Received, consume, first_occurrences_by_key, order};
use outbox_core::Event;
use outbox_core::encode::wire;
use outbox_core::relay::{AdminStore, FailureStore, LeaseStore, RelayStore};
use outbox_relay::settings::Settings;
use outbox_relay::{Relay, Step, producer};
use outbox_sqlx::{Outbox, OutboxDatabase};
use sqlx::Pool;
use uuid::Uuid;

async fn outbox<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    names: &outbox_core::table::TableNames,
) -> Outbox<DB> {
    Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .build()
        .await
        .expect("outbox")
}

fn relay<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    config: &Settings,
    instance: &str,
) -> Relay<outbox_sqlx::SqlxRelayStore<DB>> {
    Relay::builder(
        config.relay_store(pool.clone()).expect("store"),
        producer::producer(&config.kafka).expect("producer"),
    )
    .with_settings(config.relay.clone())
    .with_instance(instance)
    .build()
}

/// Runs single steps until a claim comes back empty.
async fn drain<S: RelayStore + FailureStore + LeaseStore + AdminStore>(relay: &Relay<S>) -> usize {
    let mut published = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match relay.drain_once().await.expect("step") {
            Step::Drained { read: 0, .. } => return published,
            Step::Drained { published: p, .. } => published += p,
            Step::StandingBy => panic!("a lone relay must hold the lease"),
        }
        assert!(Instant::now() < deadline, "drain did not finish");
    }
}

async fn read(bootstrap: &str, partitions: i32, expected: usize) -> Vec<Received> {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        consume(
            &bootstrap,
            "orders",
            partitions,
            expected,
            Duration::from_secs(60),
        )
    })
    .await
    .expect("consumer")
}

/// Committed events reach the topic with the CloudEvents headers, key, value and timestamp;
/// rolled-back ones never do; acknowledged rows are deleted.
async fn atomic_and_well_formed<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let kafka = common::cluster(1, "orders", 3);
    let names = common::fresh_names();
    let outbox = outbox(&pool, &names).await;
    let mut committed = Vec::new();
    let mut tx = pool.begin().await.expect("begin");
    committed.extend(
        outbox
            .publish_all(&mut *tx, &[order(1, 0), order(2, 0)])
            .await
            .expect("publish"),
    );
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .publish(&mut *tx, &order(3, 0))
        .await
        .expect("publish");
    tx.rollback().await.expect("rollback");
    let mut tx = pool.begin().await.expect("begin");
    committed.push(
        outbox
            .publish(&mut *tx, &order(1, 1))
            .await
            .expect("publish"),
    );
    tx.commit().await.expect("commit");

    let config = common::config(
        url,
        &kafka.bootstrap_servers(),
        &names,
        "strict_order = false",
    );
    let relay = relay(&pool, &config, "solo");
    assert_eq!(drain(&relay).await, 3);
    assert_eq!(
        relay
            .store()
            .status("outbox-relay")
            .await
            .expect("status")
            .backlog,
        0,
        "rows deleted"
    );

    let records = read(&kafka.bootstrap_servers(), 3, 3).await;
    let ids: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(
        ids,
        committed.iter().copied().collect(),
        "exactly the committed events"
    );
    assert_eq!(records.len(), 3, "no duplicates without a crash");
    let schema = common::OrderPlaced::schema().expect("schema");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for r in &records {
        assert_eq!(r.header("ce_specversion"), Some("1.0"));
        assert_eq!(r.header("ce_type"), Some("com.acme.orders.OrderPlaced"));
        assert_eq!(r.header("ce_source"), Some("urn:outbox-relay"));
        assert_eq!(r.header("content-type"), Some("application/avro"));
        let time =
            humantime::parse_rfc3339(r.header("ce_time").expect("ce_time")).expect("RFC 3339");
        let time_ms = time
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as i64;
        assert_eq!(Some(time_ms), r.timestamp, "record timestamp is created_at");
        assert!((now - time_ms).abs() < 60_000);
        let event: common::OrderPlaced =
            wire::decode(&r.payload, |_| Ok(schema.clone()), None).expect("decodes");
        assert_eq!(
            r.key.as_deref(),
            Some(event.order_id.as_bytes()),
            "key is the aggregate id"
        );
    }
    let by_key = first_occurrences_by_key(&records);
    assert_eq!(
        by_key[&b"order-1".to_vec()],
        [committed[0], committed[2]],
        "per-key order"
    );
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    atomic_and_well_formed:
        postgres => atomic_and_well_formed_on_postgres,
        mariadb => atomic_and_well_formed_on_mariadb,
        sqlite => atomic_and_well_formed_on_sqlite,
}

/// An event whose transaction commits after a later event of the same key is published
/// first, in strict order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_commit_is_published_before_later_events_of_its_key() {
    let Some(pool) = common::pool::<sqlx::Postgres>(&common::pg_url()).await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let outbox = outbox(&pool, &names).await;
    let config = common::config(&common::pg_url(), &kafka.bootstrap_servers(), &names, "");
    let relay = relay(&pool, &config, "solo");

    let mut early = pool.begin().await.expect("begin");
    let first = outbox
        .publish(&mut *early, &order(7, 0))
        .await
        .expect("publish");
    let mut tx = pool.begin().await.expect("begin");
    let second = outbox
        .publish(&mut *tx, &order(7, 1))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let step = relay.drain_once().await.expect("step");
    assert!(
        matches!(step, Step::Drained { published: 0, .. }),
        "held back: {step:?}"
    );
    early.commit().await.expect("commit");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut published = 0;
    while published < 2 && Instant::now() < deadline {
        if let Step::Drained { published: p, .. } = relay.drain_once().await.expect("step") {
            published += p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = read(&kafka.bootstrap_servers(), 1, 2).await;
    let ids: Vec<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(ids, [first, second], "the late commit keeps its place");
}

fn cli(url: &str, prefix: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["--database-url", url, "--table-prefix", prefix])
        .args(args)
        .output()
        .expect("outbox-relay runs")
}

/// A record too large for the producer can never be produced: it is dead-lettered at once
/// (no attempts), later events of its key are parked behind it (block policy), other keys
/// flow; the CLI lists, discards and retries them.
async fn poison_event_is_dead_lettered_and_operated_from_the_cli<DB: OutboxDatabase>(
    pool: Pool<DB>,
    url: &str,
) {
    let url = url.to_owned();
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let prefix = names
        .name(outbox_core::table::Table::Events)
        .to_string()
        .trim_end_matches("_events")
        .to_owned();
    let outbox = outbox(&pool, &names).await;
    let mut big = order(1, 1);
    big.note = "x".repeat(20_000);
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox
        .publish_all(&mut *tx, &[order(1, 0), big, order(1, 2), order(2, 0)])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let extra = "max_attempts = 2\npoison_policy = \"block\"\n[kafka.properties]\n\"message.max.bytes\" = \"10000\"";
    let config = common::config(&url, &kafka.bootstrap_servers(), &names, extra);
    let relay = relay(&pool, &config, "solo");
    for _ in 0..4 {
        relay.drain_once().await.expect("step");
    }
    let store = relay.store();
    let dead = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(
        dead.iter().map(|d| d.record.event_id).collect::<Vec<_>>(),
        [ids[1], ids[2]]
    );
    assert_eq!(dead[0].attempts, 0, "retrying cannot make it fit");
    assert!(
        dead[0].error.to_lowercase().contains("too large"),
        "{}",
        dead[0].error
    );
    assert!(dead[1].error.contains("held back"), "{}", dead[1].error);
    assert_eq!(
        store.status("outbox-relay").await.expect("status").backlog,
        0
    );

    let listed = cli(&url, &prefix, &["dead-letters", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(&ids[1].to_string()) && text.contains(&ids[2].to_string()),
        "{text}"
    );
    let status = cli(&url, &prefix, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("dead letters: 2"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let (big_id, held_id) = (dead[0].record.id.to_string(), dead[1].record.id.to_string());
    assert!(
        cli(&url, &prefix, &["dead-letters", "discard", &big_id])
            .status
            .success()
    );
    assert!(
        cli(&url, &prefix, &["dead-letters", "retry", &held_id])
            .status
            .success()
    );
    let missing = cli(&url, &prefix, &["dead-letters", "retry", "987654"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter with id 987654"));

    drain(&relay).await;
    let records = read(&kafka.bootstrap_servers(), 1, 3).await;
    let by_key = first_occurrences_by_key(&records);
    assert_eq!(
        by_key[&b"order-1".to_vec()],
        [ids[0], ids[2]],
        "key 1 kept its order"
    );
    assert_eq!(
        by_key[&b"order-2".to_vec()],
        [ids[3]],
        "other keys were not blocked"
    );
    assert!(
        store
            .dead_letters(10)
            .await
            .expect("dead letters")
            .is_empty()
    );
}

/// The only broker goes down for 20 s while events keep coming: nothing is lost, nothing is
/// reordered, and the relay recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_down_for_20_seconds_loses_nothing() {
    let Some(pool) = common::pool::<sqlx::Postgres>(&common::pg_url()).await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 4);
    let names = common::fresh_names();
    let outbox = outbox(&pool, &names).await;
    let config = common::config(&common::pg_url(), &kafka.bootstrap_servers(), &names, "");
    let relay = Arc::new(relay(&pool, &config, "solo"));
    let publish = |from: usize, to: usize| {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        async move {
            let events: Vec<_> = (from..to).map(|i| order(i % 50, i)).collect();
            let mut ids = Vec::new();
            for chunk in events.chunks(100) {
                let mut tx = pool.begin().await.expect("begin");
                ids.extend(outbox.publish_all(&mut *tx, chunk).await.expect("publish"));
                tx.commit().await.expect("commit");
            }
            ids
        }
    };
    let mut ids = publish(0, 1500).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    while relay.metrics().published.get() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kafka.broker_down(1).expect("broker down");
    ids.extend(publish(1500, 2500).await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    kafka.broker_up(1).expect("broker up");
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay
        .store()
        .status("outbox-relay")
        .await
        .expect("status")
        .backlog
        > 0
    {
        assert!(Instant::now() < deadline, "relay did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).expect("stop");
    runner.await.expect("runner").expect("run");

    let records = read(&kafka.bootstrap_servers(), 4, ids.len()).await;
    let got: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(got.len(), ids.len(), "every event arrived");
    assert_eq!(got, ids.iter().copied().collect());
    assert_order_per_key(&records, &ids);
}

/// Per key, the first occurrences follow the publish order of `ids`.
fn assert_order_per_key(records: &[Received], ids: &[Uuid]) {
    let position: std::collections::HashMap<Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (key, seen) in first_occurrences_by_key(records) {
        let positions: Vec<usize> = seen.iter().map(|id| position[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {} out of order",
            String::from_utf8_lossy(&key)
        );
    }
}

/// Three relays share one lease: one produces; when it dies without releasing the lease,
/// another takes over after the lease expires; order holds and producers do not interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_relays_one_producer_at_a_time_with_takeover() {
    let Some(pool) = common::pool::<sqlx::Postgres>(&common::pg_url()).await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 2);
    let names = common::fresh_names();
    let outbox = outbox(&pool, &names).await;
    let relays: Vec<Arc<_>> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let extra = format!("source = \"urn:relay-{name}\"");
            let config = common::config(
                &common::pg_url(),
                &kafka.bootstrap_servers(),
                &names,
                &extra,
            );
            Arc::new(relay(&pool, &config, name))
        })
        .collect();
    let mut tasks: Vec<_> = relays
        .iter()
        .map(|r| {
            let r = Arc::clone(r);
            Some(tokio::spawn(
                async move { r.run(std::future::pending()).await },
            ))
        })
        .collect();
    let writer = {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for batch in 0..40 {
                let events: Vec<_> = (0..50).map(|i| order(i % 20, batch * 50 + i)).collect();
                let mut tx = pool.begin().await.expect("begin");
                ids.extend(
                    outbox
                        .publish_all(&mut *tx, &events)
                        .await
                        .expect("publish"),
                );
                tx.commit().await.expect("commit");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ids
        })
    };
    let mut kills = 0;
    let mut takeover = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let leader = (0..3).find(|&i| tasks[i].is_some() && relays[i].metrics().leader.get() == 1);
        let Some(leader) = leader else { continue };
        tasks[leader].take().expect("running").abort(); // dies holding the lease
        kills += 1;
        let killed_at = Instant::now();
        let deadline = killed_at + Duration::from_secs(10);
        loop {
            let new = (0..3).find(|&i| {
                i != leader && tasks[i].is_some() && relays[i].metrics().leader.get() == 1
            });
            if new.is_some() {
                takeover.push(killed_at.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "no takeover within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ids = writer.await.expect("writer");
    let survivor = (0..3)
        .find(|&i| tasks[i].is_some())
        .expect("one relay left");
    let deadline = Instant::now() + Duration::from_secs(60);
    while relays[survivor]
        .store()
        .status("outbox-relay")
        .await
        .expect("status")
        .backlog
        > 0
    {
        assert!(Instant::now() < deadline, "backlog not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks.iter_mut().filter_map(Option::take) {
        task.abort();
    }
    assert_eq!(kills, 2);
    assert!(
        takeover.iter().all(|t| *t < Duration::from_secs(5)),
        "takeovers: {takeover:?}"
    );

    let records = read(&kafka.bootstrap_servers(), 2, ids.len()).await;
    let got: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(got, ids.iter().copied().collect(), "every event arrived");
    assert_order_per_key(&records, &ids);
    for partition in 0..2 {
        let mut sources: Vec<(i64, String)> = records
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| {
                (
                    r.offset,
                    r.header("ce_source").unwrap_or_default().to_owned(),
                )
            })
            .collect();
        sources.sort();
        let switches = sources.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert!(
            switches <= kills,
            "partition {partition}: producers interleaved ({switches} switches)"
        );
    }
}

/// With `listen_notify` and writers built with `notify_relay(true)`, an idle relay (long poll
/// interval) wakes at commit instead of at its next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_notify_wakes_an_idle_relay_at_commit() {
    let Some(pool) = common::pool::<sqlx::Postgres>(&common::pg_url()).await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let outbox = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .notify_relay(true)
        .build()
        .await
        .expect("outbox");
    let mut config = common::config(
        &common::pg_url(),
        &kafka.bootstrap_servers(),
        &names,
        "listen_notify = true",
    );
    config.relay.poll_interval = Duration::from_secs(60);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (pool, config) = (pool.clone(), config.clone());
        tokio::spawn(async move {
            outbox_relay::commands::run(pool, &config, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    // By now the idle relay backs off to waits of several seconds between polls.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let started = Instant::now();
    let mut tx = pool.begin().await.expect("begin");
    let id = outbox
        .publish(&mut *tx, &order(1, 0))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let records = read(&kafka.bootstrap_servers(), 1, 1).await;
    let elapsed = started.elapsed();
    assert_eq!(
        records.iter().map(Received::ce_id).collect::<Vec<_>>(),
        [id]
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "woken by NOTIFY, not by the next poll: {elapsed:?}"
    );
    stop_tx.send(()).expect("stop");
    runner.await.expect("runner").expect("run");
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    poison_event_is_dead_lettered_and_operated_from_the_cli:
        postgres => poison_event_on_postgres,
        sqlite => poison_event_on_sqlite,
}
