//! WAL mode end to end on PostgreSQL and the test broker: committed events reach Kafka in
//! commit order (a late commit after an earlier one), rolled-back ones never, a malformed
//! envelope is dead-lettered while the rest flows, the confirmed LSN passes what was
//! acknowledged, a restart resumes after it, a standby takes the slot over, and an envelope
//! with a negative or out-of-range schema id is dead-lettered while the rest flows.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::table::TableNames;
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_relay::metrics::Metrics;
use outbox_relay::settings::Settings;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.is_empty() => Some(servers),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but KAFKA_BOOTSTRAP_SERVERS is not set")
        }
        _ => None,
    }
}

const TOPIC: &str = "wal-orders-one-partition";

/// A relay running in the background until its sender is dropped or fired.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<outbox_core::Result<outbox_relay::RunSummary>>,
    metrics: Arc<Metrics>,
}

fn start(config: &Settings) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::new());
    let config = config.clone();
    let shared = Arc::clone(&metrics);
    let task = tokio::spawn(async move {
        outbox_relay::wal::command::run(&config, shared, async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        stop,
        task,
        metrics,
    }
}

impl Running {
    async fn stop(self) -> outbox_relay::RunSummary {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("relay ran")
    }
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn confirmed_past(pool: &PgPool, slot: &str, lsn: &str) -> bool {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT confirmed_flush_lsn >= CAST($2 AS PG_LSN) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .bind(lsn)
    .fetch_optional(pool)
    .await
    .expect("slot");
    row.is_some_and(|(b,)| b)
}

async fn current_lsn(pool: &PgPool) -> String {
    let (lsn,): (String,) = sqlx::query_as("SELECT CAST(pg_current_wal_lsn() AS TEXT)")
        .fetch_one(pool)
        .await
        .expect("lsn");
    lsn
}

fn received_ids(bootstrap: &str, want: &HashSet<Uuid>) -> Vec<(Option<Vec<u8>>, Uuid)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = common::consume(bootstrap, TOPIC, 1, usize::MAX, Duration::from_secs(2));
        let ours: Vec<_> = records
            .iter()
            .filter(|r| want.contains(&r.ce_id()))
            .map(|r| (r.key.clone(), r.ce_id()))
            .collect();
        let seen: HashSet<Uuid> = ours.iter().map(|(_, id)| *id).collect();
        if seen.len() == want.len() || Instant::now() > deadline {
            return ours;
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, outbox_core::avro::AvroSchema)]
#[avro(namespace = "com.acme.wal")]
struct WalOrder {
    order_id: String,
    seq: i64,
}

impl outbox_core::Event for WalOrder {
    const TOPIC: &'static str = TOPIC;
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

fn order(key: usize, seq: i64) -> WalOrder {
    WalOrder {
        order_id: format!("{key}"),
        seq,
    }
}

/// Publishes `events` through the slot in one committed transaction: their event ids.
async fn publish_committed(
    pool: &PgPool,
    outbox: &outbox_sqlx::Outbox<sqlx::Postgres>,
    events: &[WalOrder],
) -> Vec<Uuid> {
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox.publish_all(&mut *tx, events).await.expect("publish");
    tx.commit().await.expect("commit");
    ids
}

/// Waits until the relay published `ids.len()` events, stops it, and checks each reached the
/// topic once, in order.
async fn drained_in_order(relay: Running, bootstrap: &str, ids: &[Uuid]) {
    let metrics = Arc::clone(&relay.metrics);
    wait_until("the events drained", Duration::from_secs(60), async || {
        metrics.published.get() >= ids.len() as u64
    })
    .await;
    relay.stop().await;
    assert_eq!(
        all_received(bootstrap, ids),
        ids,
        "every event once, in order"
    );
}

async fn clean_up(pool: &PgPool, names: &TableNames) {
    outbox_sqlx::postgres::drop_wal_slot(pool, names)
        .await
        .expect("drop slot");
    for table in outbox_core::table::Table::ALL {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(outbox_core::table::Dialect::Postgres, table)
        )))
        .execute(pool)
        .await
        .expect("drop table");
    }
}

/// What each WAL relay test starts from: the broker, a fresh outbox migrated with its slot,
/// the relay's config in WAL mode and a writer publishing through the slot.
struct WalSetup {
    bootstrap: String,
    pool: PgPool,
    names: TableNames,
    config: Settings,
    wal: WalNames,
    outbox: outbox_sqlx::Outbox<sqlx::Postgres>,
}

/// The setup, or `None` (a skip) without a broker or PostgreSQL outside CI.
async fn wal_setup() -> Option<WalSetup> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let bootstrap = broker()?;
    let (pool, url) = common::postgres().await?;
    common::broker::create_topic(&bootstrap, TOPIC, 1).await;
    let names = common::fresh_names();
    let mut config = common::config(&url, &bootstrap, &names, "");
    config.source = EventSource::Wal;
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate creates the slot");
    let wal = WalNames::new(&names);
    let outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<WalOrder>()
        .wal(true)
        .build()
        .await
        .expect("wal outbox");
    Some(WalSetup {
        bootstrap,
        pool,
        names,
        config,
        wal,
        outbox,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wal_relay_end_to_end() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        config,
        wal,
        outbox,
    }) = wal_setup().await
    else {
        return;
    };

    // A: three events; L begins first and commits after B; R rolls back; M is malformed.
    let mut late = pool.begin().await.expect("begin");
    let l = outbox
        .publish(&mut *late, &order(3, 1))
        .await
        .expect("publish");
    let mut tx = pool.begin().await.expect("begin");
    let a = outbox
        .publish_all(&mut *tx, &[order(1, 1), order(2, 1), order(1, 2)])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    let b = outbox
        .publish(&mut *tx, &order(2, 2))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    late.commit().await.expect("late commit");
    let mut tx = pool.begin().await.expect("begin");
    let r = outbox
        .publish(&mut *tx, &order(1, 99))
        .await
        .expect("publish");
    tx.rollback().await.expect("rollback");
    sqlx::query("SELECT pg_logical_emit_message(true, $1, CAST('\\x09ff' AS BYTEA))")
        .bind(&wal.message_prefix)
        .execute(&pool)
        .await
        .expect("malformed message");
    // A poison event: a topic Kafka refuses, emitted by a writer that bypassed the library.
    let poison = outbox_core::NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: "no spaces allowed".to_owned(),
        event_key: Some(b"1".to_vec()),
        event_type: "T".to_owned(),
        schema_id: None,
        content_type: "application/json".to_owned(),
        payload: b"{}".to_vec(),
        headers: Vec::new(),
    };
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
        .bind(&wal.message_prefix)
        .bind(outbox_core::wal::encode_envelope(&poison, 0).expect("envelope"))
        .execute(&pool)
        .await
        .expect("poison message");
    let mut tx = pool.begin().await.expect("begin");
    let after = outbox
        .publish(&mut *tx, &order(1, 3))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let end = current_lsn(&pool).await;

    let relay = start(&config);
    let commit_order = [a[0], a[1], a[2], b, l, after];
    let want: HashSet<Uuid> = commit_order.iter().copied().chain([r]).collect();
    let got = received_ids(&bootstrap, &want);
    let ids: Vec<Uuid> = got.iter().map(|(_, id)| *id).collect();
    assert!(!ids.contains(&r), "a rolled-back event never appears");
    let mut first = Vec::new();
    for id in &ids {
        if !first.contains(id) {
            first.push(*id);
        }
    }
    assert_eq!(
        first, commit_order,
        "commit order (the late commit after B)"
    );
    wait_until(
        "the confirmed LSN to pass the events",
        Duration::from_secs(15),
        async || confirmed_past(&pool, &wal.slot, &end).await,
    )
    .await;
    let dead: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT error, payload FROM {} ORDER BY id",
        names.qualified(
            outbox_core::table::Dialect::Postgres,
            outbox_core::table::Table::DeadLetters
        )
    )))
    .fetch_all(&pool)
    .await
    .expect("dead letters");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[1].0.contains("topic"), "{}", dead[1].0);
    assert_eq!(dead[1].1, b"{}", "the poison event's payload, as emitted");
    assert!(
        dead[0].0.contains("malformed wal envelope"),
        "{}",
        dead[0].0
    );
    assert_eq!(dead[0].1, [0x09, 0xff], "the envelope kept as the payload");

    // A standby waits for the slot and takes over when the holder stops.
    let standby = start(&config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(relay.metrics.leader.get(), 1);
    assert_eq!(standby.metrics.leader.get(), 0, "the standby waits (55006)");
    let summary = relay.stop().await;
    assert_eq!(summary.published, 6);
    assert_eq!(summary.dead_lettered, 2, "{summary:?} {dead:?}");
    let mut tx = pool.begin().await.expect("begin");
    let more = outbox
        .publish(&mut *tx, &order(2, 3))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let want: HashSet<Uuid> = [more].into_iter().collect();
    let got = received_ids(&bootstrap, &want);
    assert_eq!(
        got.len(),
        1,
        "the standby took over and resumed after the confirmed LSN"
    );
    assert_eq!(standby.metrics.leader.get(), 1);
    let resumed = standby.stop().await;
    assert_eq!(
        resumed.published, 1,
        "nothing confirmed before was produced again"
    );
    assert_eq!(resumed.dead_lettered, 0);

    let status = outbox_relay::wal::command::status(&config)
        .await
        .expect("status");
    assert!(
        status.contains(&wal.slot) && status.contains("wal lag:"),
        "{status}"
    );
    clean_up(&pool, &names).await;
}

/// An envelope of `row` (stored without a schema id) whose schema id field holds `field`
/// instead: what a writer that bypassed the library, or a corrupted message, could carry.
fn with_schema_id_field(row: &outbox_core::NewOutboxRow, field: &[u8]) -> Vec<u8> {
    let plain = outbox_core::wal::encode_envelope(row, 0).expect("envelope");
    let key = row.event_key.as_deref().unwrap_or_default();
    // version, event_id, created_at, topic, key flag, key, event_type (see the layout).
    let at = 1 + 16 + 8 + (4 + row.topic.len()) + 5 + (4 + key.len()) + (4 + row.event_type.len());
    assert_eq!(plain[at..at + 4], [0, 0, 0, 0], "an absent schema id");
    let len = u32::try_from(field.len()).expect("short").to_be_bytes();
    [&plain[..at], &len, field, &plain[at + 4..]].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_schema_id_is_dead_lettered_while_the_rest_flows() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        config,
        wal,
        outbox,
    }) = wal_setup().await
    else {
        return;
    };
    let publish = async |events: &[WalOrder]| publish_committed(&pool, &outbox, events).await;

    let before = publish(&[order(1, 1), order(2, 1)]).await;
    let row = |key: &str| outbox_core::NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: TOPIC.to_owned(),
        event_key: Some(key.as_bytes().to_vec()),
        event_type: "com.acme.wal.WalOrder".to_owned(),
        schema_id: None,
        content_type: "application/avro".to_owned(),
        payload: vec![0, 0, 0, 0, 1, 2],
        headers: Vec::new(),
    };
    // A negative id (the column form, i32), and an id past 32 bits (an 8-byte field).
    let negative = with_schema_id_field(&row("1"), &(-5_i32).to_be_bytes());
    let too_wide = with_schema_id_field(&row("2"), &(1_i64 << 40).to_be_bytes());
    for envelope in [&negative, &too_wide] {
        sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
            .bind(&wal.message_prefix)
            .bind(envelope)
            .execute(&pool)
            .await
            .expect("hand-made message");
    }
    let after = publish(&[order(1, 2), order(2, 2), order(3, 1)]).await;
    let end = current_lsn(&pool).await;

    let relay = start(&config);
    let good: Vec<Uuid> = before.iter().chain(&after).copied().collect();
    let got = received_ids(&bootstrap, &good.iter().copied().collect());
    let mut first = Vec::new();
    for (_, id) in &got {
        if !first.contains(id) {
            first.push(*id);
        }
    }
    assert_eq!(first, good, "every good event, in commit order");
    wait_until(
        "the confirmed LSN to pass the bad messages (the slot is not stuck)",
        Duration::from_secs(15),
        async || confirmed_past(&pool, &wal.slot, &end).await,
    )
    .await;
    let dead: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT error, payload FROM {} ORDER BY id",
        names.qualified(
            outbox_core::table::Dialect::Postgres,
            outbox_core::table::Table::DeadLetters
        )
    )))
    .fetch_all(&pool)
    .await
    .expect("dead letters");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead[0].0.contains("malformed wal envelope") && dead[0].0.contains("schema_id: negative"),
        "{}",
        dead[0].0
    );
    assert_eq!(dead[0].1, negative, "the envelope kept as the payload");
    assert!(
        dead[1].0.contains("malformed wal envelope") && dead[1].0.contains("schema_id"),
        "{}",
        dead[1].0
    );
    assert_eq!(dead[1].1, too_wide);
    let summary = relay.stop().await;
    assert_eq!(summary.published, 5, "{summary:?}");
    assert_eq!(summary.dead_lettered, 2, "{summary:?}");
    clean_up(&pool, &names).await;
}

/// The dead letters of the outbox, oldest first: `(id, error)`.
async fn dead_letters(pool: &PgPool, names: &TableNames) -> Vec<(i64, String)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, error FROM {} ORDER BY id",
        names.qualified(
            outbox_core::table::Dialect::Postgres,
            outbox_core::table::Table::DeadLetters
        )
    )))
    .fetch_all(pool)
    .await
    .expect("dead letters")
}

/// The relay's config in WAL mode with `poison_policy = "block"` and `extra` (in `[relay]`).
fn block_config(config: &Settings, bootstrap: &str, names: &TableNames, extra: &str) -> Settings {
    let mut c = common::config(
        config.database_url(),
        bootstrap,
        names,
        &format!("poison_policy = \"block\"\n{extra}"),
    );
    c.source = EventSource::Wal;
    c
}

/// A 5,000-byte event of `key`, emitted by a writer that bypassed the library: over the
/// 3,000-byte limit the retry tests give their first relay.
fn big_event(key: &[u8]) -> outbox_core::NewOutboxRow {
    outbox_core::NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: TOPIC.to_owned(),
        event_key: Some(key.to_vec()),
        event_type: "com.acme.wal.Big".to_owned(),
        schema_id: None,
        content_type: "application/json".to_owned(),
        payload: format!("\"{}\"", "x".repeat(5_000)).into_bytes(),
        headers: Vec::new(),
    }
}

/// `outbox-relay dead-letters ARGS` through the binary, in WAL mode (a config file says so).
fn dead_letters_command(dir: &tempfile::TempDir, config: &Settings, args: &[&str]) -> String {
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "source = \"wal\"\ndatabase_url = \"{}\"\ntable_prefix = \"{}\"\n",
            config.database_url(),
            common::prefix(&config.tables)
        ),
    )
    .expect("config file");
    let output = common::relay_output(
        &[
            &["--config", path.to_str().expect("utf-8")],
            &["dead-letters"][..],
            args,
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "dead-letters {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The block policy in WAL mode and `dead-letters retry`: a key's poison event and the
/// events after it are parked in order while other keys flow; a retry emits them again,
/// and they reach Kafka in the key's order, ahead of the key's events committed later; an
/// event committed before the retry but read after it stays held behind the key's dead
/// letters, never overtaking them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retrying_dead_letters_in_wal_mode_keeps_the_key_order() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        config,
        wal,
        outbox,
    }) = wal_setup().await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let publish = async |event: WalOrder| {
        let mut tx = pool.begin().await.expect("begin");
        let id = outbox.publish(&mut *tx, &event).await.expect("publish");
        tx.commit().await.expect("commit");
        id
    };
    let block = |extra: &str| block_config(&config, &bootstrap, &names, extra);
    // The first relay refuses records over 3,000 bytes: the poison is a 5,000-byte event of
    // key 7, emitted by a writer that bypassed the library.
    let strict = block("[kafka.properties]\n\"message.max.bytes\" = \"3000\"");
    let poison = big_event(b"7");
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
        .bind(&wal.message_prefix)
        .bind(outbox_core::wal::encode_envelope(&poison, 0).expect("envelope"))
        .execute(&pool)
        .await
        .expect("poison message");
    let e1 = publish(order(7, 1)).await;
    let other = publish(order(8, 1)).await;
    let e2 = publish(order(7, 2)).await;

    let relay = start(&strict);
    assert_eq!(
        received_ids(&bootstrap, &[other].into_iter().collect()).len(),
        1,
        "another key flows past the poison"
    );
    wait_until(
        "the key's events parked",
        Duration::from_secs(15),
        async || dead_letters(&pool, &names).await.len() == 3,
    )
    .await;
    let summary = relay.stop().await;
    assert_eq!((summary.published, summary.dead_lettered), (1, 3));
    let parked = dead_letters(&pool, &names).await;
    assert!(parked[0].1.contains("message.max.bytes"), "{parked:?}");
    for (_, error) in &parked[1..] {
        assert!(
            error.contains(&format!("held behind dead letter {}", parked[0].0)),
            "{parked:?}"
        );
    }

    // Committed while no relay runs, before the retry: read after the retry's messages are
    // emitted, but before the relay reaches them, so it is held.
    let e3 = publish(order(7, 3)).await;
    // The operator lifts the limit and retries the key.
    let out = dead_letters_command(&dir, &config, &["retry", "--key", "7"]);
    let ids: Vec<String> = parked.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(out.trim(), format!("retried: {}", ids.join(", ")));
    assert_eq!(
        dead_letters(&pool, &names).await.len(),
        3,
        "listed until the relay reaches the retried messages"
    );
    let relay = start(&block(""));
    let retried = [poison.event_id, e1, e2];
    let got = received_ids(&bootstrap, &retried.iter().copied().collect());
    let mut first: Vec<Uuid> = Vec::new();
    for (_, id) in &got {
        if !first.contains(id) {
            first.push(*id);
        }
    }
    assert_eq!(first, retried, "the key's parked events, in their order");
    wait_until(
        "e3 parked behind them",
        Duration::from_secs(15),
        async || dead_letters(&pool, &names).await.len() == 1,
    )
    .await;
    let e4 = publish(order(7, 4)).await;
    wait_until("e4 parked too", Duration::from_secs(15), async || {
        dead_letters(&pool, &names).await.len() == 2
    })
    .await;
    // A second retry releases the rest; a retry of an id that does not exist fails.
    dead_letters_command(&dir, &config, &["retry", "--key", "7"]);
    let got = received_ids(&bootstrap, &[e3, e4].into_iter().collect());
    assert_eq!(
        got.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        [e3, e4],
        "released in order, once"
    );
    let end = current_lsn(&pool).await;
    wait_until(
        "the confirmed LSN to pass the retries",
        Duration::from_secs(15),
        async || confirmed_past(&pool, &wal.slot, &end).await,
    )
    .await;
    assert!(dead_letters(&pool, &names).await.is_empty());
    let missing = common::relay_output(&[
        "--database-url",
        config.database_url(),
        "--table-prefix",
        &common::prefix(&config.tables),
        "dead-letters",
        "retry",
        "999999999",
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no dead letter with id 999999999"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let summary = relay.stop().await;
    assert_eq!(summary.published, 5, "{summary:?}");
    clean_up(&pool, &names).await;
}

/// Every record of the test topic whose `ce_id` is one of `ids`, in partition order.
fn all_received(bootstrap: &str, ids: &[Uuid]) -> Vec<Uuid> {
    common::consume(bootstrap, TOPIC, 1, usize::MAX, Duration::from_secs(3))
        .iter()
        .map(common::Received::ce_id)
        .filter(|id| ids.contains(id))
        .collect()
}

/// A hostile operator and writer against `dead-letters retry` in WAL mode: version-2
/// envelopes made by hand (naming a dead letter that does not exist, a negative one,
/// `i64::MAX`, another key's) neither take another event's dead letter out, nor skip the
/// key's block, nor stop the slot; a dead letter retried twice is produced once; one retried
/// then discarded before the relay reaches it is not produced; with the slot gone, a retry is
/// refused and the dead letter stays listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hand_made_retries_and_hostile_operators_in_wal_mode() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        config,
        wal,
        outbox,
    }) = wal_setup().await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let block = |extra: &str| block_config(&config, &bootstrap, &names, extra);
    let emit = async |envelope: Vec<u8>| {
        sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
            .bind(&wal.message_prefix)
            .bind(envelope)
            .execute(&pool)
            .await
            .expect("emit");
    };
    let (poison7, poison9) = (big_event(b"7"), big_event(b"9"));
    for poison in [&poison7, &poison9] {
        emit(outbox_core::wal::encode_envelope(poison, 0).expect("envelope")).await;
    }
    let mut tx = pool.begin().await.expect("begin");
    let e1 = outbox.publish(&mut *tx, &order(7, 1)).await.expect("e1");
    tx.commit().await.expect("commit");
    let relay = start(&block(
        "[kafka.properties]\n\"message.max.bytes\" = \"3000\"",
    ));
    wait_until(
        "both poisons and e1 parked",
        Duration::from_secs(15),
        async || dead_letters(&pool, &names).await.len() == 3,
    )
    .await;
    // Confirmed past them before the operator acts: a relay stopped earlier replays them,
    // and parks them again (see the README on discarding before the slot's confirmation).
    let parked_at = current_lsn(&pool).await;
    wait_until(
        "the parking confirmed",
        Duration::from_secs(15),
        async || confirmed_past(&pool, &wal.slot, &parked_at).await,
    )
    .await;
    relay.stop().await;
    let parked = dead_letters(&pool, &names).await;
    let (p7, p9, h7) = (parked[0].0, parked[1].0, parked[2].0);
    assert!(
        parked[2]
            .1
            .contains(&format!("held behind dead letter {p7}"))
    );

    // Another program emits version-2 envelopes of key 7 (fresh events) by hand.
    let forged = async |dead_letter_id: i64| {
        let record = outbox_core::relay::OutboxRecord {
            id: 0,
            event_id: Uuid::now_v7(),
            topic: TOPIC.to_owned(),
            event_key: Some(b"7".to_vec()),
            event_type: "com.acme.wal.Forged".to_owned(),
            schema_id: None,
            content_type: "application/json".to_owned(),
            payload: b"{}".to_vec(),
            headers: Vec::new(),
            created_at_ms: 0,
        };
        emit(outbox_core::wal::encode_retry_envelope(&record, dead_letter_id).expect("v2")).await;
        record.event_id
    };
    let f_negative = forged(-1).await;
    let f_max = forged(i64::MAX).await;
    let f_missing = forged(h7 + 1_000).await;
    let f_other_key = forged(p9).await;
    // The operator retries p7 twice, and retries h7 but discards it before the relay runs.
    for args in [["retry", "--key", "7"], ["retry", "--key", "7"]] {
        dead_letters_command(&dir, &config, &args);
    }
    dead_letters_command(&dir, &config, &["discard", &h7.to_string()]);
    let mut tx = pool.begin().await.expect("begin");
    let sentinel = outbox
        .publish(&mut *tx, &order(8, 1))
        .await
        .expect("sentinel");
    tx.commit().await.expect("commit");
    let end = current_lsn(&pool).await;

    let relay = start(&block(""));
    wait_until(
        "the relay to pass everything (a stuck slot never does)",
        Duration::from_secs(30),
        async || confirmed_past(&pool, &wal.slot, &end).await,
    )
    .await;
    let summary = relay.stop().await;
    let ours = [
        poison7.event_id,
        poison9.event_id,
        e1,
        f_negative,
        f_max,
        f_missing,
        f_other_key,
        sentinel,
    ];
    let got = all_received(&bootstrap, &ours);
    assert_eq!(
        got,
        [poison7.event_id, sentinel],
        "p7 once; e1 discarded; nothing forged overtakes the block ({summary:?})"
    );
    let left = dead_letters(&pool, &names).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(
        left[0].0, p9,
        "another key's dead letter stays listed: {left:?}"
    );
    assert!(left[0].1.contains("message.max.bytes"), "{left:?}");
    assert!(
        left[1].0 > h7 && left[1].1.contains(&format!("held behind dead letter {p7}")),
        "the envelope naming p9 is read as a new event of key 7, held: {left:?}"
    );

    // A dead letter edited by hand to a 10 MiB payload: retried, streamed, parked again under
    // its id (too large for the producer) while the slot moves on.
    let table = names.qualified(
        outbox_core::table::Dialect::Postgres,
        outbox_core::table::Table::DeadLetters,
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET payload = $2 WHERE id = $1"
    )))
    .bind(p9)
    .bind(vec![b'x'; 10 << 20])
    .execute(&pool)
    .await
    .expect("a 10 MiB payload");
    dead_letters_command(&dir, &config, &["retry", &p9.to_string()]);
    let end = current_lsn(&pool).await;
    let relay = start(&block(""));
    wait_until(
        "the relay to pass the 10 MiB retry",
        Duration::from_secs(120),
        async || confirmed_past(&pool, &wal.slot, &end).await,
    )
    .await;
    relay.stop().await;
    let again = dead_letters(&pool, &names).await;
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again[0].0, p9, "parked again under its id: {again:?}");
    assert!(again[0].1.contains("message.max.bytes"), "{again:?}");

    // A dead letter edited by hand into garbage headers is refused, naming the column.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET headers = '{{not json' WHERE id = $1"
    )))
    .bind(p9)
    .execute(&pool)
    .await
    .expect("edit the dead letter");
    let path = dir.path().join("relay.toml");
    let refused = common::relay_output(&[
        "--config",
        path.to_str().expect("utf-8"),
        "dead-letters",
        "retry",
        &p9.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("headers does not decode"), "{stderr}");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET headers = '[]' WHERE id = $1"
    )))
    .bind(p9)
    .execute(&pool)
    .await
    .expect("mend the dead letter");

    // With the slot gone a retry is refused, naming the slot, and nothing changes.
    outbox_sqlx::postgres::drop_wal_slot(&pool, &names)
        .await
        .expect("drop slot");
    let refused = common::relay_output(&[
        "--config",
        path.to_str().expect("utf-8"),
        "dead-letters",
        "retry",
        &p9.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("slot"), "{stderr}");
    assert_eq!(dead_letters(&pool, &names).await.len(), 2);
    clean_up(&pool, &names).await;
}

/// One transaction of more events than the relay keeps in flight (64 batches of 1 here): the
/// stream is read to its commit, so it settles and drains instead of waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_larger_than_the_in_flight_cap_drains() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        mut config,
        outbox,
        ..
    }) = wal_setup().await
    else {
        return;
    };
    config.relay.batch_size = 1;
    let events: Vec<WalOrder> = (0..150).map(|i| order(9000 + i, i as i64)).collect();
    let ids = publish_committed(&pool, &outbox, &events).await;
    drained_in_order(start(&config), &bootstrap, &ids).await;
    clean_up(&pool, &names).await;
}

/// The slot's lag reaches the metrics from a task beside the stream, at the relay's start and
/// every few seconds after, and the alarm is raised while the lag is above the configured
/// bytes; the drain is not held back by the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_slot_lag_and_its_alarm_reach_the_metrics() {
    let Some(WalSetup {
        bootstrap,
        pool,
        names,
        mut config,
        outbox,
        ..
    }) = wal_setup().await
    else {
        return;
    };
    config.wal.lag_alarm_bytes = 1;
    let events: Vec<WalOrder> = (0..20).map(|i| order(9500 + i, i as i64)).collect();
    let ids = publish_committed(&pool, &outbox, &events).await;
    let waiting = outbox_sqlx::postgres::wal_slot_status(&pool, &names)
        .await
        .expect("status")
        .expect("the slot exists");
    assert!(
        waiting.lag_bytes > 1,
        "the committed events wait in the slot: {waiting:?}"
    );
    let relay = start(&config);
    let metrics = Arc::clone(&relay.metrics);
    wait_until(
        "the lag above 1 byte read into the metrics, with its alarm",
        Duration::from_secs(20),
        async || metrics.wal_slot_lag_bytes.get() > 1 && metrics.wal_slot_lag_alarm.get() == 1,
    )
    .await;
    drained_in_order(relay, &bootstrap, &ids).await;
    clean_up(&pool, &names).await;
}
