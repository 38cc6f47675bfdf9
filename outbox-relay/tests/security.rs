//! The relay against real TLS endpoints, configured the way a deployment is: the local
//! PostgreSQL reached with `sslmode=verify-full`, the test broker behind TLS (client
//! certificates required), secrets from environment variables and files. `.ci/setup` makes
//! the certificates, users and listeners (OUTBOX_TEST_TLS_DIR, KAFKA_TLS_BOOTSTRAP_SERVERS,
//! KAFKA_SASL_SSL_BOOTSTRAP_SERVERS); without them the tests skip, except under CI=true.
//! The failures of each setting are in `security_database.rs`, `security_kafka.rs` and
//! `security_secrets.rs`.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Tls;
use common::isolated::{output, pg_tls_url, relay_with_env, stderr};
use outbox_core::encode::EventCodec;
use outbox_core::registry::Registry;
use outbox_core::relay::{AdminStore, InsertRows};
use outbox_core::{Event, NewOutboxRow};
use rdkafka::ClientConfig;

fn ssl_properties(tls: &Tls) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", tls.path("ca.crt")),
        ("ssl.certificate.location", tls.path("client.crt")),
        ("ssl.key.location", tls.path("client.key")),
    ]
}

async fn create_topic(bootstrap: &str, properties: &[(&str, String)], topic: &str) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        config.set(*k, v);
    }
    common::broker::create_topic_with(config, topic, 2).await;
}

/// Done when: a relay configured only through environment variables drains to the broker
/// over TLS (client certificate) from a PostgreSQL reached with `sslmode=verify-full`, its
/// password from a file; nothing it prints (JSON logs, `status`) holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_configured_only_by_environment_drains_over_tls_from_verify_full_postgres() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_TLS_BOOTSTRAP_SERVERS") else {
        return;
    };
    let url = pg_tls_url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.path("ca.crt")
    ));
    let password = tls.password();

    // The test's own writer reaches PostgreSQL the same way (sqlx + rustls, verify-full).
    let with_password = url.replacen("outbox_tls@", &format!("outbox_tls:{password}@"), 1);
    let pool = outbox_relay::database::connect::<sqlx::Postgres>(&with_password)
        .await
        .expect("verify-full connection as outbox_tls");
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("pg_stat_ssl");
    assert!(ssl, "the connection is encrypted");

    let topic = common::fresh_topic("orders-tls");
    let ssl_props = ssl_properties(&tls);
    create_topic(&bootstrap, &ssl_props, &topic).await;
    let names = common::fresh_names();
    let config = common::config(&with_password, &bootstrap, &names, "");
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate");
    let stmts = std::sync::Arc::new(outbox_core::table::Statements::new(
        outbox_core::table::Dialect::Postgres,
        &names,
    ));
    let registry = Registry::new(outbox_sqlx::SqlxSchemaStore::new(pool.clone(), stmts));
    let schema = common::OrderPlaced::schema().expect("schema");
    let subject = format!("{topic}-value");
    let registered = registry
        .register(&subject, &schema)
        .await
        .expect("register");
    let codec = EventCodec::new(subject, registered.id, schema);
    let rows: Vec<NewOutboxRow> = (0..100)
        .map(|i| {
            let mut row = NewOutboxRow::from_event(&codec, &common::order(i % 10, i)).expect("ok");
            row.topic.clone_from(&topic);
            row
        })
        .collect();
    let store = config.relay_store(pool.clone()).expect("store");
    store.insert_rows(&rows).await.expect("insert");

    let password_file = tls.path("password");
    let ca = tls.path("ca.crt");
    let cert = tls.path("client.crt");
    let key = tls.path("client.key");
    let table_prefix = common::prefix(&names);
    let http = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    );
    let env: Vec<(&str, &str)> = vec![
        ("OUTBOX_DATABASE_URL", &url),
        ("OUTBOX_DATABASE_PASSWORD_FILE", &password_file),
        ("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
        ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
        ("OUTBOX_KAFKA_SSL_CERTIFICATE_LOCATION", &cert),
        ("OUTBOX_KAFKA_SSL_KEY_LOCATION", &key),
        ("OUTBOX_TABLE_PREFIX", &table_prefix),
        ("OUTBOX_HTTP_LISTEN", &http),
        ("OUTBOX_REGISTRY_LISTEN", ""),
        ("OUTBOX_LOG_FORMAT", "json"),
    ];
    let mut relay = relay_with_env(&env, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = Arc::clone(&log);
        let mut pipe = relay.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            if let Ok(mut log) = log.lock() {
                *log = text;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        if Instant::now() > deadline || relay.try_wait().expect("try_wait").is_some() {
            let _ = relay.kill();
            let _ = reader.join();
            panic!("the relay did not drain: {}", log.lock().expect("log"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (b, t, owned) = (bootstrap.clone(), topic.clone(), ssl_props.clone());
    let records = tokio::task::spawn_blocking(move || {
        let props: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::consume_with(&props, &b, &t, 2, 100, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let got: HashSet<uuid::Uuid> = records.iter().map(common::Received::ce_id).collect();
    let expected: HashSet<uuid::Uuid> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(got, expected, "every event reached the TLS listener");

    let mut metrics = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .expect("/metrics");
    let metrics = metrics.body_mut().read_to_string().expect("body");
    assert!(
        metrics.contains("outbox_relay_published_total 100"),
        "{metrics}"
    );
    assert!(!metrics.contains(&password), "/metrics holds no password");

    let status = output(relay_with_env(&env, &["status"]));
    assert!(status.status.success(), "status: {}", stderr(&status));
    let status_text = String::from_utf8_lossy(&status.stdout).into_owned() + &stderr(&status);
    assert!(
        !status_text.contains(&password),
        "status prints no password"
    );

    assert_eq!(common::stop(&mut relay), Some(0));
    reader.join().expect("reader");
    let log = log.lock().expect("log").clone();
    assert!(!log.contains(&password), "the logs hold no password");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "holding the relay lease"),
        "JSON log lines: {log}"
    );
}
