//! `outbox-relay liberate bulk` of 100,000 rows killed with SIGKILL mid-way and run again:
//! every row is in the outbox exactly once, and what the checkpoint counted at the kill is
//! exactly what had committed. On PostgreSQL, MariaDB and SQLite. Hostile input on the
//! command line refused with exit code 2 and the reason. And liberated rows on the test
//! broker, decoded as a consumer would.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use outbox_core::table::{Identifier, Table, TableNames};
use outbox_sqlx::{Column, OutboxDatabase, Value};
use sqlx::Pool;

const ROWS: usize = 100_000;

fn liberate(url: &str, names: &TableNames, args: &[&str]) -> Command {
    let mut command = common::relay_command();
    command
        .args([
            "--database-url",
            url,
            "--table-prefix",
            &common::prefix(names),
        ])
        .arg("liberate")
        .args(args);
    command
}

fn output(mut command: Command) -> Output {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("outbox-relay runs")
}

async fn exec<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str) {
    let mut conn = pool.acquire().await.expect("connection");
    DB::run(&mut *conn, sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column of the first row, as a number (`None` when the query fails, e.g.
/// before the command has created the table).
async fn number<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str) -> Option<i64> {
    let mut conn = pool.acquire().await.expect("connection");
    let rows = DB::rows(&mut *conn, sql, vec![], &[Column::I64])
        .await
        .ok()?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::I64(n)) => Some(*n),
        _ => None,
    }
}

async fn bulk_killed_and_resumed<DB: OutboxDatabase>(pool: Pool<DB>, url: &str) {
    let names = common::fresh_names();
    let table = format!("{}_orders", common::prefix(&names));
    let quoted = DB::DIALECT.quote(&Identifier::new(&table).expect("name"));
    exec(
        &pool,
        &format!(
            "CREATE TABLE {quoted} (id BIGINT NOT NULL PRIMARY KEY, customer VARCHAR(40) NOT NULL, \
             total DECIMAL(10,2) NOT NULL)"
        ),
    )
    .await;
    let values: Vec<String> = (1..=ROWS)
        .map(|i| format!("({i}, 'customer {}', {i}.25)", i % 977))
        .collect();
    for chunk in values.chunks(1000) {
        exec(
            &pool,
            &format!(
                "INSERT INTO {quoted} (id, customer, total) VALUES {}",
                chunk.join(", ")
            ),
        )
        .await;
    }
    let events = names.qualified(DB::DIALECT, Table::Events);
    let checkpoint = format!(
        "SELECT rows_done FROM {} WHERE table_name = '{table}'",
        names.qualified(DB::DIALECT, Table::Liberations)
    );

    // Throttled so that the kill lands mid-way. Its progress figures go to a metrics file.
    let dir = tempfile::tempdir().expect("dir");
    let metrics = dir.path().join("liberate.prom");
    let metrics_arg = metrics.display().to_string();
    let figure = |name: &str| -> Option<f64> {
        let text = std::fs::read_to_string(&metrics).ok()?;
        let line = text.lines().find(|l| l.starts_with(&format!("{name}{{")))?;
        line.rsplit(' ').next()?.parse().ok()
    };
    let mut child: Child = liberate(
        url,
        &names,
        &[
            "bulk",
            "--table",
            &table,
            "--chunk",
            "500",
            "--rows-per-second",
            "20000",
            "--metrics-file",
            &metrics_arg,
        ],
    )
    .spawn()
    .expect("liberate starts");
    let deadline = Instant::now() + Duration::from_secs(300);
    while number(&pool, &checkpoint).await.unwrap_or(0) < 10_000 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(child.try_wait().expect("wait").is_none(), "exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("killed");
    let committed = number(&pool, &checkpoint).await.expect("checkpoint");
    let written = number(&pool, &format!("SELECT COUNT(*) FROM {events}"))
        .await
        .expect("count");
    assert_eq!(
        written, committed,
        "the checkpoint counts exactly what committed"
    );
    assert!(
        written < ROWS as i64,
        "killed mid-way: {written} rows written"
    );
    assert_eq!(
        figure("outbox_liberate_rows_estimated"),
        Some(ROWS as f64),
        "the metrics file holds the estimate"
    );
    let reported = figure("outbox_liberate_rows_done").expect("rows done in the metrics file");
    assert!(
        reported > 0.0 && reported <= written as f64,
        "the metrics file reports progress that committed: {reported} of {written}"
    );

    let out = output(liberate(
        url,
        &names,
        &["bulk", "--table", &table, "--metrics-file", &metrics_arg],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{ROWS} rows in all")),
        "the summary: {stdout}"
    );
    eprintln!("after a SIGKILL at {written} rows: {stdout}");
    let total = number(&pool, &format!("SELECT COUNT(*) FROM {events}")).await;
    let distinct = number(
        &pool,
        &format!("SELECT COUNT(DISTINCT event_key) FROM {events}"),
    )
    .await;
    assert_eq!(total, Some(ROWS as i64), "every row");
    assert_eq!(distinct, Some(ROWS as i64), "each once");
    assert_eq!(
        figure("outbox_liberate_rows_done"),
        Some(ROWS as f64),
        "the metrics file ends with every row"
    );

    exec(&pool, &format!("DROP TABLE {quoted}")).await;
    for t in Table::ALL {
        exec(
            &pool,
            &format!("DROP TABLE IF EXISTS {}", names.qualified(DB::DIALECT, t)),
        )
        .await;
    }
}

crate::on_each_database! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    bulk_killed_and_resumed:
        postgres => bulk_of_100k_killed_and_resumed_on_postgres,
        mariadb => bulk_of_100k_killed_and_resumed_on_mariadb,
        sqlite => bulk_of_100k_killed_and_resumed_on_sqlite,
}

/// A table that does not exist, a `--by` column that does not exist, an unsafe table name,
/// a `--query` that is not a SELECT, a chunk too large, a rate or poll interval of 0: exit code 2, the reason on standard error, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let names = common::fresh_names();
    exec(
        &pool,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT)",
    )
    .await;
    for (args, needle) in [
        (
            vec!["bulk", "--table", "nope"],
            "liberation of table nope refused: the table does not exist",
        ),
        (
            vec![
                "incremental",
                "--table",
                "items",
                "--by",
                "updated_at",
                "--once",
            ],
            "column \"updated_at\" does not exist",
        ),
        (
            vec!["bulk", "--table", "items\"; DROP TABLE items; --"],
            "identifier",
        ),
        (
            vec!["bulk", "--table", "items", "--query", "DROP TABLE items"],
            "the query must be one SELECT",
        ),
        // PostgreSQL ("bigint out of range") and SQLite ("datatype mismatch") failed
        // mid-run with exit code 1; 0 rows per second and a 0 s poll interval ran
        // unthrottled.
        (
            vec![
                "bulk",
                "--table",
                "items",
                "--chunk",
                "18446744073709551615",
            ],
            "the chunk size must be from 1 to 1000000",
        ),
        (
            vec!["bulk", "--table", "items", "--rows-per-second", "0"],
            "--rows-per-second must be at least 1",
        ),
        (
            vec![
                "incremental",
                "--table",
                "items",
                "--by",
                "id",
                "--interval",
                "0s",
                "--once",
            ],
            "--interval must be longer than 0",
        ),
    ] {
        let out = output(liberate(&url, &names, &args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let events = names.qualified(outbox_core::table::Dialect::Sqlite, Table::Events);
    assert_eq!(
        number(&pool, &format!("SELECT COUNT(*) FROM {events}")).await,
        Some(0)
    );
    assert_eq!(
        number(&pool, "SELECT COUNT(*) FROM items").await,
        Some(0),
        "the table is still there"
    );
}

/// What a user checks on the topic: liberated rows reach the broker through the relay as
/// Confluent-framed Avro of the change-event schema, `op = r`, keyed by the primary key, and
/// decode through the embedded registry. (SQLite: the encoding does not depend on the
/// database; the three databases' rows are the suite's in outbox-sqlx.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn liberated_rows_reach_the_topic_as_avro() {
    use std::sync::Arc;

    use outbox_core::avro::types::Value as Avro;
    use outbox_core::registry::{Decoder, Registry};
    use outbox_core::relay::AdminStore;

    let Some(bootstrap) = common::broker::broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let names = common::fresh_names();
    let topic = common::fresh_topic("liberate");
    common::broker::create_topic(&bootstrap, &topic, 1).await;
    exec(
        &pool,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(8,2) NOT NULL)",
    )
    .await;
    let values: Vec<String> = (1..=30)
        .map(|i| format!("({i}, 'item {i}', {i}.99)"))
        .collect();
    exec(
        &pool,
        &format!(
            "INSERT INTO items (id, name, price) VALUES {}",
            values.join(", ")
        ),
    )
    .await;
    let out = output(liberate(
        &url,
        &names,
        &[
            "bulk", "--table", "items", "--topic", &topic, "--chunk", "7",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let config_path = dir.path().join("relay.toml");
    std::fs::write(
        &config_path,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [relay]\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            common::prefix(&names)
        ),
    )
    .expect("config");
    let store = common::config(&url, &bootstrap, &names, "")
        .relay_store(pool.clone())
        .expect("store");
    let mut relay = common::spawn_relay(&config_path);
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        assert!(Instant::now() < deadline, "not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::stop_gracefully(&mut relay);

    let (b, t) = (bootstrap.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&b, &t, 1, 30, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    assert_eq!(records.len(), 30);
    let stmts = Arc::new(outbox_core::table::Statements::new(
        outbox_core::table::Dialect::Sqlite,
        &names,
    ));
    let decoder = Decoder::new(Registry::new(outbox_sqlx::SqlxSchemaStore::new(
        pool.clone(),
        stmts,
    )));
    let unwrap = |v: &Avro| -> Avro {
        let mut v = v.clone();
        while let Avro::Union(_, inner) = v {
            v = *inner;
        }
        v
    };
    let field = |v: &Avro, name: &str| -> Avro {
        match unwrap(v) {
            Avro::Record(fields) => unwrap(&fields.iter().find(|(n, _)| n == name).expect(name).1),
            other => panic!("not a record: {other:?}"),
        }
    };
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.header("content-type"), Some("application/avro"));
        assert_eq!(r.header("ce_type"), Some("outbox.capture.items.Change"));
        let key: serde_json::Value =
            serde_json::from_slice(r.key.as_deref().expect("key")).expect("key");
        assert_eq!(key, serde_json::json!({"id": i + 1}), "key order");
        let value = decoder.decode_value(&r.payload).await.expect("decodes");
        assert!(matches!(field(&value, "op"), Avro::Enum(_, op) if op == "r"));
        assert_eq!(field(&value, "before"), Avro::Null);
        let after = field(&value, "after");
        assert_eq!(
            field(&after, "name"),
            Avro::String(format!("item {}", i + 1))
        );
    }
}
