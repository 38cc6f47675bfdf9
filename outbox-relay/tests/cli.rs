//! The `outbox-relay` binary as an operator uses it: configuration errors, help, schema
//! commands, status, and the metrics and health endpoints of a running relay.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OUTBOX_DATABASE_URL")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .expect("outbox-relay runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display())
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["migrate", "--help"],
        vec!["status", "--help"],
        vec!["schema", "--help"],
        vec!["schema", "check", "--help"],
        vec!["schema", "lint", "--help"],
        vec!["schema", "codegen", "--help"],
        vec!["schema", "register", "--help"],
        vec!["schema", "list", "--help"],
        vec!["schema", "get", "--help"],
        vec!["registry", "serve", "--help"],
        vec!["dead-letters", "--help"],
        vec!["dead-letters", "list", "--help"],
        vec!["dead-letters", "retry", "--help"],
        vec!["dead-letters", "discard", "--help"],
    ] {
        let out = relay(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn missing_or_malformed_configuration_names_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["status".into()], "database_url"),
        (
            vec!["--database-url".into(), url.clone(), "run".into()],
            "kafka.bootstrap_servers",
        ),
        (
            vec![
                "--database-url".into(),
                "oracle://x".into(),
                "status".into(),
            ],
            "unsupported scheme",
        ),
        (
            vec![
                "--database-url".into(),
                url.clone(),
                "--table-prefix".into(),
                "x;drop".into(),
                "status".into(),
            ],
            "table_prefix",
        ),
        (
            vec![
                "--database-url".into(),
                url.clone(),
                "--bootstrap-servers".into(),
                "127.0.0.1:1".into(),
                "-X".into(),
                "acks=1".into(),
                "run".into(),
            ],
            "kafka.properties.acks",
        ),
    ];
    for (args, key) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = relay(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{args:?}: {}", stderr(&out));
    }
    for (toml, key) in [
        ("[relay]\nbatchsize = 5\n", "batchsize"),
        ("[relay]\npoll_interval = \"soon\"\n", "poll_interval"),
        ("[relay]\npoison_policy = \"ignore\"\n", "poison_policy"),
        ("database_url = 5\n", "database_url"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, toml).expect("write");
        let out = relay(&[
            "--config",
            &file.display().to_string(),
            "--database-url",
            &url,
            "status",
        ]);
        assert_eq!(out.status.code(), Some(2), "{toml}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{toml}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim_end().lines().count(),
            1,
            "one line: {}",
            stderr(&out)
        );
    }
}

#[test]
fn schema_register_list_get_and_a_refused_change() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    let v1 = dir.path().join("v1.avsc");
    std::fs::write(
        &v1,
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#,
    )
    .expect("write");
    let v2 = dir.path().join("v2.avsc");
    std::fs::write(
        &v2,
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#,
    )
    .expect("write");
    let db = ["--database-url", url.as_str()];
    let first = relay(
        &[
            &db[..],
            &[
                "schema",
                "register",
                "--subject",
                "orders-value",
                &v1.display().to_string(),
            ],
        ]
        .concat(),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        stdout(&first).trim(),
        "registered orders-value version 1 with id 1"
    );
    let again = relay(
        &[
            &db[..],
            &[
                "schema",
                "register",
                "--subject",
                "orders-value",
                &v1.display().to_string(),
            ],
        ]
        .concat(),
    );
    assert_eq!(
        stdout(&again).trim(),
        "registered orders-value version 1 with id 1",
        "idempotent"
    );
    let refused = relay(
        &[
            &db[..],
            &[
                "schema",
                "register",
                "--subject",
                "orders-value",
                &v2.display().to_string(),
            ],
        ]
        .concat(),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("TYPE_MISMATCH"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("`orders.v2`"),
        "hint: {}",
        stderr(&refused)
    );
    let list = relay(&[&db[..], &["schema", "list"]].concat());
    assert_eq!(stdout(&list), "orders-value\n");
    let versions = relay(&[&db[..], &["schema", "list", "orders-value"]].concat());
    assert_eq!(stdout(&versions), "version 1\tid 1\tOrder\n");
    let get = relay(&[&db[..], &["schema", "get", "orders-value"]].concat());
    assert!(
        stdout(&get).contains(r#""name":"Order""#),
        "{}",
        stdout(&get)
    );
    let by_id = relay(&[&db[..], &["schema", "get", "--id", "1"]].concat());
    assert_eq!(stdout(&by_id), stdout(&get));
    let missing = relay(&[&db[..], &["schema", "get", "nope-value"]].concat());
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("subject not found: nope-value"));
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// `run` serves /metrics, /healthz and /readyz, publishes, reports status, and exits 0 on
/// SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_relay_serves_metrics_and_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let pool = common::pool::<sqlx::Sqlite>(&url).await.expect("sqlite");
    let outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names)
        .register::<common::OrderPlaced>()
        .build()
        .await
        .expect("outbox");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .publish_all(
            &mut *tx,
            &(0..25).map(|i| common::order(i, i)).collect::<Vec<_>>(),
        )
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args([
            "--database-url",
            &url,
            "--table-prefix",
            &prefix,
            "--bootstrap-servers",
        ])
        .arg(kafka.bootstrap_servers())
        .args(["--http-listen", &addr, "--registry-listen", "", "run"])
        .env("RUST_LOG", "error")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if TcpStream::connect(&addr).is_ok() {
            let (status, body) = http_get(&addr, "/metrics");
            if status == 200 && body.contains("outbox_relay_published_total 25") {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "relay did not publish the 25 events"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains("outbox_relay_leader 1"), "{metrics}");
    assert!(
        metrics.contains("outbox_relay_end_to_end_latency_seconds_count 25"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outbox_relay_batch_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("outbox_relay_backlog_rows"), "{metrics}");
    assert!(metrics.contains("outbox_relay_lag_seconds"), "{metrics}");
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    assert_eq!(http_get(&addr, "/nope").0, 404);

    let status = relay(&["--database-url", &url, "--table-prefix", &prefix, "status"]);
    let text = stdout(&status);
    assert!(text.contains("backlog:      0 events waiting"), "{text}");
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(
        !text.contains("leader:       none"),
        "a live relay holds the lease: {text}"
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let exit = child.wait().expect("exits");
    assert_eq!(exit.code(), Some(0));
    let status = relay(&["--database-url", &url, "--table-prefix", &prefix, "status"]);
    assert!(
        stdout(&status).contains("leader:       none"),
        "lease released on shutdown: {}",
        stdout(&status)
    );
}
