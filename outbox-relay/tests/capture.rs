//! Trigger capture end to end on the test broker, on PostgreSQL, MariaDB and SQLite: the
//! `outbox-relay capture` commands set it up, the application writes plain SQL, the relay
//! encodes the captured JSON to Avro, and a consumer decodes every record through the
//! registry. A row the schema rejects is dead-lettered with the field named; the rest flow.

mod common;

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::avro::types::Value as Avro;
use outbox_core::registry::{Decoder, Registry};
use outbox_core::relay::AdminStore;
use outbox_core::table::{Dialect, Statements, TableNames};
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

fn broker() -> Option<String> {
    common::service_env("KAFKA_BOOTSTRAP_SERVERS")
}

/// Runs `outbox-relay ARGS` against `url` with the test's table prefix.
fn cli(url: &str, names: &TableNames, args: &[&str]) -> Output {
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args([
            "--database-url",
            url,
            "--table-prefix",
            prefix.trim_end_matches("_events"),
        ])
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("outbox-relay runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn exec<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str) {
    let mut conn = pool.acquire().await.expect("connection");
    DB::run(&mut *conn, sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn unwrap(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => unwrap(inner),
        other => other,
    }
}

fn field<'a>(v: &'a Avro, name: &str) -> &'a Avro {
    match unwrap(v) {
        Avro::Record(fields) => unwrap(
            &fields
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no {name}"))
                .1,
        ),
        other => panic!("not a record: {other:?}"),
    }
}

async fn capture_end_to_end<DB: OutboxDatabase>(pool: Pool<DB>, url: String, bootstrap: String) {
    let names = common::fresh_names();
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    let table = format!("{}_orders", prefix.trim_end_matches("_events"));
    let topic = common::fresh_topic("capture");
    common::broker::create_topic(&bootstrap, &topic, 1).await;
    let q = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&table).expect("name"));
    let (int, money, date) = match DB::DIALECT {
        Dialect::Sqlite => ("INTEGER", "NUMERIC(10,2)", "DATE"),
        _ => ("BIGINT", "DECIMAL(10,2)", "DATE"),
    };
    exec(&pool, &format!("CREATE TABLE {q} (id {int} PRIMARY KEY, customer VARCHAR(50) NOT NULL, total {money} NOT NULL, placed_on {date} NOT NULL, secret VARCHAR(50))")).await;

    let added = ok(&cli(
        &url,
        &names,
        &[
            "capture",
            "add",
            "--table",
            &table,
            "--topic",
            &topic,
            "--exclude",
            "secret",
            "--rename",
            "customer=buyer",
        ],
    ));
    assert!(added.contains(&format!("topic {topic}")), "{added}");
    let listed = ok(&cli(&url, &names, &["capture", "list", "--format", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["table"], table.as_str());

    let bad_date = match DB::DIALECT {
        Dialect::Postgres => "'infinity'",
        Dialect::MySql => "'0000-00-00'",
        Dialect::Sqlite => "'not a date'",
    };
    exec(&pool, &format!("INSERT INTO {q} (id, customer, total, placed_on, secret) VALUES (1, 'ann', 12.50, '2024-01-02', 's')")).await;
    exec(&pool, &format!("UPDATE {q} SET total = 20.00 WHERE id = 1")).await;
    exec(
        &pool,
        &format!(
            "INSERT INTO {q} (id, customer, total, placed_on) VALUES (2, 'bob', 1, {bad_date})"
        ),
    )
    .await;
    exec(&pool, &format!("DELETE FROM {q} WHERE id = 1")).await;

    // A new nullable column through `capture migrate`; dropping a required one is refused.
    let migrated = ok(&cli(
        &url,
        &names,
        &[
            "capture",
            "migrate",
            "--table",
            &table,
            "--ddl",
            &format!("ALTER TABLE {q} ADD COLUMN coupon VARCHAR(20)"),
        ],
    ));
    assert!(migrated.contains("applied"), "{migrated}");
    let refused = cli(
        &url,
        &names,
        &[
            "capture",
            "migrate",
            "--table",
            &table,
            "--ddl",
            &format!("ALTER TABLE {q} DROP COLUMN customer"),
        ],
    );
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("incompatible under FULL_TRANSITIVE")
    );
    exec(&pool, &format!("INSERT INTO {q} (id, customer, total, placed_on, coupon) VALUES (3, 'cy', 3.10, '2024-03-01', 'SPRING')")).await;

    // The relay binary drains to the broker.
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("relay.toml");
    let p = prefix.trim_end_matches("_events");
    std::fs::write(&config_path, format!(
        "database_url = \"{url}\"\ntable_prefix = \"{p}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[relay]\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n"
    )).expect("config");
    let config = common::config(&url, &bootstrap, &names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let mut relay = common::spawn_relay(&config_path);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = store.status("outbox-relay").await.expect("status");
        if status.backlog == 0 && status.dead_letters == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not drained: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = relay.kill();
    let _ = relay.wait();
    let dead = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].error.contains("after.placed_on"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        dead[0]
            .record
            .event_key
            .as_deref()
            .map(|k| serde_json::from_slice::<serde_json::Value>(k).expect("json")),
        Some(serde_json::json!({"id": 2}))
    );

    let (b, t) = (bootstrap.clone(), topic.clone());
    let records =
        tokio::task::spawn_blocking(move || common::consume(&b, &t, 1, 4, Duration::from_secs(60)))
            .await
            .expect("consumer");
    assert_eq!(
        records.len(),
        4,
        "c, u, d and the c after the migration; the bad row dead-lettered"
    );
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    let decoder = Decoder::new(Registry::new(outbox_sqlx::SqlxSchemaStore::new(
        pool.clone(),
        stmts,
    )));
    let mut seen = Vec::new();
    for r in &records {
        assert_eq!(r.header("content-type"), Some("application/avro"));
        assert_eq!(
            r.header("ce_type"),
            Some(format!("outbox.capture.{table}.Change").as_str())
        );
        let value = decoder
            .decode_value(&r.payload)
            .await
            .expect("decodes through the registry");
        let Avro::Enum(_, op) = field(&value, "op") else {
            panic!("op")
        };
        let key: serde_json::Value =
            serde_json::from_slice(r.key.as_deref().expect("key")).expect("key");
        let id = key["id"].as_i64().expect("id");
        assert_eq!(
            r.key.as_deref(),
            Some(format!("{{\"id\":{id}}}").as_bytes()),
            "compact JSON key on every database"
        );
        seen.push((op.clone(), id));
        if op == "c" && key["id"] == 3 {
            assert_eq!(
                field(field(&value, "after"), "coupon"),
                &Avro::String("SPRING".to_owned())
            );
        }
        if op == "u" {
            assert_eq!(
                field(field(&value, "after"), "buyer"),
                &Avro::String("ann".to_owned())
            );
        }
    }
    assert_eq!(
        seen,
        [
            ("c".to_owned(), 1),
            ("u".to_owned(), 1),
            ("d".to_owned(), 1),
            ("c".to_owned(), 3)
        ]
    );

    let removed = ok(&cli(
        &url,
        &names,
        &["capture", "remove", "--table", &table],
    ));
    assert!(removed.contains("removed"));
    exec(&pool, &format!("DROP TABLE {q}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_end_to_end_on_postgres() {
    let Some(bootstrap) = broker() else { return };
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    capture_end_to_end(pool, url, bootstrap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_end_to_end_on_mariadb() {
    let Some(bootstrap) = broker() else { return };
    let Some((pool, url)) = common::mariadb().await else {
        return;
    };
    capture_end_to_end(pool, url, bootstrap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_end_to_end_on_sqlite() {
    let Some(bootstrap) = broker() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    capture_end_to_end(pool, url, bootstrap).await;
}

/// Hostile input to the commands: a quoted name, a missing table, an empty column list, a
/// migrate DDL that is not one ALTER of the table, a remove of a table not captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_cli_refuses_hostile_input() {
    let dir = tempfile::tempdir().expect("dir");
    let (_pool, url) = common::sqlite(&dir).await;
    let names = common::fresh_names();
    for (args, says) in [
        (
            vec!["capture", "add", "--table", "or\"ders"],
            "invalid identifier",
        ),
        (
            vec!["capture", "add", "--table", "missing"],
            "does not exist",
        ),
        (
            vec!["capture", "add", "--table", "missing", "--columns", ""],
            "does not exist",
        ),
        (
            vec!["capture", "add", "--table", "t", "--rename", "nope"],
            "old=new",
        ),
        (
            vec![
                "capture",
                "migrate",
                "--table",
                "t",
                "--ddl",
                "ALTER TABLE t ADD x INT",
            ],
            "not captured",
        ),
        (
            vec![
                "capture",
                "migrate",
                "--table",
                "t",
                "--ddl",
                "DROP TABLE t",
            ],
            "only ALTER TABLE t",
        ),
        (
            vec![
                "capture",
                "migrate",
                "--table",
                "t",
                "--ddl",
                "ALTER TABLE t ADD x INT; DROP TABLE u",
            ],
            "several statements",
        ),
        (
            vec![
                "capture",
                "migrate",
                "--table",
                "t",
                "--ddl",
                "ALTER TABLE u ADD x INT",
            ],
            "not the captured table t",
        ),
    ] {
        let out = cli(&url, &names, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = cli(&url, &names, &["capture", "remove", "--table", "unknown"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "remove of an unknown table fails"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("table unknown is not captured"), "{stderr}");
}
