//! Rows written by plain SQL that cannot become a Kafka record (malformed headers, event ids,
//! timestamps, topics, oversized records, columns of the wrong type on SQLite): each is
//! dead-lettered with the column and what is wrong, counts in the metrics, blocks its key
//! under the block policy, and every other event flows in order. The status, lag and
//! dead-letter listing keep working with such rows in the tables. On PostgreSQL, MariaDB and
//! SQLite, in-process and through the `outbox-relay run` binary.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::{AdminStore, FailureStore, LeaseStore, RelayStore};
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_relay::{Relay, Step, producer};
use outbox_sqlx::{Outbox, OutboxDatabase};
use sqlx::Pool;
use uuid::Uuid;

/// A row inserted by plain SQL: its key, SQL expressions for the columns a writer sets, and
/// what its dead letter must say (`None`: it is well-formed and must be published).
struct PlainRow {
    key: String,
    /// The key column as an SQL expression, when not the key's bytes.
    key_sql: Option<String>,
    event_id: String,
    topic: String,
    payload: String,
    headers: String,
    created_at: Option<String>,
    expect: Option<&'static str>,
}

fn bytes(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("convert_to('{text}', 'UTF8')"),
        Dialect::MySql => format!("'{text}'"),
        Dialect::Sqlite => format!("CAST('{text}' AS BLOB)"),
    }
}

impl PlainRow {
    /// A well-formed row for `orders`, key `key`.
    fn good(dialect: Dialect, key: &str) -> Self {
        Self {
            key: key.to_owned(),
            key_sql: None,
            event_id: format!("'{}'", Uuid::now_v7()),
            topic: "'orders'".to_owned(),
            payload: bytes(dialect, "plain-sql"),
            headers: "'[[\"traceparent\", \"00-1-2-01\"]]'".to_owned(),
            created_at: None,
            expect: None,
        }
    }

    fn bad(dialect: Dialect, key: &str, expect: &'static str) -> Self {
        Self {
            expect: Some(expect),
            ..Self::good(dialect, key)
        }
    }

    fn insert_sql(&self, dialect: Dialect, names: &TableNames) -> String {
        let events = names.qualified(dialect, Table::Events);
        let key = self
            .key_sql
            .clone()
            .unwrap_or_else(|| bytes(dialect, &self.key));
        let (created_col, created_val) = match &self.created_at {
            Some(v) => (", created_at", format!(", {v}")),
            None => ("", String::new()),
        };
        format!(
            "INSERT INTO {events} (event_id, topic, event_key, event_type, content_type, payload, \
             headers{created_col}) VALUES ({}, {}, {key}, 'com.acme.Plain', 'application/json', {}, \
             {}{created_val})",
            self.event_id, self.topic, self.payload, self.headers
        )
    }
}

/// The malformed rows every database can hold.
fn common_bad_rows(dialect: Dialect) -> Vec<PlainRow> {
    let mut rows = vec![
        PlainRow {
            headers: "'not json'".to_owned(),
            ..PlainRow::bad(dialect, "bad-headers-text", "headers:")
        },
        PlainRow {
            headers: "'{\"not\": \"an array\"}'".to_owned(),
            ..PlainRow::bad(dialect, "bad-headers-object", "headers:")
        },
        PlainRow {
            headers: "'[[1, 2]]'".to_owned(),
            ..PlainRow::bad(dialect, "bad-headers-numbers", "headers:")
        },
        PlainRow {
            headers: "'[[\"a\"]]'".to_owned(),
            ..PlainRow::bad(dialect, "bad-headers-pair", "headers:")
        },
        PlainRow {
            // A common mistake, with a credential in it: the reason must not quote it.
            headers: "'[\"authorization: Bearer hunter2\"]'".to_owned(),
            ..PlainRow::bad(dialect, "bad-headers-secret", "headers:")
        },
        PlainRow {
            topic: "''".to_owned(),
            ..PlainRow::bad(dialect, "bad-topic-empty", "topic: empty")
        },
        PlainRow {
            topic: "'no spaces allowed'".to_owned(),
            ..PlainRow::bad(
                dialect,
                "bad-topic-chars",
                "not allowed in a Kafka topic name",
            )
        },
        PlainRow {
            topic: format!("'{}'", "t".repeat(250)),
            ..PlainRow::bad(dialect, "bad-topic-long", "Kafka allows at most 249")
        },
        PlainRow {
            // 20,000 bytes of value against a message.max.bytes of 10,000.
            payload: bytes(dialect, &"x".repeat(20_000)),
            ..PlainRow::bad(
                dialect,
                "bad-too-large",
                "exceeds the producer's message.max.bytes",
            )
        },
        PlainRow {
            // The value fits; the headers push the record over the limit.
            headers: format!("'[[\"big\", \"{}\"]]'", "h".repeat(9_990)),
            ..PlainRow::bad(dialect, "bad-headers-too-large", "message.max.bytes")
        },
    ];
    if dialect != Dialect::Postgres {
        // MySQL/MariaDB and SQLite store the UUID as text.
        rows.push(PlainRow {
            event_id: "'not-a-uuid'".to_owned(),
            ..PlainRow::bad(dialect, "bad-event-id", "event_id:")
        });
    }
    rows
}

fn dialect_bad_rows(dialect: Dialect) -> Vec<PlainRow> {
    match dialect {
        Dialect::Postgres => vec![
            PlainRow {
                created_at: Some("'infinity'".to_owned()),
                ..PlainRow::bad(dialect, "bad-created-infinity", "created_at:")
            },
            PlainRow {
                created_at: Some("'-infinity'".to_owned()),
                ..PlainRow::bad(dialect, "bad-created-minus-infinity", "created_at:")
            },
            PlainRow {
                created_at: Some("'10000-01-01T00:00:00Z'".to_owned()),
                ..PlainRow::bad(dialect, "bad-created-year-10000", "created_at: outside")
            },
            PlainRow {
                created_at: Some("'1969-12-31T23:59:59Z'".to_owned()),
                ..PlainRow::bad(dialect, "bad-created-before-1970", "created_at: outside")
            },
        ],
        Dialect::MySql => vec![],
        Dialect::Sqlite => vec![
            PlainRow {
                created_at: Some("'the day before yesterday'".to_owned()),
                ..PlainRow::bad(dialect, "bad-created-text", "created_at:")
            },
            PlainRow {
                payload: "42".to_owned(),
                ..PlainRow::bad(dialect, "bad-payload-integer", "payload:")
            },
            PlainRow {
                topic: "X'6f7264657273'".to_owned(),
                ..PlainRow::bad(dialect, "bad-topic-blob", "topic:")
            },
            PlainRow {
                event_id: "42".to_owned(),
                ..PlainRow::bad(dialect, "bad-event-id-integer", "event_id:")
            },
        ],
    }
}

/// Well-formed rows only plain SQL writes: on SQLite, payload and key stored as TEXT are
/// produced as their UTF-8 bytes.
fn dialect_good_rows(dialect: Dialect) -> Vec<PlainRow> {
    match dialect {
        Dialect::Sqlite => vec![PlainRow {
            payload: "'text payload'".to_owned(),
            key_sql: Some("'text-columns'".to_owned()),
            ..PlainRow::good(dialect, "text-columns")
        }],
        _ => vec![],
    }
}

async fn execute<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str) {
    let mut conn = pool.acquire().await.expect("connection");
    DB::run(&mut conn, sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What a test wrote: the events that must reach the topic, per key in order, and the
/// dead letters that must appear (event key -> reason fragment).
struct Written {
    published: HashMap<Vec<u8>, Vec<Uuid>>,
    total_published: usize,
    dead: Vec<(String, &'static str)>,
    names: TableNames,
}

/// Publishes good events through the library and interleaves plain-SQL rows, good and bad.
/// A poison key gets a bad row followed by a good event: the block policy parks the latter.
async fn write<DB: OutboxDatabase>(pool: &Pool<DB>) -> Written {
    let dialect = DB::DIALECT;
    let names = common::fresh_names();
    let outbox = common::order_outbox(pool, &names).await;
    let mut published: HashMap<Vec<u8>, Vec<Uuid>> = HashMap::new();
    let mut dead = Vec::new();
    let mut total = 0;
    let publish = async |events: Vec<common::OrderPlaced>,
                         published: &mut HashMap<Vec<u8>, Vec<Uuid>>| {
        let mut tx = pool.begin().await.expect("begin");
        let ids = outbox
            .publish_all(&mut *tx, &events)
            .await
            .expect("publish");
        tx.commit().await.expect("commit");
        for (event, id) in events.iter().zip(ids) {
            published
                .entry(event.order_id.clone().into_bytes())
                .or_default()
                .push(id);
        }
        events.len()
    };
    total += publish((0..5).map(|i| order(i, 0)).collect(), &mut published).await;
    let mut plain: Vec<PlainRow> = common_bad_rows(dialect);
    plain.extend(dialect_bad_rows(dialect));
    plain.extend(dialect_good_rows(dialect));
    for row in &plain {
        execute(pool, &row.insert_sql(dialect, &names)).await;
        total += publish(vec![order(0, 1), order(1, 1)], &mut published).await;
        match row.expect {
            Some(reason) => dead.push((row.key.clone(), reason)),
            None => total += 1,
        }
    }
    // The poison key: a malformed row, then a good event of the same key (parked).
    execute(
        pool,
        &PlainRow {
            headers: "'[\"unterminated'".to_owned(),
            ..PlainRow::bad(dialect, "order-poison", "headers:")
        }
        .insert_sql(dialect, &names),
    )
    .await;
    dead.push(("order-poison".to_owned(), "headers:"));
    let mut poison_event = order(0, 2);
    poison_event.order_id = "order-poison".to_owned();
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .publish(&mut *tx, &poison_event)
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    dead.push(("order-poison".to_owned(), "held back"));
    total += publish((0..5).map(|i| order(i, 2)).collect(), &mut published).await;
    Written {
        published,
        total_published: total,
        dead,
        names,
    }
}

const EXTRA: &str =
    "poison_policy = \"block\"\n[kafka.properties]\n\"message.max.bytes\" = \"10000\"";

/// Checks the topic and the dead-letter table after a drain.
async fn check<S: RelayStore + FailureStore + LeaseStore + AdminStore>(
    store: &S,
    bootstrap: &str,
    written: &Written,
) {
    let bootstrap = bootstrap.to_owned();
    let expected = written.total_published;
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 3, expected, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let by_key = common::first_occurrences_by_key(&records);
    for (key, ids) in &written.published {
        assert_eq!(
            by_key.get(key),
            Some(ids),
            "key {} arrives whole and in order",
            String::from_utf8_lossy(key)
        );
    }
    let plain_keys: Vec<&Vec<u8>> = by_key
        .keys()
        .filter(|k| !written.published.contains_key(*k))
        .collect();
    assert!(
        plain_keys
            .iter()
            .all(|k| k.as_slice() == b"text-columns" || k.as_slice() == b"order-poison"),
        "only the well-formed plain rows are published besides the library's: {:?}",
        plain_keys
            .iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
    assert!(
        !by_key.contains_key(b"order-poison".as_slice()),
        "the poison key is blocked"
    );
    let dead = store.dead_letters(100).await.expect("dead letters list");
    assert_eq!(
        dead.len(),
        written.dead.len(),
        "{:#?}",
        dead.iter().map(|d| &d.error).collect::<Vec<_>>()
    );
    for (d, (key, reason)) in dead.iter().zip(&written.dead) {
        assert_eq!(
            d.record.event_key.as_deref(),
            Some(key.as_bytes()),
            "dead letters in outbox order"
        );
        assert!(
            d.error.contains(reason),
            "dead letter of {key}: {:?} should say {reason:?}",
            d.error
        );
        assert!(
            !d.error.contains("hunter2"),
            "a dead letter's reason quotes no header value: {:?}",
            d.error
        );
    }
    let status = store.status("outbox-relay").await.expect("status");
    assert_eq!(status.backlog, 0);
    assert_eq!(status.dead_letters as usize, written.dead.len());
}

async fn malformed_rows_are_dead_lettered_and_the_rest_flows<DB: OutboxDatabase>(
    pool: Pool<DB>,
    url: &str,
) {
    let kafka = common::cluster(1, "orders", 3);
    let written = write(&pool).await;
    let config = common::config(url, &kafka.bootstrap_servers(), &written.names, EXTRA);
    let store = config.relay_store(pool.clone()).expect("store");
    let before = store
        .status("outbox-relay")
        .await
        .expect("status with bad rows");
    assert!(before.backlog as usize > written.total_published);
    assert!(
        before.oldest_age.is_some(),
        "lag skips unreadable timestamps"
    );
    let relay = Relay::builder(store, producer::producer(&config.kafka).expect("producer"))
        .with_settings(config.relay.clone())
        .with_instance("solo")
        .with_max_message_bytes(producer::max_message_bytes(&config.kafka).expect("max"))
        .build();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Step::Drained { read: 0, .. } = relay.drain_once().await.expect("step") {
            break;
        }
        assert!(Instant::now() < deadline, "drain did not finish");
    }
    check(relay.store(), &kafka.bootstrap_servers(), &written).await;
    let metrics = relay.metrics().render();
    assert!(
        metrics.contains(&format!(
            "outbox_relay_dead_lettered_total {}",
            written.dead.len()
        )),
        "{metrics}"
    );
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    malformed_rows_are_dead_lettered_and_the_rest_flows:
        postgres => malformed_rows_on_postgres,
        mariadb => malformed_rows_on_mariadb,
        sqlite => malformed_rows_on_sqlite,
}

/// As users run it: rows inserted by plain SQL into a PostgreSQL outbox, `outbox-relay
/// status` and `run` as processes. The good events arrive, the bad rows are dead letters, the
/// relay exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_binary_drains_past_malformed_rows() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 3);
    let written = write(&pool).await;
    let prefix = written.names.name(Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [kafka.properties]\n\"message.max.bytes\" = \"10000\"\n[relay]\npoll_interval = \"20ms\"\n\
             lease_ttl = \"2s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            kafka.bootstrap_servers()
        ),
    )
    .expect("config file");
    let config_arg = file.display().to_string();

    let status = common::relay_output(&["--config", &config_arg, "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "status works with infinite timestamps in the table: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("events waiting"), "{text}");

    let mut child = common::spawn_relay(std::path::Path::new(&config_arg));
    let config = common::config(&url, &kafka.bootstrap_servers(), &written.names, EXTRA);
    let store = config.relay_store(pool.clone()).expect("store");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        assert!(
            Instant::now() < deadline,
            "the relay did not drain the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::stop(&mut child), Some(0));
    check(&store, &kafka.bootstrap_servers(), &written).await;

    let listed = common::relay_output(&[
        "--config",
        &config_arg,
        "dead-letters",
        "list",
        "--format",
        "json",
    ]);
    assert!(listed.status.success());
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("hunter2"),
        "dead-letters list shows no header value of a malformed row"
    );
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(written.dead.len()));
}

/// What `publish` accepts, the relay's producer accepts with its defaults: an event of
/// 1,040,000 bytes (above librdkafka's own 1,000,000 default, below the 1 MiB publish limit)
/// reaches the topic; a record whose key, value and headers together exceed the limit is
/// refused at publish, not discovered by the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_limit_and_producer_limit_agree() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let mut big = order(1, 1);
    big.note = "x".repeat(1_040_000);
    let mut tx = pool.begin().await.expect("begin");
    let id = outbox
        .publish(&mut *tx, &big)
        .await
        .expect("within the limit");
    tx.commit().await.expect("commit");

    let small = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .max_payload_bytes(100)
        .build()
        .await
        .expect("outbox");
    let mut tx = pool.begin().await.expect("begin");
    let mut event = order(1, 2);
    event.note = "n".repeat(60);
    let refused = small
        .publish_with_headers(&mut *tx, &event, &[("trace", &"h".repeat(40))])
        .await;
    assert!(
        matches!(refused, Err(outbox_core::Error::PayloadTooLarge { size, limit: 100, .. }) if size > 100),
        "key + value + headers count against the limit: {refused:?}"
    );
    drop(tx);

    let config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    let relay = Relay::builder(
        config.relay_store(pool.clone()).expect("store"),
        producer::producer(&config.kafka).expect("producer"),
    )
    .with_settings(config.relay.clone())
    .with_instance("solo")
    .with_producer_config(config.kafka.clone())
    .expect("kafka config")
    .build();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Step::Drained { read: 0, .. } = relay.drain_once().await.expect("step") {
            break;
        }
        assert!(Instant::now() < deadline, "drain did not finish");
    }
    assert!(
        relay
            .store()
            .dead_letters(10)
            .await
            .expect("list")
            .is_empty()
    );
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, 1, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_eq!(
        records.iter().map(Received::ce_id).collect::<Vec<_>>(),
        [id]
    );
    assert!(records[0].payload.len() > 1_040_000);
}

/// A malformed row reusing the `event_id` of an existing dead letter cannot be
/// dead-lettered (the id is unique there): it stays in the outbox, reported, and the events
/// after it, of every key, still flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_cannot_be_dead_lettered_does_not_stop_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    let relay = common::solo_relay(&config, &pool);
    let drain = async || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let step = relay
                .drain_once()
                .await
                .expect("a step never fails on a row");
            if let Step::Drained {
                read, held_back, ..
            } = step
                && read == held_back
            {
                return;
            }
            assert!(Instant::now() < deadline, "drain did not finish");
        }
    };
    let reused = Uuid::now_v7();
    let bad = |key: &str| PlainRow {
        event_id: format!("'{reused}'"),
        headers: "'not json'".to_owned(),
        ..PlainRow::bad(Dialect::Sqlite, key, "headers:")
    };
    execute(&pool, &bad("first").insert_sql(Dialect::Sqlite, &names)).await;
    drain().await;
    execute(&pool, &bad("second").insert_sql(Dialect::Sqlite, &names)).await;
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox
        .publish_all(&mut *tx, &[order(1, 0), order(2, 0)])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    drain().await;
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, 2, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_eq!(records.iter().map(Received::ce_id).collect::<Vec<_>>(), ids);
    let status = relay.store().status("x").await.expect("status");
    assert_eq!(
        (status.backlog, status.dead_letters),
        (1, 1),
        "the second bad row stays"
    );
}

/// A step that fails part way, because the database failed while a malformed row was being
/// dead-lettered, leaves the rest of its batch unproduced; the next step reads from the
/// start again, so a later event of those rows' keys does not go out before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_that_fails_part_way_does_not_let_later_events_overtake() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let mut config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    // The malformed row and the key's first event make one batch.
    config.relay.batch_size = 2;
    let relay = common::solo_relay(&config, &pool);
    let publish = async |seq: usize| {
        let mut tx = pool.begin().await.expect("begin");
        let id = outbox
            .publish(&mut *tx, &order(1, seq))
            .await
            .expect("publish");
        tx.commit().await.expect("commit");
        id
    };
    // A first step on the empty outbox reads the blocked keys and the status, so the step
    // below (within their refresh periods) reads neither and fails in its batch.
    relay.drain_once().await.expect("step");
    let malformed = PlainRow {
        headers: "'not json'".to_owned(),
        ..PlainRow::bad(Dialect::Sqlite, "poison", "headers:")
    };
    execute(&pool, &malformed.insert_sql(Dialect::Sqlite, &names)).await;
    let first = publish(0).await;
    // The dead-letter table is gone for one step: moving the malformed row fails, which
    // stops the step before the key's first event is produced.
    let dead = names.name(Table::DeadLetters).to_string();
    execute(&pool, &format!("ALTER TABLE {dead} RENAME TO {dead}_away")).await;
    let failed = relay.drain_once().await;
    assert!(failed.is_err(), "the step had to fail: {failed:?}");
    execute(&pool, &format!("ALTER TABLE {dead}_away RENAME TO {dead}")).await;
    let second = publish(1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let step = relay.drain_once().await;
        let status = relay.store().status("x").await.expect("status");
        if matches!(step, Ok(Step::Drained { read: 0, .. })) && status.backlog == 0 {
            assert_eq!(status.dead_letters, 1, "the malformed row is dead-lettered");
            break;
        }
        assert!(Instant::now() < deadline, "drain did not finish: {step:?}");
    }
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, 2, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_eq!(
        common::first_occurrences_by_key(&records)[&b"order-1".to_vec()],
        [first, second],
        "the key's events arrive in outbox order"
    );
}

/// Runs `outbox-relay run` on the outbox of `names` until its backlog is empty, then stops it
/// with SIGTERM (exit 0).
async fn run_binary_until_drained<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    url: &str,
    names: &TableNames,
    bootstrap: &str,
) {
    let prefix = names.name(Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [relay]\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n"
        ),
    )
    .expect("config file");
    let mut child = common::spawn_relay(&file);
    let config = common::config(url, bootstrap, names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not drain the outbox");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::stop(&mut child), Some(0));
}

/// A plain-SQL writer may set `id` itself: rows with an id of 0 or below are published like
/// any other, in id order ahead of the key's later events (the relay's claim cursor used to
/// start at 0, so they stayed in the outbox for ever).
async fn ids_of_zero_and_below_are_published<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let dialect = DB::DIALECT;
    let kafka = common::cluster(1, "orders", 3);
    let names = common::fresh_names();
    let outbox = common::order_outbox(&pool, &names).await;
    let events = names.qualified(dialect, Table::Events);
    // PostgreSQL's identity column takes an explicit id only when told to.
    let overriding = match dialect {
        Dialect::Postgres => "OVERRIDING SYSTEM VALUE ",
        _ => "",
    };
    let mut expected = Vec::new();
    for id in [-7_i64, 0] {
        let row = PlainRow::good(dialect, "order-0");
        expected.push(Uuid::parse_str(row.event_id.trim_matches('\'')).expect("uuid"));
        let sql = row
            .insert_sql(dialect, &names)
            .replacen(
                &format!("INSERT INTO {events} (event_id"),
                &format!("INSERT INTO {events} (id, event_id"),
                1,
            )
            .replacen("VALUES (", &format!("{overriding}VALUES ({id}, "), 1);
        execute(&pool, &sql).await;
    }
    let mut tx = pool.begin().await.expect("begin");
    expected.push(
        outbox
            .publish(&mut *tx, &order(0, 1))
            .await
            .expect("publish"),
    );
    tx.commit().await.expect("commit");

    run_binary_until_drained(&pool, url, &names, &kafka.bootstrap_servers()).await;
    let bootstrap = kafka.bootstrap_servers();
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 3, 3, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let by_key = common::first_occurrences_by_key(&records);
    assert_eq!(by_key.get(b"order-0".as_slice()), Some(&expected));
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    ids_of_zero_and_below_are_published:
        postgres => ids_of_zero_and_below_on_postgres,
        mariadb => ids_of_zero_and_below_on_mariadb,
        sqlite => ids_of_zero_and_below_on_sqlite,
}

/// Events without a key have no order to keep: under the block policy a malformed keyless row
/// is dead-lettered alone, and the topic's later keyless events are published, not parked
/// behind it (one bad keyless row used to park every later keyless event of its topic).
async fn a_keyless_dead_letter_blocks_nothing<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let dialect = DB::DIALECT;
    let kafka = common::cluster(1, "orders", 3);
    let names = common::fresh_names();
    common::order_outbox(&pool, &names).await;
    let keyless = |row: PlainRow| PlainRow {
        key_sql: Some("NULL".to_owned()),
        ..row
    };
    let bad = keyless(PlainRow {
        headers: "'not json'".to_owned(),
        ..PlainRow::bad(dialect, "", "headers:")
    });
    execute(&pool, &bad.insert_sql(dialect, &names)).await;
    let mut expected = Vec::new();
    for _ in 0..3 {
        let good = keyless(PlainRow::good(dialect, ""));
        expected.push(good.event_id.trim_matches('\'').to_owned());
        execute(&pool, &good.insert_sql(dialect, &names)).await;
    }

    run_binary_until_drained(&pool, url, &names, &kafka.bootstrap_servers()).await;
    let config = common::config(url, &kafka.bootstrap_servers(), &names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let dead = store.dead_letters(100).await.expect("dead letters");
    let dead_ids: Vec<String> = dead.iter().map(|d| d.record.event_id.to_string()).collect();
    assert_eq!(
        dead_ids,
        vec![bad.event_id.trim_matches('\'').to_owned()],
        "only the malformed row is a dead letter: {:?}",
        dead.iter().map(|d| &d.error).collect::<Vec<_>>()
    );
    let bootstrap = kafka.bootstrap_servers();
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 3, 3, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let mut got: Vec<String> = records
        .iter()
        .filter_map(|r| r.header("ce_id").map(str::to_owned))
        .collect();
    got.sort();
    got.dedup();
    expected.sort();
    assert_eq!(got, expected);
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_keyless_dead_letter_blocks_nothing:
        postgres => a_keyless_dead_letter_blocks_nothing_on_postgres,
        mariadb => a_keyless_dead_letter_blocks_nothing_on_mariadb,
        sqlite => a_keyless_dead_letter_blocks_nothing_on_sqlite,
}
