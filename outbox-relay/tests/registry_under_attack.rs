//! The issue's "done when": a running `outbox-relay run`, with registry writes enabled and
//! valid credentials presented (so neither read-only nor auth answers before the parser),
//! receives hostile schemas through registration, look-up and compatibility, and slow
//! clients, while it drains; every event is still published, the relay stays up and exits 0.
//! Then the PyPI confluent-kafka `SchemaRegistryClient` runs its whole Avro surface against it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{GUARD, http};
use serde_json::{Value as Json, json};

const USER: &str = "ci";
const PASSWORD: &str = "s3cret:pw";

fn basic() -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Basic {encoded}")
}

/// The hostile schemas, by name.
fn hostile() -> Vec<(&'static str, String)> {
    let recursive =
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":"R","default":{}}]}"#
            .to_owned();
    let deep = format!(
        "{}\"int\"{}",
        r#"{"type":"array","items":"#.repeat(500),
        "}".repeat(500)
    );
    let chain_fields: Vec<Json> = (0..5_000)
        .map(|i| {
            let next = if i + 1 == 5_000 {
                json!("int")
            } else {
                json!(["null", format!("C{}", i + 1)])
            };
            json!({"name": format!("f{i}"), "type": {"type": "record", "name": format!("C{i}"),
                "fields": [{"name": "next", "type": next}]}})
        })
        .collect();
    let chain = json!({"type": "record", "name": "Chain", "fields": chain_fields}).to_string();
    let symbols: Vec<String> = (0..210_000).map(|i| format!("S{i:07}")).collect();
    let big_enum = json!({"type": "enum", "name": "Big", "symbols": symbols}).to_string();
    let mut diamond = Vec::new();
    for i in 0..40 {
        let next = if i == 39 {
            json!("int")
        } else {
            json!(format!("D{}", i + 1))
        };
        let default = if i == 39 { json!(0) } else { json!({}) };
        diamond.push(json!({"type":"record","name":format!("D{i}"),"fields":[
            {"name":"a","type":next,"default":default},{"name":"b","type":next,"default":default}]}));
    }
    let diamond = json!({"type":"record","name":"Top","fields":[
        {"name":"all","type":{"type":"array","items":diamond}},
        {"name":"top","type":"D0","default":{}}]})
    .to_string();
    vec![
        ("recursive default", recursive),
        ("deep nesting", deep),
        ("long named-type chain", chain),
        ("2 MiB enum", big_enum),
        ("exponential defaults", diamond),
    ]
}

#[test]
fn hostile_schemas_and_slow_clients_do_not_disturb_the_drain() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let topic = "orders";
    let kafka = common::cluster(1, topic, 1);
    let names = common::fresh_names();
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let pool = runtime
        .block_on(common::pool::<sqlx::Sqlite>(&url))
        .expect("sqlite");
    let outbox = runtime
        .block_on(
            outbox_sqlx::Outbox::builder(pool.clone())
                .table_names(names)
                .register::<common::OrderPlaced>()
                .build(),
        )
        .expect("outbox");
    let publish = |from: usize, n: usize| {
        runtime.block_on(async {
            let mut tx = pool.begin().await.expect("begin");
            let events: Vec<_> = (from..from + n).map(|i| common::order(i % 7, i)).collect();
            outbox
                .publish_all(&mut *tx, &events)
                .await
                .expect("publish");
            tx.commit().await.expect("commit");
        });
    };
    publish(0, 2_000);

    let (http_addr, api_addr) = (
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    );
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\npoll_interval = \"20ms\"\n[registry]\nread_only = false\n\
             [registry.auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
             [registry.server]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\n"
        ),
    )
    .expect("config");
    let mut relay = common::relay_command()
        .arg("--config")
        .arg(&config)
        .args(["--database-url", &url, "--table-prefix", &prefix])
        .arg("--bootstrap-servers")
        .arg(kafka.bootstrap_servers())
        .args([
            "--http-listen",
            &http_addr,
            "--registry-listen",
            &api_addr,
            "run",
        ])
        .spawn()
        .expect("relay starts");
    let api: std::net::SocketAddr = api_addr.parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "the registry API did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Slow clients hold connections for the whole attack.
    let slow: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                common::http::stall(api, "POST /subjects/s/versions HTTP/1.1\r\nHost: x\r\n")
            })
        })
        .collect();
    let auth = basic();
    let headers = [
        ("Content-Type", "application/vnd.schemaregistry.v1+json"),
        ("Authorization", auth.as_str()),
    ];
    // A valid subject to look up and check against.
    let base =
        json!({"schema": r#"{"type":"record","name":"Ok","fields":[{"name":"a","type":"int"}]}"#})
            .to_string();
    let (status, _, body) = http(
        api,
        "POST",
        "/subjects/attack-value/versions",
        &headers,
        &base,
    );
    assert_eq!(status, 200, "{body}");
    let mut published_more = 0;
    for (name, schema) in hostile() {
        // More events arrive while the relay is under attack.
        publish(2_000 + published_more, 200);
        published_more += 200;
        let body = json!({ "schema": schema }).to_string();
        for path in [
            "/subjects/attack-value/versions",
            "/subjects/attack-value",
            "/compatibility/subjects/attack-value/versions/latest?verbose=true",
        ] {
            let (status, _, reply) = http(api, "POST", path, &headers, &body);
            let code = serde_json::from_str::<Json>(&reply)
                .ok()
                .and_then(|j| j["error_code"].as_u64());
            // Refused as invalid (42201), not found (lookup of a valid schema), or a verdict;
            // never a crash, a hang or a 500.
            assert!(
                matches!(
                    (status, code),
                    (422, Some(42201)) | (404, Some(40403)) | (409, Some(409)) | (200, _)
                ),
                "{name} at {path}: {status} {}",
                reply.chars().take(300).collect::<String>()
            );
        }
    }
    for t in slow {
        t.join().expect("slow client");
    }
    let total = 2_000 + published_more;

    // The drain's count is unaffected: every event published, in full.
    let deadline = Instant::now() + GUARD * 3;
    loop {
        let (status, _, metrics) =
            http(http_addr.parse().expect("addr"), "GET", "/metrics", &[], "");
        if status == 200 && metrics.contains(&format!("outbox_relay_published_total {total}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not publish all {total} events"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = common::consume(
        &kafka.bootstrap_servers(),
        topic,
        1,
        total,
        Duration::from_secs(60),
    );
    let ids: std::collections::HashSet<_> = records.iter().map(common::Received::ce_id).collect();
    assert_eq!(ids.len(), total, "every event reached the topic once");
    assert!(
        relay.try_wait().expect("status").is_none(),
        "the relay is still up"
    );

    // confluent-kafka's own SchemaRegistryClient against the running relay.
    match std::env::var("OUTBOX_PYTHON") {
        Ok(python) => {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/registry_client_confluent.py"
            );
            let out = Command::new(python)
                .arg(script)
                .arg(format!("http://{api_addr}"))
                .arg(format!("{USER}:{PASSWORD}"))
                .output()
                .expect("python runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("all ok"),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but OUTBOX_PYTHON is not set"
        ),
    }

    assert_eq!(common::stop(&mut relay), Some(0));
}
